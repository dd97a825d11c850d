"""The benchmark entries for the kernel ops (the full render is in `cases_render.py`).

Sizes: the headline rows use the point count of a 64x64 render with 48+48 samples per ray
(64*64*96 = 393,216 points) on a 256x256, 32-channel tri-plane (EG3D's). Sample points are
uniform in the tri-plane box: random order, the worst case for cache locality.
"""
from __future__ import annotations

import torch

from .. import ops
from .registry import Case, Params, Workload, register

RENDER_64_POINTS = 64 * 64 * 96
CPU_POINTS = [2**k for k in range(14, 23, 2)]  # every 4x keeps the 2-core CPU run short
GPU_POINTS = [2**k for k in range(14, 23)]
QUICK_POINTS = [2**10, 2**12]


def _gen(params: Params) -> torch.Generator:
    return torch.Generator().manual_seed(int(params.get("seed", 0)))


def _points_sizes(key: str, per: int = 1, quick: Params | None = None) -> dict[str, list[Params]]:
    """A points sweep expressed in the case's own parameter `key` (points = key * per);
    `quick` adds small fixed parameters to the --quick plan."""
    return {
        plan: [{key: max(1, n // per), **((quick or {}) if plan == "quick" else {})} for n in sizes]
        for plan, sizes in (("quick", QUICK_POINTS), ("cpu", CPU_POINTS), ("cuda", GPU_POINTS))
    }


# ---------------------------------------------------------------------------------------
# sample_triplane
# ---------------------------------------------------------------------------------------


def _build_sample(params: Params, device: torch.device) -> Workload:
    M = int(params["points"])
    R = int(params.get("res", 256))
    C = int(params.get("channels", 32))
    g = _gen(params)
    planes = torch.randn(1, 3, C, R, R, generator=g).to(device)
    points = (torch.rand(1, M, 3, generator=g) - 0.5).to(device)
    esize = planes.element_size()
    return Workload(
        fn=lambda p, x: ops.sample_triplane(p, x),
        reference=lambda p, x: ops.reference.sample_triplane(p, x),
        inputs=(planes, points),
        grad_tensors=(planes, points),
        size=M,
        shape=f"{M:,} points, planes 3x{C}x{R}x{R}",
        # Each plane byte read once, each point read once, each output written once.
        bytes_min=esize * (planes.numel() + points.numel() + M * C),
    )


register(Case(
    name="sample_triplane",
    ops=("sample_triplane",),
    build=_build_sample,
    sizes={
        "headline": {
            "quick": [{"points": 2048, "res": 32, "channels": 8}],
            "cpu": [{"points": RENDER_64_POINTS}],
            "cuda": [{"points": RENDER_64_POINTS}, {"points": 4 * RENDER_64_POINTS}],
        },
        "points": _points_sizes("points", quick={"res": 32, "channels": 8}),
        "resolution": {
            "quick": [{"points": 2048, "res": r, "channels": 8} for r in (16, 32)],
            "cpu": [{"points": 2**18, "res": r} for r in (64, 128, 256, 512)],
            "cuda": [{"points": 2**20, "res": r} for r in (64, 128, 256, 512)],
        },
    },
    sweep_axes={"points": ("points", None), "resolution": ("plane resolution", "res")},
))


# ---------------------------------------------------------------------------------------
# composite_rays
# ---------------------------------------------------------------------------------------
SAMPLES = 96


def _build_composite(params: Params, device: torch.device) -> Workload:
    R = int(params["rays"])
    S = int(params.get("samples", SAMPLES))
    C = int(params.get("channels", 32))
    g = _gen(params)
    colors = torch.rand(1, R, S, C, generator=g).to(device)
    densities = (torch.randn(1, R, S, 1, generator=g) * 3).to(device)
    depths = torch.sort(2.25 + 1.05 * torch.rand(1, R, S, 1, generator=g), dim=2)[0].to(device)
    return Workload(
        fn=lambda c, d, z: ops.composite_rays(c, d, z),
        reference=lambda c, d, z: ops.reference.composite_rays(c, d, z),
        inputs=(colors, densities, depths),
        grad_tensors=(colors, densities),
        size=R * S,
        shape=f"{R:,} rays x {S} samples x {C} channels",
        # Back-propagate what a render loss uses: the features and the depth.
        loss_outputs=lambda out: (out[0], out[1]),
    )


register(Case(
    name="composite_rays",
    ops=("composite_rays",),
    build=_build_composite,
    sizes={
        "headline": {
            "quick": [{"rays": 64, "samples": 16, "channels": 8}],
            "cpu": [{"rays": 64 * 64}],
            "cuda": [{"rays": 64 * 64}, {"rays": 128 * 128}],
        },
        "points": _points_sizes("rays", SAMPLES, quick={"channels": 8}),
    },
    sweep_axes={"points": ("points (rays x 96 samples)", None)},
))


from . import cases_render  # noqa: E402,F401  (registered last: the full render)
