"""Every benchmark entry, listed explicitly (no registration by import side effect):
kernel ops (`ops`), the full render (`render`), the avatar pipeline and mesh extraction
(`pipelines`). Order here is the order of the tables."""

from __future__ import annotations

from ..registry import Case
from . import ops, pipelines, render

ALL: tuple[Case, ...] = (*ops.CASES, *render.CASES, *pipelines.CASES)
CASES: dict[str, Case] = {c.name: c for c in ALL}
if len(CASES) != len(ALL):
    raise RuntimeError("two benchmark cases share a name")


def all_cases() -> list[Case]:
    return list(ALL)


def get_case(name: str) -> Case:
    if name not in CASES:
        raise KeyError(f"unknown benchmark case {name!r}; known: {sorted(CASES)}")
    return CASES[name]
