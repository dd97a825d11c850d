"""The benchmark registry: one `Case` per op (or the full render), each a small entry.

A case knows whether it can run in this build (`unavailable`), how to build a workload for
one problem size (`build`), which nofa ops it exercises (so the runner can assert with
`nofa.ops.trace_backends()` that a "kernels" run really ran the kernels) and the sizes of
its headline rows and scaling sweeps.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch

Params = dict[str, Any]


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
    loss_outputs: Callable[[Any], Sequence[torch.Tensor]] = lambda out: (out if isinstance(out, tuple) else (out,))[:1]


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


CASES: dict[str, Case] = {}


def register(case: Case) -> Case:
    if case.name in CASES:
        raise ValueError(f"benchmark case {case.name!r} registered twice")
    CASES[case.name] = case
    return case


def all_cases() -> list[Case]:
    from . import cases  # noqa: F401  (importing registers the entries)

    return list(CASES.values())


def get_case(name: str) -> Case:
    all_cases()
    if name not in CASES:
        raise KeyError(f"unknown benchmark case {name!r}; known: {sorted(CASES)}")
    return CASES[name]
