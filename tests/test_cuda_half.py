"""Half precision: under torch.autocast("cuda") the tri-plane kernels read
float16 / bfloat16 planes with float32 points, taps and accumulation, and the compositing
kernels float16 / bfloat16 colours with float32 densities, depths and accumulation; compared
with the float32 reference under the tolerances documented in docs/sample_triplane.md and
docs/composite_rays.md. On the CPU autocast changes nothing (float32 kernels)."""

from __future__ import annotations

import pytest
import torch
from conftest import HAS_CUDA, rel_err, require_kernels
from test_composite_merged import make_sets
from test_composite_rays import make_inputs as composite_inputs
from torch.utils._python_dispatch import TorchDispatchMode

import nofa.ops as ops
from nofa.ops import reference

cuda_only = [
    pytest.mark.cuda,
    pytest.mark.skipif(not HAS_CUDA, reason="no CUDA GPU visible: CUDA kernel not exercised"),
]

# Norm-wise relative error vs the float32 reference: forward outputs, then gradients. The
# planes are rounded once to the half type (relative 2^-9 for bfloat16, 2^-12 for float16);
# everything after that runs in float32.
FWD_TOL = {torch.bfloat16: 1.5e-2, torch.float16: 2e-3}
GRAD_TOL = {torch.bfloat16: 3e-2, torch.float16: 4e-3}
HALF = [pytest.param(torch.bfloat16, id="bf16"), pytest.param(torch.float16, id="fp16")]


class _PlaneDtypes(TorchDispatchMode):
    """Records the planes dtype each nofa tri-plane op receives (below autocast)."""

    def __init__(self):
        super().__init__()
        self.seen = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in (torch.ops.nofa.decode_triplane.default, torch.ops.nofa.sample_triplane.default):
            self.seen.setdefault(func.__name__.split(".")[0], set()).add(args[0].dtype)
        return func(*args, **(kwargs or {}))


def decoder_inputs(N, M, C, Hd, F, device):
    planes = torch.randn(N, 3, C, 24, 20, device=device)
    points = (torch.rand(N, M, 3, device=device) * 2 - 1) * 0.6
    w0 = torch.randn(Hd, C, device=device) / C**0.5
    b0 = torch.randn(Hd, device=device)
    w1 = torch.randn(1 + F, Hd, device=device) / Hd**0.5
    b1 = torch.randn(1 + F, device=device)
    return [t.requires_grad_() for t in (planes, points, w0, b0, w1, b1)]


@pytest.mark.parametrize("device", [pytest.param("cuda", marks=cuda_only)])
@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("C,Hd,F", [(32, 64, 32), (40, 16, 3)], ids=["fast-kernel", "upcast-path"])
def test_decode_triplane_autocast(device, dtype, C, Hd, F):
    require_kernels(device)
    t = decoder_inputs(2, 700, C, Hd, F, device)
    with _PlaneDtypes() as mode, torch.autocast("cuda", dtype=dtype), ops.trace_backends() as tr:
        dens, feats = ops.decode_triplane(t[0], t[1], 1.0, *t[2:])
    assert tr.backends("decode_triplane") == {"kernels"}
    assert mode.seen["decode_triplane"] == {dtype}  # the kernel got half planes
    assert dens.dtype == feats.dtype == torch.float32
    want = reference.decode_triplane(t[0], t[1], 1.0, *t[2:])
    assert rel_err(dens, want[0]) <= FWD_TOL[dtype] and rel_err(feats, want[1]) <= FWD_TOL[dtype]
    cots = [torch.randn_like(dens), torch.randn_like(feats)]
    got_g = torch.autograd.grad((dens, feats), t, cots)
    want_g = torch.autograd.grad(want, t, cots)
    for name, g, w in zip(("planes", "points", "w0", "b0", "w1", "b1"), got_g, want_g):
        assert g.dtype == torch.float32, name  # through the autocast cast back to the leaves
        assert rel_err(g, w) <= GRAD_TOL[dtype], f"{name}: {rel_err(g, w):.3g}"


@pytest.mark.parametrize("device", [pytest.param("cuda", marks=cuda_only)])
@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("reduce", ["mean", "concat"])
def test_sample_triplane_autocast(device, dtype, reduce):
    require_kernels(device)
    planes = torch.randn(2, 3, 16, 24, 20, device=device, requires_grad=True)
    points = ((torch.rand(2, 500, 3, device=device) * 2 - 1) * 0.6).requires_grad_()
    with _PlaneDtypes() as mode, torch.autocast("cuda", dtype=dtype):
        out = ops.sample_triplane(planes, points, 1.0, reduce)
    assert mode.seen["sample_triplane"] == {dtype} and out.dtype == dtype
    want = reference.sample_triplane(planes, points, 1.0, reduce)
    assert rel_err(out.float(), want) <= FWD_TOL[dtype]
    cot = torch.randn_like(want)
    got_g = torch.autograd.grad(out, (planes, points), cot.to(dtype))
    want_g = torch.autograd.grad(want, (planes, points), cot)
    for name, g, w in zip(("planes", "points"), got_g, want_g):
        assert g.dtype == torch.float32 and rel_err(g, w) <= GRAD_TOL[dtype], name


@pytest.mark.parametrize("device", [pytest.param("cuda", marks=cuda_only)])
@pytest.mark.parametrize("dtype", HALF)
def test_direct_half_plane_calls(device, dtype):
    """The ops take half planes with float32 points directly too (what autocast passes)."""
    require_kernels(device)
    t = [x.detach() for x in decoder_inputs(1, 300, 32, 64, 32, device)]
    got = torch.ops.nofa.decode_triplane(t[0].to(dtype), t[1], 1.0, *t[2:])
    want = reference.decode_triplane(t[0].to(dtype).float(), t[1], 1.0, *t[2:])
    for g, w in zip(got, want):
        assert g.dtype == torch.float32 and rel_err(g, w) <= 1e-5  # same inputs after rounding
    out = torch.ops.nofa.sample_triplane(t[0].to(dtype), t[1], 1.0, "mean")
    ref = reference.sample_triplane(t[0].to(dtype).float(), t[1], 1.0, "mean")
    assert out.dtype == dtype and rel_err(out.float(), ref) <= FWD_TOL[dtype] / 4
    with pytest.raises(RuntimeError, match="points must be float32"):
        torch.ops.nofa.sample_triplane(t[0].to(dtype), t[1].double(), 1.0, "mean")


@pytest.mark.parametrize("device", [pytest.param("cuda", marks=cuda_only)])
def test_render_under_autocast(device):
    require_kernels(device)
    from nofa.render.cameras import default_label
    from nofa.render.renderer import RenderOptions, TriplaneRenderer

    r = TriplaneRenderer(
        options=RenderOptions(coarse_samples=12, importance_samples=12, deterministic=True)
    ).to(device)
    planes = torch.randn(1, 3, 32, 32, 32, device=device)
    labels = default_label(0.2, 0.0)[None].to(device)
    ref = r(planes, labels, 16).rgb
    with torch.autocast("cuda", dtype=torch.bfloat16):
        got = r(planes, labels, 16).rgb
    assert torch.isfinite(got).all() and rel_err(got.float(), ref) <= 5e-2


@pytest.mark.parametrize("device", ["cpu"])
def test_cpu_autocast_keeps_float32(device):
    """No CPU autocast registration: the CPU kernels run in float32, bit for bit as without."""
    require_kernels(device)
    t = [x.detach() for x in decoder_inputs(1, 200, 8, 16, 3, device)]
    plain = ops.decode_triplane(t[0], t[1], 1.0, *t[2:])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        auto = ops.decode_triplane(t[0], t[1], 1.0, *t[2:])
        s_auto = ops.sample_triplane(t[0], t[1], 1.0, "mean")
    assert all(a.dtype == torch.float32 and torch.equal(a, p) for a, p in zip(auto, plain))
    assert s_auto.dtype == torch.float32 and torch.equal(
        s_auto, ops.sample_triplane(t[0], t[1], 1.0, "mean")
    )


# ---- composite_rays / composite_rays_merged: half colours (docs/composite_rays.md) --------
class _CompositeDtypes(TorchDispatchMode):
    """Records the (colours, densities, depths) dtypes each compositing op receives."""

    OPS = {
        torch.ops.nofa.composite_rays.default: "composite_rays",
        torch.ops.nofa.composite_rays_merged.default: "composite_rays_merged",
    }

    def __init__(self):
        super().__init__()
        self.seen = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in self.OPS:
            self.seen.setdefault(self.OPS[func], set()).add(tuple(a.dtype for a in args[:3]))
        return func(*args, **(kwargs or {}))


def strided(colors, densities, depths):
    """Non-contiguous views of the same values (strided channels, transposed densities)."""
    colors = torch.cat([colors, colors], -1)[..., ::2]
    densities = densities.transpose(1, 2).contiguous().transpose(1, 2)
    depths = torch.cat([depths, depths], -1)[..., :1]
    return colors, densities, depths


# (N, R, S, C): EG3D-like, the smallest S with C not a multiple of 32, C < 32 (idle lanes of
# the colour dot product), C > 32 (loops), and no rays.
COMPOSITE_SHAPES = [(2, 300, 48, 32), (1, 77, 2, 33), (2, 50, 3, 5), (1, 20, 9, 96), (2, 0, 6, 4)]


@pytest.mark.parametrize("device", [pytest.param("cuda", marks=cuda_only)])
@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("shape", COMPOSITE_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("layout", ["contiguous", "strided"])
def test_composite_rays_autocast(device, dtype, shape, layout):
    require_kernels(device)
    inputs = composite_inputs(*shape, device)
    if layout == "strided":
        inputs = strided(*inputs)
    leaves = [t.requires_grad_() for t in inputs]
    white_back = shape[3] % 2 == 1
    with (
        _CompositeDtypes() as mode,
        torch.autocast("cuda", dtype=dtype),
        ops.trace_backends() as tr,
    ):
        got = ops.composite_rays(*leaves, white_back=white_back)
    assert tr.backends("composite_rays") == {"kernels"}
    assert mode.seen["composite_rays"] == {
        (dtype, torch.float32, torch.float32)
    }  # the kernel got half colours
    want = reference.composite_rays(*leaves, white_back)
    for name, g, w in zip(("features", "depth", "weights"), got, want):
        assert g.dtype == torch.float32 and g.shape == w.shape, name
        assert rel_err(g, w) <= FWD_TOL[dtype], f"{name}: {rel_err(g, w):.3g}"
    cots = [torch.randn_like(w) for w in want]
    got_g = torch.autograd.grad(got, leaves, cots)
    want_g = torch.autograd.grad(want, leaves, cots)
    for name, g, w in zip(("colors", "densities", "depths"), got_g, want_g):
        assert g.dtype == torch.float32 and g.shape == w.shape, name  # through the autocast cast
        assert torch.isfinite(g).all() and rel_err(g, w) <= GRAD_TOL[dtype], (
            f"{name}: {rel_err(g, w):.3g}"
        )


@pytest.mark.parametrize("device", [pytest.param("cuda", marks=cuda_only)])
@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("sizes", [(48, 48), (5, 0), (3, 7)], ids=lambda s: f"{s[0]}+{s[1]}")
def test_composite_rays_merged_autocast(device, dtype, sizes):
    require_kernels(device)
    leaves = [t.requires_grad_() for t in make_sets(2, 40, *sizes, 33, device)]
    with (
        _CompositeDtypes() as mode,
        torch.autocast("cuda", dtype=dtype),
        ops.trace_backends() as tr,
    ):
        got = ops.composite_rays_merged(*leaves, white_back=True)
    assert tr.backends("composite_rays_merged") == {"kernels"}
    assert mode.seen["composite_rays_merged"] == {(dtype, torch.float32, torch.float32)}
    want = reference.composite_rays_merged(*leaves, True)
    for name, g, w in zip(("features", "depth", "weights"), got, want):
        assert g.dtype == torch.float32 and rel_err(g, w) <= FWD_TOL[dtype], name
    cots = [torch.randn_like(w) for w in want]
    got_g = torch.autograd.grad(got, leaves, cots)
    want_g = torch.autograd.grad(want, leaves, cots)
    names = ("colors_a", "densities_a", "depths_a", "colors_b", "densities_b", "depths_b")
    for name, g, w in zip(names, got_g, want_g):
        assert g.dtype == torch.float32 and torch.isfinite(g).all(), name
        assert rel_err(g, w) <= GRAD_TOL[dtype], f"{name}: {rel_err(g, w):.3g}"


@pytest.mark.parametrize("device", [pytest.param("cuda", marks=cuda_only)])
@pytest.mark.parametrize("dtype", HALF)
def test_composite_direct_half_colours(device, dtype):
    """Half colours with float32 densities / depths (what autocast passes) give the float32
    kernel's results on the same rounded colours; the colour gradient is in the colours' type."""
    require_kernels(device)
    c, d, z = composite_inputs(2, 50, 12, 33, device)
    ch = c.to(dtype)
    got = torch.ops.nofa.composite_rays(ch, d, z, True)
    want = torch.ops.nofa.composite_rays(ch.float(), d, z, True)
    for g, w in zip(got, want):
        assert g.dtype == torch.float32 and rel_err(g, w) <= 1e-6
    cots = [torch.randn_like(w) for w in want]
    gh = torch.ops.nofa.composite_rays_backward(*cots, ch, d, z, True, True, True, True)
    gf = torch.ops.nofa.composite_rays_backward(*cots, ch.float(), d, z, True, True, True, True)
    assert [g.dtype for g in gh] == [dtype, torch.float32, torch.float32]
    # The same float32 values, rounded once to the half type (unit roundoff 2^-8 for bfloat16,
    # 2^-11 for float16).
    assert rel_err(gh[0].float(), gf[0]) <= {torch.bfloat16: 2**-8, torch.float16: 2**-11}[dtype]
    assert rel_err(gh[1], gf[1]) <= 1e-5 and rel_err(gh[2], gf[2]) <= 1e-5
    ca, da, za, cb, db, zb = make_sets(1, 30, 6, 4, 5, device)
    got = torch.ops.nofa.composite_rays_merged(ca.to(dtype), da, za, cb.to(dtype), db, zb, False)
    want = torch.ops.nofa.composite_rays_merged(
        ca.to(dtype).float(), da, za, cb.to(dtype).float(), db, zb, False
    )
    for g, w in zip(got, want):
        assert g.dtype == torch.float32 and rel_err(g, w) <= 1e-6
    with pytest.raises(RuntimeError, match="densities must be float32"):
        torch.ops.nofa.composite_rays(ch, d.to(dtype), z, False)
    with pytest.raises(RuntimeError, match="S >= 2"):  # one sample: no interval
        torch.ops.nofa.composite_rays(ch[:, :, :1], d[:, :, :1], z[:, :, :1], False)
    with torch.autocast("cuda", dtype=dtype), pytest.raises(ValueError, match="S >= 2"):
        ops.composite_rays(c[:, :, :1], d[:, :, :1], z[:, :, :1])
    with pytest.raises(RuntimeError, match="depths_b must be float32"):
        torch.ops.nofa.composite_rays_merged(
            ca.to(dtype), da, za, cb.to(dtype), db, zb.double(), False
        )


def test_composite_fake_dtypes_with_half_colours():
    """The fake (meta) kernels give the CUDA kernels' dtypes: float32 outputs with half
    colours, the colour gradient in the colours' dtype."""
    require_kernels("cpu")  # the registrations come with the extension
    c, d, z = (t.to("meta") for t in composite_inputs(2, 6, 5, 3))
    for dtype in (torch.float16, torch.bfloat16):
        outs = torch.ops.nofa.composite_rays(c.to(dtype), d, z, False)
        assert [o.dtype for o in outs] == [torch.float32] * 3
        grads = torch.ops.nofa.composite_rays_backward(
            *outs, c.to(dtype), d, z, False, True, True, True
        )
        assert [g.dtype for g in grads] == [dtype, torch.float32, torch.float32]
        merged = torch.ops.nofa.composite_rays_merged(c.to(dtype), d, z, c.to(dtype), d, z, False)
        assert [o.dtype for o in merged] == [torch.float32] * 3 and merged[2].shape == (2, 6, 9, 1)
        grads = torch.ops.nofa.composite_rays_merged_backward(
            *merged, c.to(dtype), d, z, c.to(dtype), d, z, False, True, True, True
        )
        assert [g.dtype for g in grads] == [dtype, torch.float32, torch.float32] * 2


def test_cpu_half_colours_rejected():
    """The CPU kernels take no half colours, as sample_triplane's take no half planes: a clear
    error naming the argument (the public ops check dtypes before dispatching)."""
    require_kernels("cpu")
    c, d, z = composite_inputs(1, 4, 5, 3)
    with pytest.raises(RuntimeError, match="planes must be float32 or float64"):
        torch.ops.nofa.sample_triplane(
            torch.randn(1, 3, 2, 4, 4).half(), torch.rand(1, 5, 3), 1.0, "mean"
        )
    with pytest.raises(RuntimeError, match="colors must be float32 or float64, got Half"):
        torch.ops.nofa.composite_rays(c.half(), d, z, False)
    with pytest.raises(RuntimeError, match="colors_a must be float32 or float64, got BFloat16"):
        torch.ops.nofa.composite_rays_merged(c.bfloat16(), d, z, c.bfloat16(), d, z, False)
    with pytest.raises(TypeError, match="colors must be float32 or float64"):
        ops.composite_rays(c.half(), d, z)


def test_cpu_autocast_keeps_composite_float32():
    require_kernels("cpu")
    c, d, z = composite_inputs(2, 30, 9, 4)
    plain = ops.composite_rays(c, d, z, True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        auto = ops.composite_rays(c, d, z, True)
    assert all(a.dtype == torch.float32 and torch.equal(a, p) for a, p in zip(auto, plain))
