"""CUDA kernel paths beyond the per-op tests (decode_triplane's fast and fused kernels, the
renderer's plane relayout, NaN depths in compositing, deform_points' saved tensors, streams,
the determinism alert), each compared with the reference or with the CPU kernel, with CPU
variants wherever the behaviour is shared with the CPU."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from conftest import DEVICES, HAS_CUDA, assert_grads_close, rel_err, require_kernels
from torch.utils._python_dispatch import TorchDispatchMode

import nofa.ops as ops
from nofa.ops import reference

cuda_only = [
    pytest.mark.cuda,
    pytest.mark.skipif(not HAS_CUDA, reason="no CUDA GPU visible: CUDA kernel not exercised"),
]


def decoder_inputs(N, M, C, Hd, F, device, H=24, W=20, dtype=torch.float32):
    planes = torch.randn(N, 3, C, H, W, device=device, dtype=dtype)
    points = (torch.rand(N, M, 3, device=device, dtype=dtype) * 2 - 1) * 0.6  # some outside
    w0 = torch.randn(Hd, C, device=device, dtype=dtype) / C**0.5
    b0 = torch.randn(Hd, device=device, dtype=dtype)
    w1 = torch.randn(1 + F, Hd, device=device, dtype=dtype) / Hd**0.5
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
    for g, w in zip(
        ops.decode_triplane(cl, t[1], 1.0, *t[2:]), reference.decode_triplane(*t[:2], 1.0, *t[2:])
    ):
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
        torch.ops.nofa.decode_triplane_backward(
            g,
            g.expand(1, 10, 2).contiguous(),
            None,
            planes,
            points,
            1.0,
            w0,
            b0,
            w1,
            b1,
            True,
            True,
            True,
        )


# ---- the renderer relayouts planes once per render on CUDA as on the CPU -----------------
@pytest.mark.parametrize("device", DEVICES)
def test_render_relayouts_planes_once(device):
    require_kernels(device)
    from nofa.render.cameras import default_label
    from nofa.render.renderer import RenderOptions, TriplaneRenderer

    r = TriplaneRenderer(
        options=RenderOptions(coarse_samples=6, importance_samples=6, chunk_rays=32)
    ).to(device)
    planes = torch.randn(1, 3, 32, 16, 16, device=device)
    labels = default_label(0.3, 0.1)[None].to(device)
    with ops.trace_backends() as tr:
        r(planes, labels, 8)
    assert tr.backends("decode_triplane") == {"kernels"}
    relayouts = [c for c in tr.calls if c[0] == "channels_last_planes"]
    assert len(relayouts) == 1, tr.calls  # one per render, not one per chunk or call


# ---- composite_rays backward with a NaN depth ---------------------------------------------
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

    model = DeformationField(
        d_hidden=32, d_layers=3, w_hidden=32, w_layers=2, n_freqs=2, id_dim=4, exp_dim=3
    ).to(device)
    pts = torch.rand(1, 40, 3, device=device, requires_grad=True)
    alpha, beta = torch.randn(1, 4, device=device), torch.randn(1, 3, device=device)
    with ops.use_backend("kernels"), _SaveHiddenFlags() as mode:
        out = model(pts, alpha, beta)
    assert mode.flags == [device == "cpu"]
    out[0].sum().backward()
    assert torch.isfinite(pts.grad).all()


# ---- streams: every launch, and every ATen call of the glue, on the caller's stream -------
def _stream_sample(dev):
    planes = torch.randn(2, 3, 32, 64, 64, device=dev)
    points = (torch.rand(2, 4096, 3, device=dev) * 2 - 1) * 0.6
    return (
        "sample_triplane",
        (lambda p, x: (ops.sample_triplane(p, x, 1.0, "mean"),)),
        [planes, points],
    )


def _stream_decode(dtype, C):
    def make(dev):
        t = decoder_inputs(2, 3000, C, 64, 32, dev, H=64, W=64, dtype=dtype)
        return "decode_triplane", (lambda *a: ops.decode_triplane(a[0], a[1], 1.0, *a[2:])), t

    return make


def _stream_composite(dev):
    colors = torch.rand(1, 1024, 24, 32, device=dev)
    dens = torch.randn(1, 1024, 24, 1, device=dev)
    depths = torch.sort(torch.rand(1, 1024, 24, 1, device=dev) * 2 + 1, dim=2).values
    return (
        "composite_rays",
        (lambda c, d, z: ops.composite_rays(c, d, z, True)),
        [colors, dens, depths],
    )


def _stream_merged(dev):
    sets = []
    for S in (16, 12):
        sets += [
            torch.rand(1, 1024, S, 32, device=dev),
            torch.randn(1, 1024, S, 1, device=dev),
            torch.sort(torch.rand(1, 1024, S, 1, device=dev) * 2 + 1, dim=2).values,
        ]
    return "composite_rays_merged", (lambda *a: ops.composite_rays_merged(*a, True)), sets


def _stream_deform(dev):
    from nofa.models.deformation import DeformationField

    m = DeformationField(
        d_hidden=64, d_layers=3, w_hidden=32, w_layers=2, n_freqs=4, id_dim=4, exp_dim=3
    ).to(dev)
    weights = [list(m.d_weights), list(m.d_biases), list(m.w_weights), list(m.w_biases)]
    pts, alpha, beta = (
        torch.rand(2, 3000, 3, device=dev) * 2 - 1,
        torch.randn(2, 4, device=dev),
        torch.randn(2, 3, device=dev),
    )
    return (
        "deform_points",
        (lambda x, a, b: ops.deform_points(x, a, b, *weights, n_freqs=4)),
        [pts, alpha, beta],
    )


def _stream_relayout(dev):
    return (
        "channels_last_planes",
        (lambda p: (ops.channels_last_planes(p),)),
        [torch.randn(2, 3, 32, 64, 64, device=dev)],
    )


STREAM_CASES = {
    "sample_triplane": _stream_sample,
    "decode_triplane-fused": _stream_decode(torch.float32, 32),
    "decode_triplane-chunked": _stream_decode(torch.float64, 32),
    "composite_rays": _stream_composite,
    "composite_rays_merged": _stream_merged,
    "deform_points": _stream_deform,
    "channels_last_planes": _stream_relayout,
}


@pytest.mark.parametrize("device", [pytest.param("cuda", marks=cuda_only)])
@pytest.mark.parametrize("case", list(STREAM_CASES))
def test_kernels_run_on_the_callers_stream(device, case):
    """The CUDA glue launches its kernels, and runs its own ATen calls (transposes, GEMMs,
    aminmax, the deformation's first-layer bias), on the caller's current stream: the inputs
    are written on a side stream behind ~50 ms of GPU sleep, then the op runs forward and
    backward there. A launch on any other stream (the legacy default stream does not wait for
    PyTorch's non-blocking streams) would read the inputs before they are written. Compared
    with the same kernels run on the default stream."""
    require_kernels(device)
    op, fn, inputs = STREAM_CASES[case](device)
    ref_in = [t.clone().requires_grad_() for t in inputs]
    with ops.trace_backends() as tr:
        want = fn(*ref_in)
    assert tr.backends(op) == {"kernels"}
    cots = [torch.randn_like(w) for w in want]
    want_grads = torch.autograd.grad(want, ref_in, cots)
    late = [torch.zeros_like(t) for t in inputs]
    torch.cuda.synchronize()
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        torch.cuda._sleep(100_000_000)  # this stream only: nothing else waits for it
        for dst, src in zip(late, inputs):
            dst.copy_(src)
        x = [t.requires_grad_() for t in late]
        got = fn(*x)
        got_grads = torch.autograd.grad(
            got, x, cots
        )  # autograd runs the backward on the forward's stream
    torch.cuda.synchronize()
    for g, w in zip(got, want):
        assert rel_err(g, w) <= 1e-6, f"{case}: forward differs on a side stream"
    assert_grads_close(got_grads, want_grads, tol=1e-5)


# ---- determinism alert of the atomic plane gradient ---------------------------------------
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
            g2 = torch.autograd.grad(
                ops.sample_triplane(planes.detach(), points, 1.0, "mean").sum(), points
            )[0]
            assert torch.equal(g1, g2)
    finally:
        torch.use_deterministic_algorithms(prev)


# ---- decode_triplane backward: the fused CUDA kernel and the general path ----------------
GRAD_NAMES = ["planes", "points", "fc0_weight", "fc0_bias", "fc1_weight", "fc1_bias"]


def fused_backward_calls() -> int:
    return ops.build_info()["cuda_fused_decode_backward_calls"]


def takes_fused_backward(device, C, F, dtype=torch.float32) -> bool:
    """The sizes the fused CUDA backward takes (docs/decode_triplane.md, "CUDA")."""
    return device == "cuda" and dtype == torch.float32 and C <= 32 and 1 + F <= 33


def odd_layouts(t, planes_layout):
    """The same values in non-contiguous points / weights and the given planes layout."""
    planes, points, w0, b0, w1, b1 = t
    if planes_layout == "channels_last":
        planes = planes.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)
    else:
        planes = planes.contiguous()
    points = points.transpose(1, 2).contiguous().transpose(1, 2)
    w0, w1 = w0.t().contiguous().t(), w1.t().contiguous().t()
    return [planes, points, w0, b0, w1, b1]


BACKWARD_CASES = {
    # id: (N, M, C, Hd, F, dtype); the fused kernel works in tiles of 128 points and in
    # rounds of 8 hidden units
    "eg3d-partial-tile": (2, 1000, 32, 64, 32, torch.float32),
    "one-point": (1, 1, 32, 64, 32, torch.float32),
    "whole-tiles": (1, 256, 32, 64, 32, torch.float32),
    "density-only": (2, 300, 32, 64, 0, torch.float32),
    "tiny-odd-hidden": (3, 129, 3, 5, 2, torch.float32),
    "wide-hidden": (1, 200, 16, 203, 4, torch.float32),
    "general-C": (2, 257, 40, 24, 3, torch.float32),
    "general-F": (1, 300, 32, 64, 40, torch.float32),
    "general-float64": (2, 130, 8, 16, 5, torch.float64),
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("planes_layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("case", list(BACKWARD_CASES))
def test_decode_triplane_backward_paths(device, planes_layout, case):
    """Every gradient against the reference, on the path these sizes take: partial last
    tile, N > 1, non-contiguous points and weights, both plane layouts, points outside the
    box; on CUDA the fused kernel must have served exactly the fused sizes."""
    require_kernels(device)
    N, M, C, Hd, F, dtype = BACKWARD_CASES[case]
    t = odd_layouts(decoder_inputs(N, M, C, Hd, F, device, dtype=dtype), planes_layout)
    t = [x.detach().requires_grad_() for x in t]
    got = ops.decode_triplane(t[0], t[1], 1.1, *t[2:])
    cots = [torch.randn_like(g) for g in got]
    before = fused_backward_calls()
    gk = torch.autograd.grad(got, t, cots)
    assert fused_backward_calls() - before == (
        1 if takes_fused_backward(device, C, F, dtype) else 0
    )
    gr = torch.autograd.grad(reference.decode_triplane(t[0], t[1], 1.1, *t[2:]), t, cots)
    assert_grads_close(gk, gr, tol=1e-4, names=GRAD_NAMES)
    assert gk[0].stride() == torch.empty_like(t[0]).stride()  # the planes' own layout


@pytest.mark.parametrize("device", [pytest.param("cuda", marks=cuda_only)])
def test_decode_triplane_fused_backward_many_tiles(device):
    """More tiles than resident blocks: each block walks several tiles, and the per-block
    weight sums are reproducible bit for bit (no atomics on the weights)."""
    require_kernels(device)
    t = [x.requires_grad_() for x in decoder_inputs(1, 70001, 32, 64, 32, device)]
    got = ops.decode_triplane(t[0], t[1], 1.1, *t[2:])
    cots = [torch.randn_like(g) for g in got]
    before = fused_backward_calls()
    gk = torch.autograd.grad(got, t, cots, retain_graph=True)
    again = torch.autograd.grad(got, t[1:], cots)
    assert fused_backward_calls() - before == 2
    gr = torch.autograd.grad(reference.decode_triplane(t[0], t[1], 1.1, *t[2:]), t, cots)
    assert_grads_close(gk, gr, tol=1e-4, names=GRAD_NAMES)
    for a, b in zip(gk[1:], again):
        assert torch.equal(a, b)


REQUESTS = {
    "planes": [0],
    "points": [1],
    "weights": [2, 3, 4, 5],
    "fc1_bias": [5],
    "planes+fc0_weight": [0, 2],
    "points+weights": [1, 2, 3, 4, 5],
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    "C,Hd,F", [(32, 64, 32), (40, 24, 3)], ids=["fused-sizes", "general-sizes"]
)
@pytest.mark.parametrize("wanted", list(REQUESTS))
def test_decode_triplane_partial_gradient_requests(device, C, Hd, F, wanted):
    """Only some inputs require grad: those gradients match the reference, and the backward
    op returns empty tensors for the groups (planes / points / decoder) nobody asked for."""
    require_kernels(device)
    t = decoder_inputs(2, 300, C, Hd, F, device)
    sel = REQUESTS[wanted]
    for k in sel:
        t[k].requires_grad_()
    got = ops.decode_triplane(t[0], t[1], 0.9, *t[2:])
    cots = [torch.randn_like(g) for g in got]
    before = fused_backward_calls()
    gk = torch.autograd.grad(got, [t[k] for k in sel], cots)
    assert fused_backward_calls() - before == (1 if takes_fused_backward(device, C, F) else 0)
    gr = torch.autograd.grad(
        reference.decode_triplane(t[0], t[1], 0.9, *t[2:]), [t[k] for k in sel], cots
    )
    assert_grads_close(gk, gr, tol=1e-4, names=[GRAD_NAMES[k] for k in sel])
    flags = (0 in sel, 1 in sel, any(k >= 2 for k in sel))
    plain = [x.detach() for x in t]
    direct = torch.ops.nofa.decode_triplane_backward(
        *cots, None, plain[0], plain[1], 0.9, *plain[2:], *flags
    )
    for k, g in enumerate(direct):
        asked = flags[min(k, 2)]
        assert g.shape == (plain[k].shape if asked else (0,)), (GRAD_NAMES[k], g.shape)
        if k in sel:  # features=None here: the CPU recomputes the sigmoid (rounding)
            assert rel_err(g, gk[sel.index(k)]) <= 1e-5, GRAD_NAMES[k]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    "C,Hd,F", [(32, 64, 32), (40, 24, 3)], ids=["fused-sizes", "general-sizes"]
)
def test_decode_triplane_backward_nonfinite_points(device, C, Hd, F):
    """tests/test_op_rules.py's rule at both CUDA paths' sizes: a non-finite coordinate
    zeroes the planes that read it; every gradient stays finite and matches the reference."""
    require_kernels(device)
    nan, inf = float("nan"), float("inf")
    t = decoder_inputs(1, 140, C, Hd, F, device)
    bad = torch.tensor(
        [
            [nan, 0.1, 0.1],
            [0.1, nan, 0.1],
            [0.1, 0.1, nan],
            [inf, 0.1, 0.1],
            [0.1, -inf, 0.1],
            [0.1, 0.1, inf],
            [nan, nan, nan],
        ],
        device=device,
    )
    t[1][0, 3 : 3 + len(bad)] = bad
    t[1][0, 131] = bad[1]  # in the second tile too
    t = [x.requires_grad_() for x in t]
    got = ops.decode_triplane(t[0], t[1], 1.0, *t[2:])
    want = reference.decode_triplane(t[0], t[1], 1.0, *t[2:])
    cots = [torch.randn_like(g) for g in got]
    gk = torch.autograd.grad(got, t, cots)
    gr = torch.autograd.grad(want, t, cots)
    assert all(torch.isfinite(w).all() for w in gr)
    assert_grads_close(gk, gr, tol=1e-4, names=GRAD_NAMES)
    assert torch.equal(
        gk[1][0, 9], torch.zeros(3, device=device)
    )  # all-NaN point: no plane read it


@pytest.mark.parametrize("device", [pytest.param("cuda", marks=cuda_only)])
def test_decode_triplane_fused_backward_deterministic_mode(device):
    """Under torch.use_deterministic_algorithms the fused kernel's point and weight
    gradients run (no atomics) and repeat bit for bit; the plane gradient still alerts."""
    require_kernels(device)
    t = decoder_inputs(2, 500, 32, 64, 32, device)
    for k in range(1, 6):
        t[k].requires_grad_()
    prev = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        got = ops.decode_triplane(t[0], t[1], 1.0, *t[2:])
        cots = [torch.randn_like(g) for g in got]
        g1 = torch.autograd.grad(got, t[1:], cots, retain_graph=True)
        g2 = torch.autograd.grad(got, t[1:], cots)
        for a, b in zip(g1, g2):
            assert torch.equal(a, b)
        planes = t[0].clone().requires_grad_()
        out = ops.decode_triplane(planes, t[1], 1.0, *t[2:])
        with pytest.raises(RuntimeError, match="decode_triplane_backward"):
            torch.autograd.grad(out, planes, [torch.ones_like(o) for o in out])
    finally:
        torch.use_deterministic_algorithms(prev)


@pytest.mark.parametrize(
    "source",
    [
        "test_decode_backward_emulated.cpp",
        "test_composite_emulated.cpp",
        "test_sample_triplane_emulated.cpp",
        "test_decode_forward_emulated.cpp",
        "test_deform_emulated.cpp",
        "test_decode_chunked_emulated.cpp",
    ],
)
def test_cuda_kernel_sources_on_cpu_threads(tmp_path, source):
    """CUDA kernels' own source compiled for the CPU and run with one std::thread per CUDA
    thread (also run by ctest), where no GPU is:
    - test_decode_backward_emulated.cpp: the fused decode_triplane backward against a
      double-precision backward;
    - test_composite_emulated.cpp: the composite_rays / composite_rays_merged kernels (shuffles
      between std::threads), fed the host code's sample-major layouts, against
      common/composite.h at stride 1;
    - test_sample_triplane_emulated.cpp: the sample_triplane kernels (forward, vec4, half planes,
      plane and point gradients) against a double-precision sampler;
    - test_decode_forward_emulated.cpp: the decode_triplane forward kernels (fast, general, half
      planes) against a double-precision decoder;
    - test_deform_emulated.cpp: the deform_points forward and backward kernels, driven as the
      glue drives them (layouts, chunk loop, host weight-gradient products), against a
      double-precision forward and backward;
    - test_decode_chunked_emulated.cpp: decode_triplane's chunked CUDA backward (float64, and
      float32 sizes the fused kernel does not take): the host loop's sample_triplane launches
      on offset pointers, with the ATen math as loops, against a double-precision backward."""
    cxx = shutil.which(os.environ.get("CXX", "g++")) or shutil.which("c++")
    if cxx is None:
        pytest.skip("no C++ compiler on PATH")
    root = Path(__file__).resolve().parents[1]
    exe = tmp_path / "emulated"
    build = subprocess.run(
        [
            cxx,
            "-std=c++20",
            "-O1",
            "-pthread",
            "-I",
            str(root / "csrc"),
            str(root / "tests" / "cpp" / source),
            "-o",
            str(exe),
        ],
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "all checks passed" in run.stdout
