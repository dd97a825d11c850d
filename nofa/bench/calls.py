"""How one benchmark call runs: the callable for a workload, backend and mode, and the check
that it ran where its label says. Shared by the timing worker (`worker`) and the per-kernel
profiler (`profile`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from .. import ops
from .registry import Case, Workload


class BackendMismatch(RuntimeError):
    """The run did not execute on the backend it is labelled with."""


def make_call(
    wl: Workload, fn: Callable[..., Any], backend: str, mode: str
) -> tuple[Callable[[], Any], Callable[[], None] | None]:
    """The callable that one repeat runs, and the `before` hook that resets gradients (None
    in forward mode). backend: "kernels", "torch" or "compile" (fn is then the compiled
    reference, run with the torch backend); mode: "forward" (under no_grad) or
    "forward+backward" (the chosen outputs back-propagated with fixed random cotangents)."""
    switch = "kernels" if backend == "kernels" else "torch"
    if mode == "forward":

        def call():
            with torch.no_grad(), ops.use_backend(switch):
                return fn(*wl.inputs)

        return call, None

    for t in wl.grad_tensors:
        t.requires_grad_(True)
    cotangents: list[torch.Tensor] = []
    gen = torch.Generator().manual_seed(1)

    def call():
        with ops.use_backend(switch):
            outs = wl.loss_outputs(fn(*wl.inputs))
            if not cotangents:  # built on the first (warm-up) call, then reused
                cotangents.extend(
                    torch.randn(o.shape, generator=gen, dtype=o.dtype).to(o.device) for o in outs
                )
            torch.autograd.backward(list(outs), cotangents)

    def before():
        for t in wl.grad_tensors:
            t.grad = None

    return call, before


def check_backends(tr: Any, case: Case, backend: str) -> None:
    """Raise BackendMismatch unless every op of the case ran on the labelled backend
    (tr: what `nofa.ops.trace_backends()` recorded over the call)."""
    for op in case.ops:
        got = tr.backends(op)
        if backend == "kernels" and got != {"kernels"}:
            raise BackendMismatch(
                f"'kernels' run of {case.name} ran {op} on {sorted(got) or 'nothing'}"
            )
        if backend == "torch" and got != {"torch"}:
            raise BackendMismatch(
                f"'torch' run of {case.name} ran {op} on {sorted(got) or 'nothing'}"
            )
        if backend == "compile" and "kernels" in got:
            raise BackendMismatch(f"compiled reference of {case.name} called the {op} kernel")
