"""The benchmark entries for the kernel ops (the full render is in `render.py`).

Sizes: the headline rows use the point count of a 64x64 render with 48+48 samples per ray
(64*64*96 = 393,216 points) on a 256x256, 32-channel tri-plane (EG3D's). Sample points are
uniform in the tri-plane box: random order, the worst case for cache locality.
`sample_triplane` also runs on render-ordered points (`"layout": "rays"`: a frontal
camera's pixel rays in raster order, depth-sorted samples along each), the order the
renderer produces, where neighbouring threads gather neighbouring texels.
"""

from __future__ import annotations

import torch

from ... import ops
from ..registry import Case, Params, Workload

RENDER_64_POINTS = 64 * 64 * 96
SAMPLES = 96  # samples per ray (48 + 48)
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


def _ray_points(M: int, samples: int = SAMPLES) -> torch.Tensor:
    """[1, M, 3] points as a render makes them: the pixel rays of a square frontal camera at
    distance 2.7 (EG3D's focal length 4.26), raster order, `samples` depth-sorted samples per
    ray over [2.25, 3.3] (the last ray shortened so that there are M points)."""
    rays = -(-M // samples)
    side = int(rays**0.5 + 0.999)
    u = (torch.arange(side) + 0.5) / side * 2 - 1  # pixel centres in [-1, 1]
    yy, xx = torch.meshgrid(u, u, indexing="ij")
    f = 2 * 4.2647  # EG3D's intrinsics are for image coordinates in [0, 1]
    d = torch.stack([xx.flatten() / f, yy.flatten() / f, -torch.ones(side * side)], -1)[:rays]
    d = d / d.norm(dim=-1, keepdim=True)
    t = torch.linspace(2.25, 3.3, samples)
    pts = torch.tensor([0.0, 0.0, 2.7]) + d[:, None, :] * t[None, :, None]
    return pts.reshape(1, -1, 3)[:, :M].contiguous()


def _build_sample(params: Params, device: torch.device) -> Workload:
    M = int(params["points"])
    R = int(params.get("res", 256))
    C = int(params.get("channels", 32))
    layout = params.get("layout", "random")
    g = _gen(params)
    planes = torch.randn(1, 3, C, R, R, generator=g).to(device)
    if layout == "rays":
        points = _ray_points(M).to(device)
    elif layout == "random":
        points = (torch.rand(1, M, 3, generator=g) - 0.5).to(device)
    else:
        raise ValueError(f"sample_triplane case: layout must be 'random' or 'rays', got {layout!r}")
    esize = planes.element_size()
    return Workload(
        fn=lambda p, x: ops.sample_triplane(p, x),
        reference=lambda p, x: ops.reference.sample_triplane(p, x),
        inputs=(planes, points),
        grad_tensors=(planes, points),
        size=M,
        shape=f"{M:,} points{' in render order' if layout == 'rays' else ''}, planes 3x{C}x{R}x{R}",
        # Each plane byte read once, each point read once, each output written once.
        bytes_min=esize * (planes.numel() + points.numel() + M * C),
    )


SAMPLE = Case(
    name="sample_triplane",
    ops=("sample_triplane",),
    build=_build_sample,
    sizes={
        "headline": {
            "quick": [
                {"points": 2048, "res": 32, "channels": 8},
                {"points": 2048, "res": 32, "channels": 8, "layout": "rays"},
            ],
            "cpu": [{"points": RENDER_64_POINTS}, {"points": RENDER_64_POINTS, "layout": "rays"}],
            "cuda": [
                {"points": RENDER_64_POINTS},
                {"points": 4 * RENDER_64_POINTS},
                {"points": RENDER_64_POINTS, "layout": "rays"},
            ],
        },
        "points": _points_sizes("points", quick={"res": 32, "channels": 8}),
        "resolution": {
            "quick": [{"points": 2048, "res": r, "channels": 8} for r in (16, 32)],
            "cpu": [{"points": 2**18, "res": r} for r in (64, 128, 256, 512)],
            "cuda": [{"points": 2**20, "res": r} for r in (64, 128, 256, 512)],
        },
    },
    sweep_axes={"points": ("points", None), "resolution": ("plane resolution", "res")},
)


# ---------------------------------------------------------------------------------------
# composite_rays
# ---------------------------------------------------------------------------------------


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


COMPOSITE = Case(
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
)


# ---------------------------------------------------------------------------------------
# composite_rays_merged: coarse + importance sets merged on the fly, against EG3D's way
# (concatenate, sort, composite) in pure PyTorch
# ---------------------------------------------------------------------------------------


def _build_composite_merged(params: Params, device: torch.device) -> Workload:
    R = int(params["rays"])
    Sa = Sb = int(params.get("samples", SAMPLES)) // 2
    C = int(params.get("channels", 32))
    g = _gen(params)
    sets = []
    for S in (Sa, Sb):
        sets += [
            torch.rand(1, R, S, C, generator=g).to(device),
            (torch.randn(1, R, S, 1, generator=g) * 3).to(device),
            torch.sort(2.25 + 1.05 * torch.rand(1, R, S, 1, generator=g), dim=2)[0].to(device),
        ]
    return Workload(
        fn=lambda *x: ops.composite_rays_merged(*x),
        reference=lambda *x: ops.reference.composite_rays_merged(*x),
        inputs=tuple(sets),
        grad_tensors=(sets[0], sets[1], sets[3], sets[4]),
        size=R * (Sa + Sb),
        shape=f"{R:,} rays x ({Sa}+{Sb}) samples x {C} channels",
        loss_outputs=lambda out: (out[0], out[1]),
    )


COMPOSITE_MERGED = Case(
    name="composite_rays_merged",
    ops=("composite_rays_merged",),
    build=_build_composite_merged,
    sizes={
        "headline": {
            "quick": [{"rays": 64, "samples": 16, "channels": 8}],
            "cpu": [{"rays": 64 * 64}],
            "cuda": [{"rays": 64 * 64}, {"rays": 128 * 128}],
        },
    },
)


# ---------------------------------------------------------------------------------------
# decode_triplane: the lookup fused with EG3D's OSG decoder
# ---------------------------------------------------------------------------------------


def _build_decode(params: Params, device: torch.device) -> Workload:
    M = int(params["points"])
    R = int(params.get("res", 256))
    C = int(params.get("channels", 32))
    Hd, F = int(params.get("hidden", 64)), int(params.get("features", 32))
    g = _gen(params)
    planes = torch.randn(1, 3, C, R, R, generator=g).to(device)
    points = (torch.rand(1, M, 3, generator=g) - 0.5).to(device)
    w = [
        (torch.randn(*shape, generator=g) * 0.2).to(device)
        for shape in ((Hd, C), (Hd,), (1 + F, Hd), (1 + F,))
    ]
    return Workload(
        fn=lambda p, x, *w: ops.decode_triplane(p, x, 1.0, *w),
        reference=lambda p, x, *w: ops.reference.decode_triplane(p, x, 1.0, *w),
        inputs=(planes, points, *w),
        grad_tensors=(planes, *w),
        size=M,
        shape=f"{M:,} points, planes 3x{C}x{R}x{R}, decoder {C}-{Hd}-{1 + F}",
        loss_outputs=lambda out: out,
    )


DECODE = Case(
    name="decode_triplane",
    ops=("decode_triplane",),
    build=_build_decode,
    sizes={
        "headline": {
            "quick": [{"points": 2048, "res": 32, "channels": 8, "hidden": 16, "features": 8}],
            "cpu": [{"points": RENDER_64_POINTS}],
            "cuda": [{"points": RENDER_64_POINTS}, {"points": 4 * RENDER_64_POINTS}],
        },
    },
)


# ---------------------------------------------------------------------------------------
# deform_points (through nofa.models.DeformationField, paper sizes: D-Net 4x128, W-Net 3x64)
# ---------------------------------------------------------------------------------------


def make_deformation_field(params: Params, g: torch.Generator, device: torch.device):
    """A trained-looking DeformationField (paper sizes unless params say otherwise) with
    one avatar's alpha [1, 80] and beta [1, 64]."""
    from ...models import DeformationField

    torch.manual_seed(int(params.get("seed", 0)))  # layer initialisation
    field = DeformationField(
        d_hidden=int(params.get("d_hidden", 128)), w_hidden=int(params.get("w_hidden", 64))
    )
    with torch.no_grad():  # the identity start has a zero last layer: make it move points
        field.d_weights[-1].copy_(torch.randn(field.d_weights[-1].shape, generator=g) * 0.05)
        field.d_biases[-1].copy_(torch.randn(field.d_biases[-1].shape, generator=g) * 0.01)
    alpha = torch.randn(1, field.id_dim, generator=g).to(device)
    beta = torch.randn(1, field.exp_dim, generator=g).to(device)
    return field.to(device), alpha, beta


def _build_deform(params: Params, device: torch.device) -> Workload:
    M = int(params["points"])
    g = _gen(params)
    field, alpha, beta = make_deformation_field(params, g, device)
    points = (torch.rand(1, M, 3, generator=g) - 0.5).to(device)

    def reference(x, a, b):
        return ops.reference.deform_points(
            x,
            a,
            b,
            list(field.d_weights),
            list(field.d_biases),
            list(field.w_weights),
            list(field.w_biases),
            field.n_freqs,
        )

    return Workload(
        fn=lambda x, a, b: field(x, a, b),
        reference=reference,
        inputs=(points, alpha, beta),
        grad_tensors=(points, *field.parameters()),  # training the field: weights and points
        size=M,
        shape=f"{M:,} points, D-Net {len(field.d_weights) - 1}x{field.d_weights[0].shape[0]}, "
        f"W-Net {len(field.w_weights) - 1}x{field.w_weights[0].shape[0]}",
    )


DEFORM = Case(
    name="deform_points",
    ops=("deform_points",),
    build=_build_deform,
    sizes={
        "headline": {
            "quick": [{"points": 512, "d_hidden": 32, "w_hidden": 32}],
            "cpu": [{"points": RENDER_64_POINTS}],
            "cuda": [{"points": RENDER_64_POINTS}, {"points": 4 * RENDER_64_POINTS}],
        },
        # The reference's activations at 2^22 points need ~15 GB for forward+backward: the
        # CPU sweep stops at 2^20.
        "points": {
            **_points_sizes("points", quick={"d_hidden": 32, "w_hidden": 32}),
            "cpu": [{"points": n} for n in CPU_POINTS if n <= 2**20],
        },
    },
    sweep_axes={"points": ("points", None)},
)

CASES = (SAMPLE, DECODE, COMPOSITE, COMPOSITE_MERGED, DEFORM)
