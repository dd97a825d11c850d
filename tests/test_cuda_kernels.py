"""CUDA kernel paths added for issue 17 / issue 11 (each compared with the reference or with
the CPU kernel), with CPU variants wherever the behaviour is shared with the CPU."""
from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import nofa.ops as ops
from nofa.ops import reference

from conftest import DEVICES, HAS_CUDA, assert_grads_close, rel_err, require_kernels

cuda_only = [pytest.mark.cuda, pytest.mark.skipif(not HAS_CUDA, reason="no CUDA GPU visible: CUDA kernel not exercised")]


def decoder_inputs(N, M, C, Hd, F, device, H=24, W=20, dtype=torch.float32):
    planes = torch.randn(N, 3, C, H, W, device=device, dtype=dtype)
    points = (torch.rand(N, M, 3, device=device, dtype=dtype) * 2 - 1) * 0.6  # some outside
    w0 = torch.randn(Hd, C, device=device, dtype=dtype) / C ** 0.5
    b0 = torch.randn(Hd, device=device, dtype=dtype)
    w1 = torch.randn(1 + F, Hd, device=device, dtype=dtype) / Hd ** 0.5
    b1 = torch.randn(1 + F, device=device, dtype=dtype)
    return [planes, points, w0, b0, w1, b1]


# ---- decode_triplane: the fast kernel (EG3D sizes, density-only row) and the general one ---
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    "C,Hd,F,M",
    [(32, 64, 32, 1000), (32, 64, 0, 300), (3, 5, 2, 129), (40, 24, 3, 257)],
    ids=["eg3d", "density-only", "tiny", "general-path"],
)
def test_decode_triplane_sizes(device, C, Hd, F, M):
    require_kernels(device)
    t = [x.requires_grad_() for x in decoder_inputs(2, M, C, Hd, F, device)]
    with ops.trace_backends() as tr:
        got = ops.decode_triplane(t[0], t[1], 1.1, *t[2:])
    assert tr.backends("decode_triplane") == {"kernels"}
    want = reference.decode_triplane(t[0], t[1], 1.1, *t[2:])
    for g, w in zip(got, want):
        assert g.shape == w.shape and rel_err(g, w) <= 1e-5
    cots = [torch.randn_like(g) for g in got]
    gk = torch.autograd.grad(got, t, cots)
    gr = torch.autograd.grad(want, t, cots)
    assert_grads_close(gk, gr, tol=1e-4, names=["planes", "points", "w0", "b0", "w1", "b1"])


@pytest.mark.parametrize("device", DEVICES)
def test_decode_triplane_channels_last_planes(device):
    require_kernels(device)
    t = decoder_inputs(1, 500, 32, 64, 32, device)
    cl = ops.channels_last_planes(t[0])
    for g, w in zip(ops.decode_triplane(cl, t[1], 1.0, *t[2:]), reference.decode_triplane(*t[:2], 1.0, *t[2:])):
        assert rel_err(g, w) <= 1e-5


@pytest.mark.parametrize("device", [pytest.param("cuda", marks=cuda_only)])
@pytest.mark.parametrize("bad", ["C", "hidden"])
def test_decode_triplane_zero_widths_raise(device, bad):
    require_kernels(device)
    C, Hd = (0, 4) if bad == "C" else (4, 0)
    planes, points, w0, b0, w1, b1 = decoder_inputs(1, 10, max(C, 1), max(Hd, 1), 2, device)
    planes, w0 = planes[:, :, :C], w0[:Hd, :C]
    b0, w1 = b0[:Hd], w1[:, :Hd]
    word = "planes must have C >= 1" if bad == "C" else "hidden >= 1"
    with pytest.raises(RuntimeError, match=word):
        torch.ops.nofa.decode_triplane(planes, points, 1.0, w0, b0, w1, b1)
    g = torch.zeros(1, 10, 1, device=device)
    with pytest.raises(RuntimeError, match=word):
        torch.ops.nofa.decode_triplane_backward(g, g.expand(1, 10, 2).contiguous(), None, planes, points, 1.0,
                                                w0, b0, w1, b1, True, True)


# ---- the renderer relayouts planes once per render on CUDA as on the CPU -----------------
@pytest.mark.parametrize("device", DEVICES)
def test_render_relayouts_planes_once(device):
    require_kernels(device)
    from nofa.render.cameras import default_label
    from nofa.render.renderer import RenderOptions, TriplaneRenderer

    r = TriplaneRenderer(options=RenderOptions(coarse_samples=6, importance_samples=6, chunk_rays=32)).to(device)
    planes = torch.randn(1, 3, 32, 16, 16, device=device)
    labels = default_label(0.3, 0.1)[None].to(device)
    with ops.trace_backends() as tr:
        r(planes, labels, 8)
    assert tr.backends("decode_triplane") == {"kernels"}
    relayouts = [c for c in tr.calls if c[0] == "relayout_planes"]
    assert len(relayouts) == 1, tr.calls  # one per render, not one per chunk or call


# ---- composite_rays backward with a NaN depth (issue 11 item 6) ---------------------------
def nan_depth_inputs(device):
    N, R, S, C = 1, 5, 8, 3
    colors = torch.rand(N, R, S, C, device=device)
    dens = torch.randn(N, R, S, 1, device=device)
    depths = torch.sort(torch.rand(N, R, S, 1, device=device) * 2 + 1, dim=2).values
    depths[0, 2, 4, 0] = float("nan")
    return colors, dens, depths


@pytest.mark.parametrize("device", DEVICES)
def test_composite_nan_depth_gradient_stays_in_its_ray(device):
    """A NaN in depths makes both clamp bounds NaN; no element equals them, and the bounds'
    zero gradient must not become 0/0 spread over every depth (common/composite.h)."""
    require_kernels(device)
    colors, dens, depths = (t.requires_grad_() for t in nan_depth_inputs(device))
    with ops.use_backend("kernels"):
        feats, depth, weights = ops.composite_rays(colors, dens, depths)
    gz = torch.autograd.grad((feats.sum() + depth.sum() + weights.sum()), depths)[0]
    others = torch.ones(5, dtype=torch.bool)
    others[2] = False
    assert torch.isfinite(gz[0, others]).all(), gz[0, :, :, 0]
    assert torch.isfinite(depth[0, others]).all()


@pytest.mark.parametrize("device", [pytest.param("cuda", marks=cuda_only)])
def test_composite_nan_depth_cuda_matches_cpu(device):
    require_kernels(device)
    require_kernels("cpu")
    ins = nan_depth_inputs("cpu")
    outs = {}
    for dev in ("cpu", device):
        t = [x.to(dev).requires_grad_() for x in ins]
        with ops.use_backend("kernels"):
            o = ops.composite_rays(*t)
        g = torch.autograd.grad(o[0].sum() + o[1].sum() + o[2].sum(), t)
        outs[dev] = [x.detach().cpu() for x in (*o, *g)]
    # Same shared math; exp / log1p may round differently (--use_fast_math on CUDA).
    for a, b in zip(outs["cpu"], outs[device]):
        torch.testing.assert_close(b, a, equal_nan=True, rtol=1e-4, atol=1e-5)


# ---- deform_points: the CUDA forward saves no hidden activations ---------------------------
class _SaveHiddenFlags(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.flags = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.ops.nofa.deform_points.default:
            self.flags.append(kwargs.get("save_hidden", args[8] if len(args) > 8 else False))
        return func(*args, **kwargs)


@pytest.mark.parametrize("device", DEVICES)
def test_deform_points_saves_hidden_only_on_cpu(device):
    require_kernels(device)
    from nofa.models.deformation import DeformationField

    model = DeformationField(d_hidden=32, d_layers=3, w_hidden=32, w_layers=2, n_freqs=2, id_dim=4,
                             exp_dim=3).to(device)
    pts = torch.rand(1, 40, 3, device=device, requires_grad=True)
    alpha, beta = torch.randn(1, 4, device=device), torch.randn(1, 3, device=device)
    with ops.use_backend("kernels"), _SaveHiddenFlags() as mode:
        out = model(pts, alpha, beta)
    assert mode.flags == [device == "cpu"]
    out[0].sum().backward()
    assert torch.isfinite(pts.grad).all()


# ---- determinism alert of the atomic plane gradient (issue 11 item 10) -------------------
@pytest.mark.parametrize("device", [pytest.param("cuda", marks=cuda_only)])
def test_plane_gradient_alerts_under_deterministic_mode(device):
    require_kernels(device)
    planes = torch.randn(1, 3, 8, 6, 5, device=device, requires_grad=True)
    points = torch.rand(1, 20, 3, device=device, requires_grad=True)
    prev = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        with ops.use_backend("kernels"):
            out = ops.sample_triplane(planes, points, 1.0, "mean")
            with pytest.raises(RuntimeError, match="sample_triplane_backward"):
                torch.autograd.grad(out.sum(), planes)
            # The point gradient alone (warp shuffle reduction) is deterministic.
            out = ops.sample_triplane(planes.detach(), points, 1.0, "mean")
            g1 = torch.autograd.grad(out.sum(), points)[0]
            g2 = torch.autograd.grad(ops.sample_triplane(planes.detach(), points, 1.0, "mean").sum(), points)[0]
            assert torch.equal(g1, g2)
    finally:
        torch.use_deterministic_algorithms(prev)
