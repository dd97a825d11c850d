"""Which implementation an op runs: the compiled kernels or the pure-PyTorch reference.

`use_backend("torch" | "kernels" | "auto")` is a context manager (thread-local); the
environment variable NOFA_BACKEND sets the default. "auto" runs the kernels when they are
compiled for the input's device and otherwise the reference, warning once.
"""
from __future__ import annotations

import contextlib
import json
import os
import threading
import warnings
from typing import Iterator

import torch

BACKENDS = ("auto", "kernels", "torch")

_C = None
_C_ERROR: str | None = None
try:
    from .. import _C  # noqa: F811  (loading it registers torch.ops.nofa.* kernels)
except ImportError as e:  # no compiler at install time, or a broken build
    _C_ERROR = str(e)

_state = threading.local()
_warned: set[str] = set()


def _env_backend() -> str:
    name = os.environ.get("NOFA_BACKEND", "auto").strip().lower() or "auto"
    if name not in BACKENDS:
        raise ValueError(f"NOFA_BACKEND must be one of {BACKENDS}, got {name!r}")
    return name


def get_backend() -> str:
    """The backend in force in this thread: "auto", "kernels" or "torch"."""
    return getattr(_state, "backend", None) or _env_backend()


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[None]:
    """Run the ops inside the block on `name` ("torch", "kernels" or "auto")."""
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}")
    prev = getattr(_state, "backend", None)
    _state.backend = name
    try:
        yield
    finally:
        _state.backend = prev


def kernels_available(device_type: str = "cpu", op: str = "sample_triplane") -> bool:
    """Whether nofa's compiled kernel for `op` is registered for `device_type` ("cpu", "cuda")."""
    if _C is None:
        return False
    key = {"cpu": "CPU", "cuda": "CUDA"}.get(device_type.lower())
    if key is None:
        return False
    try:
        return torch._C._dispatch_has_kernel_for_dispatch_key(f"nofa::{op}", key)
    except RuntimeError:  # the op's schema is not in this build
        return False


def build_info() -> dict:
    """What was compiled: {"compiled": bool, "cuda": bool, "cuda_archs": str, "error": str|None}."""
    if _C is None:
        return {"compiled": False, "cuda": False, "cuda_archs": "", "error": _C_ERROR}
    info = json.loads(torch.ops.nofa.build_info())
    return {"compiled": True, "error": None, **info}


def use_kernels(op: str, device: torch.device) -> bool:
    """Decide, for one call of `op` on `device`, whether to run the kernel."""
    backend = get_backend()
    if backend == "torch":
        return False
    available = kernels_available(device.type, op)
    if backend == "kernels":
        if not available:
            why = f" ({_C_ERROR})" if _C_ERROR else ""
            raise RuntimeError(
                f"nofa: backend 'kernels' was requested but no {op} kernel is compiled for "
                f"device type '{device.type}'{why}. Rebuild nofa (pip install --no-build-isolation .) "
                "or use backend 'torch'."
            )
        return True
    if not available:
        key = f"{op}:{device.type}"
        if key not in _warned:
            _warned.add(key)
            warnings.warn(
                f"nofa: no compiled {op} kernel for '{device.type}'; using the pure-PyTorch "
                "reference (slower).",
                RuntimeWarning,
                stacklevel=3,
            )
    return available


class _Trace:
    """Records (op, backend) for every op call made while active."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def backends(self, op: str) -> set[str]:
        return {b for o, b in self.calls if o == op}


@contextlib.contextmanager
def trace_backends() -> Iterator[_Trace]:
    """Collect which backend each nofa op call ran on (for tests and benchmarks)."""
    tr = _Trace()
    stack = getattr(_state, "traces", None)
    if stack is None:
        stack = _state.traces = []
    stack.append(tr)
    try:
        yield tr
    finally:
        stack.remove(tr)


def record(op: str, backend: str) -> None:
    for tr in getattr(_state, "traces", None) or ():
        tr.calls.append((op, backend))
