"""The CPU instruction-set layer seen from Python (docs/cpu_isa.md).

Every CPU kernel has a portable `scalar` path and some have `avx2` / `avx512` ones; the best
the CPU supports is detected once. NOFA_CPU_ISA=scalar|avx2|avx512 (read once, at the first
CPU op) or `set_cpu_isa` / `use_cpu_isa` caps the tier; asking for one the CPU lacks is an
error. `cpu_isa_info()` says which path each op takes and how often each path has run.

    from nofa.ops.cpu_isa import cpu_isa_info, use_cpu_isa
    with use_cpu_isa("avx2"):
        feats = ops.sample_triplane(planes, points)
    cpu_isa_info()["ops"]["sample_triplane_forward"]["path"]   # "avx2"
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

import torch

from . import _backend  # noqa: F401  (loads the compiled library, when there is one)

ISAS = ("scalar", "avx2", "avx512")
CPU_OPS = (
    "sample_triplane_forward",
    "sample_triplane_backward",
    "decode_triplane_forward",
    "decode_triplane_backward",
    "composite_rays",
    "composite_rays_merged",
    "deform_points",
    "channels_last_planes",
)


def _op(name: str):
    try:
        return getattr(torch.ops.nofa, name)
    except (AttributeError, RuntimeError):
        return None


def cpu_isa_info() -> dict:
    """The CPU ISA layer's state.

    Returns {"compiled": bool, "detected": str, "forced": str | None, "active": str | None,
    "env": str (NOFA_CPU_ISA as read), "error": str | None (why NOFA_CPU_ISA is unusable),
    "ops": {op: {"best": str, "path": str | None, "calls": {isa: int}}}}: `best` is the best
    path the op has on this CPU, `path` the one it takes now, `calls` how many calls ran each
    path (vector paths cover float32 and, for decode_triplane, the EG3D decoder shapes; other
    inputs run scalar and are counted so). Without compiled kernels only "compiled" is set.
    """
    op = _op("cpu_isa_info")
    if op is None:
        return {"compiled": False}
    return {"compiled": True, **json.loads(op())}


def supported_isas() -> tuple[str, ...]:
    """The tiers this CPU can run, lowest first (empty without compiled kernels)."""
    info = cpu_isa_info()
    if not info["compiled"]:
        return ()
    return ISAS[: ISAS.index(info["detected"]) + 1]


def set_cpu_isa(name: str) -> str:
    """Force the CPU tier ("scalar", "avx2", "avx512") or return to detection ("auto").

    Returns the previous setting. Raises ValueError for unknown names and RuntimeError for a
    tier this CPU does not support or when the kernels are not compiled.
    """
    if name not in ISAS + ("auto",):
        raise ValueError(f"isa must be one of {ISAS + ('auto',)}, got {name!r}")
    op = _op("set_cpu_isa")
    if op is None:
        raise RuntimeError("nofa: set_cpu_isa needs the compiled kernels (nofa._C is not built)")
    return op(name)


@contextlib.contextmanager
def use_cpu_isa(name: str) -> Iterator[None]:
    """Run the CPU ops inside the block on tier `name` (process-wide, not per thread)."""
    prev = set_cpu_isa(name)
    try:
        yield
    finally:
        set_cpu_isa(prev)


def path_calls() -> dict[str, dict[str, int]]:
    """{op: {isa: calls}}: a snapshot of how often each op ran each path."""
    info = cpu_isa_info()
    return {op: dict(v["calls"]) for op, v in info.get("ops", {}).items()}
