"""Atomic file writes shared by nofa's file formats (avatar volumes, model files).

`atomic_torch_save(obj, path)` writes to a temporary file next to `path`, fsyncs it and
renames it over `path` (`os.replace`), so readers see either the old file or the complete
new one, never a partial file. What happens when the save is cut short:

- An exception or Ctrl-C (SIGINT) in the main thread: the save stops at the next write of at
  most 8 MiB, the temporary file is deleted, the old file is untouched and the interrupt
  surfaces as `KeyboardInterrupt` (not as the `RuntimeError: ... unexpected pos` that
  `torch.save` turns an interrupted write into).
- The process is killed outright (SIGKILL, power loss): nothing can run, so the temporary
  file stays behind. It is named `.<name>.nofa-<host>-<pid>-<random>.tmp` (hidden, next to
  the target) and the next save to the same target on the same host deletes every such file
  whose process no longer runs. (Not on Windows, where the leftovers must be deleted by hand.)
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

__all__ = ["atomic_torch_save", "stale_temp_files"]

_CHUNK = 8 << 20  # bytes per write: how often an interrupt is looked at during a save


def _host_tag() -> str:
    return hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]


def _temp_prefix(path: Path) -> str:
    return f".{path.name}.nofa-"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists but belongs to someone else (or cannot tell): keep its file
    return True


def stale_temp_files(path: str | os.PathLike) -> list[Path]:
    """Temporary files left next to `path` by saves on this host whose process has died."""
    path = Path(path)
    if os.name == "nt" or not path.parent.is_dir():
        return []  # os.kill(pid, 0) is not a liveness probe on Windows
    prefix, host = _temp_prefix(path), _host_tag()
    stale = []
    for name in os.listdir(path.parent):
        if not (name.startswith(prefix) and name.endswith(".tmp")):
            continue
        parts = name[len(prefix) : -len(".tmp")].split("-")
        if len(parts) != 3 or parts[0] != host or not parts[1].isdigit():
            continue
        pid = int(parts[1])
        if pid != os.getpid() and not _pid_alive(pid):
            stale.append(path.parent / name)
    return stale


class _Interrupted(Exception):
    """Raised inside torch.save's writes once SIGINT arrived; turned into KeyboardInterrupt."""


class _Writer:
    """File wrapper for torch.save: writes in chunks and stops once `interrupted` is set."""

    def __init__(self, f, flag: threading.Event) -> None:
        self.f, self.flag = f, flag

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        for start in range(0, len(view), _CHUNK):
            if self.flag.is_set():
                raise _Interrupted()
            self.f.write(view[start : start + _CHUNK])
        return len(view)

    def flush(self) -> None:
        self.f.flush()


class _DeferSigint:
    """While active (main thread, Python's default SIGINT handler only), the first SIGINT sets
    a flag instead of raising mid-write (which torch.save would turn into a RuntimeError); the
    caller checks the flag and raises KeyboardInterrupt. A second SIGINT raises at once."""

    def __init__(self) -> None:
        self.flag = threading.Event()
        self._old = None

    def __enter__(self) -> _DeferSigint:
        if (
            threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is signal.default_int_handler
        ):
            self._old = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.flag.is_set():  # a second Ctrl-C: raise right here, wherever the save is
            raise KeyboardInterrupt()
        self.flag.set()

    def __exit__(self, *exc) -> None:
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)


def _unlink(path: str | os.PathLike) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """`torch.save(obj)` to a temporary file in the target's folder, fsync, then `os.replace`
    it over `path`. An exception or Ctrl-C leaves any previous file intact, no temporary file
    and raises (KeyboardInterrupt for Ctrl-C); stale temporary files of killed saves to the
    same target are removed first (see the module docstring)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in stale_temp_files(path):
        _unlink(stale)
    fd, tmp = tempfile.mkstemp(
        dir=path.parent, prefix=f"{_temp_prefix(path)}{_host_tag()}-{os.getpid()}-", suffix=".tmp"
    )
    with _DeferSigint() as sigint:
        try:
            with os.fdopen(fd, "wb") as f:
                try:
                    torch.save(obj, _Writer(f, sigint.flag))
                except Exception:
                    if sigint.flag.is_set():
                        raise _Interrupted() from None
                    raise
                f.flush()
                os.fsync(f.fileno())
            if sigint.flag.is_set():
                raise _Interrupted()
            os.replace(tmp, path)
        except _Interrupted:
            _unlink(tmp)
            raise KeyboardInterrupt() from None
        except BaseException:
            _unlink(tmp)
            raise
    if (
        sigint.flag.is_set()
    ):  # arrived between the last check and the rename: the new file is complete
        raise KeyboardInterrupt()
    return path


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call `write(tmp_path)` on a temporary file in the target's folder (same suffix), then
    `os.replace` it over `path`; on any error the temp file is removed and `path` untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would make user outputs private
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write `text` (UTF-8) to `path` atomically."""
    return atomic_write(path, lambda t: Path(t).write_text(text, encoding="utf-8"))


def atomic_write_bytes(data: bytes, path: str | os.PathLike) -> Path:
    """Write `data` to `path` atomically (temporary file in the same folder + `os.replace`)."""
    return atomic_write(path, lambda t: Path(t).write_bytes(data))
