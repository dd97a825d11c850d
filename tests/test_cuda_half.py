"""Half precision (issue 17 item 3): under torch.autocast("cuda") the tri-plane kernels read
float16 / bfloat16 planes with float32 points, taps and accumulation; compared with the
float32 reference under the tolerances documented in docs/sample_triplane.md. On the CPU
autocast changes nothing (float32 kernels)."""
from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import nofa.ops as ops
from nofa.ops import reference

from conftest import DEVICES, HAS_CUDA, rel_err, require_kernels

cuda_only = [pytest.mark.cuda, pytest.mark.skipif(not HAS_CUDA, reason="no CUDA GPU visible: CUDA kernel not exercised")]

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
    w0 = torch.randn(Hd, C, device=device) / C ** 0.5
    b0 = torch.randn(Hd, device=device)
    w1 = torch.randn(1 + F, Hd, device=device) / Hd ** 0.5
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

    r = TriplaneRenderer(options=RenderOptions(coarse_samples=12, importance_samples=12, deterministic=True)).to(device)
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
    assert s_auto.dtype == torch.float32 and torch.equal(s_auto, ops.sample_triplane(t[0], t[1], 1.0, "mean"))
