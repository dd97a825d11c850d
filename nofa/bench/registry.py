"""What a benchmark entry is: `Case` (one per op, the full render, the avatar pipeline,
mesh extraction) and `Workload` (one problem instance). The entries themselves live in
`nofa.bench.cases` and are listed there explicitly; this module imports none of them.

A case knows whether it can run in this build (`unavailable`), how to build a workload for
one problem size (`build`), which nofa ops it exercises (so the runner can assert with
`nofa.ops.trace_backends()` that a "kernels" run really ran the kernels) and the sizes of
its headline rows and scaling sweeps.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

Params = dict[str, Any]
MODES = ("forward", "forward+backward")


@dataclass
class Workload:
    """One problem instance, ready to run.

    fn(*inputs) calls the public nofa API (the backend is picked by `use_backend`);
    reference(*inputs) is the pure-PyTorch function that `torch.compile` compiles.
    In forward+backward mode the tensors in `grad_tensors` receive gradients, and the
    outputs chosen by `loss_outputs` are back-propagated with fixed random cotangents.
    """

    fn: Callable[..., Any]
    reference: Callable[..., Any]
    inputs: tuple[torch.Tensor, ...]
    grad_tensors: Sequence[torch.Tensor]
    size: int
    shape: str
    bytes_min: int | None = None  # compulsory DRAM traffic of one forward (bandwidth figure)
    loss_outputs: Callable[[Any], Sequence[torch.Tensor]] = lambda out: (
        out if isinstance(out, tuple) else (out,)
    )[:1]


@dataclass
class Case:
    """A benchmark entry. `sizes[suite][plan]` lists the parameter dicts of each suite.

    suite: "headline" (the summary table) or a sweep name ("points", "resolution");
    plan: "quick" or "full".
    """

    name: str
    ops: tuple[str, ...]
    build: Callable[[Params, torch.device], Workload]
    sizes: dict[str, dict[str, list[Params]]]
    unavailable: Callable[[], str | None] = lambda: None
    # sweep name -> (x-axis label, the params key giving x; None: the workload's size)
    sweep_axes: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    compile: bool = True  # whether torch.compile of the reference is attempted
    modes: tuple[str, ...] = MODES  # forward-only cases (no gradients) list ("forward",)
