"""Which implementation an op runs, the compiled kernels or the pure-PyTorch reference, and
the one helper every public op calls to run it (`dispatch`).

`use_backend("torch" | "kernels" | "auto")` is a context manager (thread-local); the
environment variable NOFA_BACKEND sets the default. "auto" runs the kernels when they are
compiled for the input's device and otherwise the reference, warning once.

The choice is made by `_choose`, which reads only Python state and a registry lookup done
once per (op, device type). Under `torch.compile` it is marked
`torch.compiler.assume_constant_result`: Dynamo calls it once while tracing and bakes the
answer into the graph, so the public ops trace with `fullgraph=True`. The consequence (see
docs/architecture.md, "Dispatch"): compiled code keeps the backend in force when it was
traced, and `trace_backends()` records nothing from inside compiled code.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import TypeVar

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
_T = TypeVar("_T")


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


@functools.cache
def _registered(op: str, device_type: str) -> bool:
    # Kernels register when _C is imported and never later: one registry lookup per
    # (op, device type) for the life of the process.
    if _C is None:
        return False
    key = {"cpu": "CPU", "cuda": "CUDA"}.get(device_type)
    if key is None:
        return False
    try:
        return torch._C._dispatch_has_kernel_for_dispatch_key(f"nofa::{op}", key)
    except RuntimeError:  # the op's schema is not in this build
        return False


def kernels_available(device_type: str = "cpu", op: str = "sample_triplane") -> bool:
    """Whether nofa's compiled kernel for `op` is registered for `device_type` ("cpu", "cuda")."""
    return _registered(op, device_type.lower())


def build_info() -> dict:
    """What was compiled: {"compiled": bool, "cuda": bool, "cuda_archs": str, "error": str|None}."""
    if _C is None:
        return {"compiled": False, "cuda": False, "cuda_archs": "", "error": _C_ERROR}
    info = json.loads(torch.ops.nofa.build_info())
    return {"compiled": True, "error": None, **info}


@torch.compiler.assume_constant_result
def _choose(op: str, device_type: str, unsupported: str | None = None) -> bool:
    """Whether this call of `op` on `device_type` runs the kernel (True) or the reference.

    `unsupported` says why the kernel cannot take these arguments (None: it can); backend
    "kernels" then raises, "auto" warns and runs the reference.
    """
    backend = get_backend()
    if backend == "torch":
        return False
    available = kernels_available(device_type, op)
    if backend == "kernels":
        if not available:
            why = f" ({_C_ERROR})" if _C_ERROR else ""
            raise RuntimeError(
                f"nofa: backend 'kernels' was requested but no {op} kernel is compiled for "
                f"device type '{device_type}'{why}. Rebuild nofa (pip install --no-build-isolation "
                ".) "
                "or use backend 'torch'."
            )
        if unsupported is not None:
            raise ValueError(
                f"nofa: {unsupported} (use backend 'torch' or 'auto' for these arguments)"
            )
        return True
    if not available:
        _warn_once(
            f"{op}:{device_type}",
            f"nofa: no compiled {op} kernel for '{device_type}'; using the "
            "pure-PyTorch reference (slower).",
        )
        return False
    if unsupported is not None:
        _warn_once(
            f"{op}:{device_type}:{unsupported}",
            f"nofa: {unsupported}; using the pure-PyTorch reference",
        )
        return False
    return True


@torch.compiler.assume_constant_result
def prefers_kernel(op: str, device_type: str) -> bool:
    """Whether a call of `op` on `device_type` would run its kernel, without warning or
    raising: for choices of method or layout made above the op (e.g. `prepare_planes`)."""
    return get_backend() != "torch" and kernels_available(device_type, op)


@torch.compiler.assume_constant_result
def lacks_kernel(op: str, device_type: str) -> bool:
    """Whether kernels are wanted (backend "auto" or "kernels") but `op` has none for
    `device_type`: for ops that then compose other ops instead (composite_rays_merged)."""
    return get_backend() != "torch" and not kernels_available(device_type, op)


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, RuntimeWarning, stacklevel=4)


def dispatch(
    op: str,
    device: torch.device,
    kernel: Callable[[], _T],
    reference: Callable[[], _T],
    unsupported: str | None = None,
) -> _T:
    """Run one call of a public op: choose the backend, record it, call it.

    Every public op validates its arguments first (the same checks for both backends) and
    then returns `dispatch(name, device, lambda: torch.ops.nofa.<op>(...), lambda:
    reference.<op>(...))`. `unsupported`: see `_choose`.
    """
    if _choose(op, device.type, unsupported):
        record(op, "kernels")
        return kernel()
    record(op, "torch")
    return reference()


class _Trace:
    """Records (op, backend) for every op call made while active."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def backends(self, op: str) -> set[str]:
        return {b for o, b in self.calls if o == op}


@contextlib.contextmanager
def trace_backends() -> Iterator[_Trace]:
    """Collect which backend each nofa op call ran on (for tests and benchmarks).

    Calls inside code compiled by `torch.compile` are not recorded (they were decided at
    tracing time)."""
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
    """Record a call of `op` on `backend` in the active traces (`dispatch` does; an op
    composed of other ops records itself)."""
    if torch.compiler.is_compiling():
        return
    for tr in getattr(_state, "traces", None) or ():
        tr.calls.append((op, backend))


def no_double_backward(op: str) -> Callable:
    """An autograd formula for `<op>_backward` that refuses to be differentiated: the
    kernels implement first derivatives only, and without a formula PyTorch would warn and
    return zeros for the second derivative."""

    def backward(ctx, *grads):
        raise RuntimeError(
            f"nofa: {op}'s kernel has no double backward (second derivatives). Run the op with "
            "nofa.ops.use_backend('torch') where you need them (create_graph=True, gradient "
            "penalties)."
        )

    return backward
