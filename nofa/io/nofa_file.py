"""Every file nofa writes, read and written one way: a `torch.save` zip of one dict

    {"format": "<kind>", "version": <int>, ...payload}

holding only tensors, strings, numbers, lists and dicts, so that it loads with
`torch.load(weights_only=True)` (no code from the file ever runs). `write_nofa_file` writes it
atomically (:func:`nofa.io.atomic.atomic_torch_save`: temporary file + rename);
`read_nofa_file` reads it back and checks, in this order, that the file exists, that
`torch.load` can read it, that it is a dict with a "format" entry of an accepted kind and that
its version is not newer than this nofa reads. Every failure is a :class:`NofaFileError` (or
the caller's subclass) naming the path, except a missing file (`FileNotFoundError`).

The content's "format" decides what a file is, never its name; each kind has its own suffix
(`KINDS`, docs/files.md) and a file named with the old shared `.nofa` suffix, with another
kind's suffix, or in an older format still loads, with a note (:class:`NofaFileWarning`)
saying how to convert it (`nofa upgrade FILE`).
"""

from __future__ import annotations

import dataclasses
import os
import sys
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from .atomic import atomic_torch_save

__all__ = [
    "ANIMATABLE",
    "KINDS",
    "LEGACY_MODEL",
    "MODEL",
    "OLD_SUFFIX",
    "TRAINING_CHECKPOINT",
    "VOLUME_AVATAR",
    "FileKind",
    "NofaFile",
    "NofaFileError",
    "NofaFileWarning",
    "check_device",
    "kind_for_suffix",
    "read_nofa_file",
    "tensor_stats",
    "to_device",
    "write_nofa_file",
]


@dataclasses.dataclass(frozen=True)
class FileKind:
    """One kind of nofa file: its "format" entry, the newest version this nofa writes and
    reads, its documented suffix and what it is, in words. `successor` is set on an older
    format that still loads: the format it converts to."""

    format: str
    version: int
    suffix: str
    name: str
    successor: str | None = None


MODEL = FileKind("nofa-model", 1, ".nofa-model", "model file")
VOLUME_AVATAR = FileKind("nofa-avatar", 1, ".nofa-avatar", "volume avatar")
ANIMATABLE = FileKind("nofa-animatable", 1, ".nofa-anim", "animatable avatar")
TRAINING_CHECKPOINT = FileKind("nofa-train-checkpoint", 1, ".nofa-ckpt", "training checkpoint")
# What `NOFAAvatar.save`, the trainer and `nofa import-eg3d` wrote before "nofa-model".
LEGACY_MODEL = FileKind(
    "nofa-avatar-model", 1, ".nofa-model", "model file in the older NOFAAvatar format", "nofa-model"
)

KINDS: dict[str, FileKind] = {
    k.format: k for k in (MODEL, VOLUME_AVATAR, ANIMATABLE, TRAINING_CHECKPOINT, LEGACY_MODEL)
}
# The suffix every nofa file shared before each kind got its own.
OLD_SUFFIX = ".nofa"
_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


class NofaFileError(ValueError):
    """A file that is not a readable nofa file of the expected kind (truncated, corrupt,
    foreign, of another kind, too new or incomplete); the message names the path."""

    def __init__(self, message: str, path: str | os.PathLike | None = None) -> None:
        super().__init__(message)
        self.path = None if path is None else Path(path)


class NofaFileWarning(UserWarning):
    """A nofa file that loads but should be converted: an older format, or a suffix that does
    not say what it holds."""


@dataclasses.dataclass
class NofaFile:
    """A file read by :func:`read_nofa_file`: its kind, version and whole payload (the dict
    torch.load returned, "format" and "version" included, tensors on the CPU). `notes` are the
    conversion notes (older format, misleading suffix), already issued as warnings unless the
    read asked not to."""

    path: Path
    kind: FileKind
    version: int
    payload: dict[str, Any]
    notes: list[str] = dataclasses.field(default_factory=list)


def kind_for_suffix(path: str | os.PathLike) -> FileKind | None:
    """The current kind whose documented suffix `path` has (None for any other suffix)."""
    suffix = Path(path).suffix.lower()
    return next((k for k in KINDS.values() if k.suffix == suffix and not k.successor), None)


def write_nofa_file(path: str | os.PathLike, kind: FileKind, payload: Mapping[str, Any]) -> Path:
    """Write {"format": kind.format, "version": kind.version, **payload} to `path` atomically
    (temporary file in the same folder + rename; an interrupted save keeps the old file).
    `payload` must hold only what `torch.load(weights_only=True)` reads back: tensors, str,
    int, float, bool, None, lists, tuples and dicts of those."""
    if kind.successor:
        raise ValueError(
            f"{kind.format!r} is an older format: nofa reads it but writes {kind.successor!r}"
        )
    clash = {"format", "version"} & set(payload)
    if clash:
        raise ValueError(f"payload entries {sorted(clash)} are the file's own")
    return atomic_torch_save({"format": kind.format, "version": kind.version, **payload}, path)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _holds(payload: Any) -> str:
    if isinstance(payload, dict):
        return f"keys {sorted(map(str, payload))[:6]}"
    return type(payload).__name__


def _notes(path: Path, kind: FileKind) -> list[str]:
    notes = []
    if kind.successor:
        new = KINDS[kind.successor]
        notes.append(
            f"{path} is a {kind.name} (format {kind.format!r}); it still loads, but convert it "
            f"to the current {new.name} format with `nofa upgrade {path}` (writes "
            f"{path.with_suffix(new.suffix).name})"
        )
    suffix = path.suffix.lower()
    named = kind_for_suffix(path)
    if suffix == OLD_SUFFIX and not kind.successor:
        notes.append(
            f"{path} has the old shared suffix {OLD_SUFFIX}; a {kind.name} is now named "
            f"*{kind.suffix} (rename it, or `nofa upgrade {path}`)"
        )
    elif named is not None and named.format not in (kind.format, kind.successor):
        notes.append(
            f"{path} is named like a {named.name} (*{named.suffix}) but holds a {kind.name} "
            f"(*{kind.suffix})"
        )
    return notes


def read_nofa_file(
    path: str | os.PathLike,
    accept: Sequence[FileKind] | None = None,
    *,
    what: str | None = None,
    error: type[NofaFileError] = NofaFileError,
    hints: Mapping[str, str] | None = None,
    warn: bool = True,
) -> NofaFile:
    """Read a nofa file of one of the kinds `accept` (None: any kind) onto the CPU.

    what: the file in words for messages (default "nofa file" / "nofa <kind name>").
    error: the NofaFileError subclass to raise. hints: {format: text} appended to the message
    when the file is of that other kind (e.g. "that is a model file: pass it with --model").
    warn: issue the conversion notes as NofaFileWarning (they are in `.notes` either way).
    Raises FileNotFoundError when `path` is not a file, `error` for anything unreadable.
    """
    path = Path(path)
    if what is None:
        what = f"nofa {accept[0].name}" if accept and len(accept) == 1 else "nofa file"
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        # Onto the CPU: a device problem must never read as a corrupt file (see to_device).
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch.load on foreign bytes fails in many ways (KeyError, ...)
        raise error(
            f"{path} is not a readable {what}: it is truncated, corrupt or not a file written by "
            f"nofa (torch.load said: {_first_line(e)})",
            path,
        ) from e
    fmt = payload.get("format") if isinstance(payload, dict) else None
    if not isinstance(fmt, str):
        raise error(
            f"{path} is a torch file but not a {what} (no 'format' entry; it holds "
            f"{_holds(payload)})",
            path,
        )
    accepted = {k.format: k for k in (accept if accept is not None else KINDS.values())}
    if fmt not in accepted:
        other = KINDS.get(fmt)
        hint = (hints or {}).get(fmt) or (f" (that is a nofa {other.name})" if other else "")
        expected = " or ".join(repr(f) for f, k in accepted.items() if not k.successor)
        raise error(
            f"{path} is not a {what} (format {fmt!r}, expected {expected}){hint}",
            path,
        )
    kind = accepted[fmt]
    version = payload.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise error(
            f"{path}: damaged {what}: its version entry {version!r} is not an integer >= 1", path
        )
    if version > kind.version:
        raise error(
            f"{path} has {what} version {version}; this nofa reads up to {kind.version}: "
            "upgrade nofa",
            path,
        )
    notes = _notes(path, kind)
    if warn:
        for note in notes:
            warnings.warn(note, NofaFileWarning, stacklevel=_caller_stacklevel())
    return NofaFile(path, kind, version, payload, notes)


def _caller_stacklevel() -> int:
    """The warnings stacklevel of the first caller outside the nofa package, so that a note
    points at the code that asked for the file, not at the loader that read it."""
    frame, level = sys._getframe(1), 1  # level 1: read_nofa_file itself
    while frame.f_back is not None and os.path.abspath(frame.f_code.co_filename).startswith(
        _PACKAGE
    ):
        frame, level = frame.f_back, level + 1
    return level


def check_device(map_location: str | torch.device) -> torch.device:
    """`torch.device(map_location)`, or ValueError naming map_location (not the file)."""
    try:
        return torch.device(map_location)
    except (RuntimeError, TypeError, ValueError) as e:
        raise ValueError(f"map_location: unknown device {map_location!r} ({e})") from None


def to_device(obj: Any, map_location: str | torch.device, what: str = "file's tensors") -> Any:
    """`obj` (nested dicts / lists / tuples) with every tensor moved to `map_location`; an
    unavailable device is a ValueError naming map_location."""
    device = check_device(map_location)
    if device.type == "cpu":
        return obj

    def move(x: Any) -> Any:
        if isinstance(x, torch.Tensor):
            return x.to(device)
        if isinstance(x, dict):
            return {k: move(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return type(x)(move(v) for v in x)
        return x

    try:
        return move(obj)
    except (RuntimeError, AssertionError) as e:  # e.g. "Torch not compiled with CUDA enabled"
        raise ValueError(
            f"map_location={str(map_location)!r}: cannot put the {what} on that device "
            f"({_first_line(e)})"
        ) from None


def tensor_stats(obj: Any) -> tuple[int, int]:
    """(number of tensors, total number of elements) in nested dicts / lists / tuples."""
    if isinstance(obj, torch.Tensor):
        return 1, obj.numel()
    items = obj.values() if isinstance(obj, dict) else obj if isinstance(obj, (list, tuple)) else ()
    count = numel = 0
    for v in items:
        c, n = tensor_stats(v)
        count, numel = count + c, numel + n
    return count, numel
