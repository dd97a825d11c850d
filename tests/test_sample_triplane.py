"""sample_triplane: kernels vs the pure-PyTorch reference, gradients, opcheck, errors."""

from __future__ import annotations

import pytest
import torch
from conftest import DEVICES, assert_grads_close, rel_err, require_kernels

import nofa.ops as ops


def _inputs(N, C, H, W, M, device, dtype=torch.float32, box_warp=1.0, spread=1.3):
    planes = torch.randn(N, 3, C, H, W, device=device, dtype=dtype)
    # Points span slightly more than the box, so some fall outside (zero padding).
    points = (torch.rand(N, M, 3, device=device, dtype=dtype) * 2 - 1) * (box_warp / 2) * spread
    return planes, points


def _run(backend, planes, points, box_warp, reduce, cot=None):
    p = planes.detach().clone().requires_grad_()
    x = points.detach().clone().requires_grad_()
    with ops.use_backend(backend), ops.trace_backends() as tr:
        out = ops.sample_triplane(p, x, box_warp, reduce)
    assert tr.backends("sample_triplane") == {"kernels" if backend == "kernels" else "torch"}
    grads = None
    if cot is not None:
        grads = torch.autograd.grad(out, (p, x), cot, allow_unused=True)
    return out, grads


def _compare(planes, points, box_warp=1.0, reduce="mean", atol=1e-5):
    out_k, _ = _run("kernels", planes, points, box_warp, reduce)
    cot = torch.randn_like(out_k)
    out_k, g_k = _run("kernels", planes, points, box_warp, reduce, cot)
    out_r, g_r = _run("torch", planes, points, box_warp, reduce, cot)
    assert out_k.shape == out_r.shape
    if out_r.numel():
        assert (out_k - out_r).abs().max().item() <= atol
    assert_grads_close(g_k, g_r, 1e-4, names=("planes", "points"))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("N", [1, 3])
@pytest.mark.parametrize("C", [1, 8, 32])
@pytest.mark.parametrize("reduce", ["mean", "concat"])
def test_matches_reference(device, N, C, reduce):
    require_kernels(device)
    planes, points = _inputs(N, C, 12, 20, 500, device)  # H != W
    _compare(planes, points, 1.0, reduce)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("box_warp", [0.5, 2.0, 3.7])
def test_box_warp(device, box_warp):
    require_kernels(device)
    planes, points = _inputs(2, 8, 16, 9, 400, device, box_warp=box_warp)
    _compare(planes, points, box_warp)


@pytest.mark.parametrize("device", DEVICES)
def test_points_outside_read_zeros(device):
    require_kernels(device)
    planes, _ = _inputs(1, 4, 8, 8, 1, device)
    far = torch.tensor(
        [[[5.0, 0.0, 0.0], [0.0, -7.0, 0.0], [0.0, 0.0, 9.0], [1e9, -1e9, 1e9]]], device=device
    )
    with ops.use_backend("kernels"):
        out = ops.sample_triplane(planes, far, 1.0, "concat")
    # The first three points are outside on one axis: the planes that do not see that axis
    # still read real values; the last point is outside everything and reads exact zeros.
    assert torch.all(out[0, 3] == 0)
    _compare(planes, far)


@pytest.mark.parametrize("device", DEVICES)
def test_texel_centres_and_borders(device):
    require_kernels(device)
    H, W = 6, 10
    planes, _ = _inputs(1, 5, H, W, 1, device)
    # Texel centres are at (2i + 1) / size - 1; borders at +-1 and at texel edges 2i/size - 1.
    cx = (2 * torch.arange(W) + 1) / W - 1
    ex = 2 * torch.arange(W + 1) / W - 1
    vals = torch.cat([cx, ex, torch.tensor([-1.0, 1.0])])
    g = torch.stack(torch.meshgrid(vals, vals[: len(vals) // 2], indexing="ij"), -1).reshape(-1, 2)
    pts = torch.cat([g, g[:, :1] * 0.5], -1)[None].to(device)
    _compare(planes, pts, box_warp=2.0)  # box_warp 2: world coordinates are normalised ones
    # On an (x, y) texel centre of plane 0 with z chosen outside, the result is exactly the texel.
    c = planes[0, 0]
    pts = torch.tensor([[[cx[3], (2 * 2 + 1) / H - 1, 5.0]]], device=device)
    with ops.use_backend("kernels"):
        out = ops.sample_triplane(planes, pts, 2.0, "concat")
    torch.testing.assert_close(out[0, 0, :5], c[:, 2, 3], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("device", DEVICES)
def test_non_contiguous(device):
    require_kernels(device)
    base = torch.randn(2, 3, 11, 8, 4, device=device)
    planes = base.permute(0, 1, 3, 4, 2)  # [2, 3, 8, 4, 11] view, not contiguous
    points = (torch.rand(2, 3, 300, device=device) * 2.4 - 1.2).transpose(1, 2)
    assert not planes.is_contiguous() and not points.is_contiguous()
    _compare(planes, points, 1.0, "mean")
    _compare(planes, points, 1.0, "concat")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduce", ["mean", "concat"])
def test_empty_points(device, reduce):
    require_kernels(device)
    planes, points = _inputs(2, 8, 5, 5, 0, device)
    out_k, g_k = _run("kernels", planes, points, 1.0, reduce, None)
    assert out_k.shape == (2, 0, 8 if reduce == "mean" else 24)
    p = planes.clone().requires_grad_()
    with ops.use_backend("kernels"):
        out = ops.sample_triplane(p, points, 1.0, reduce)
    (gp,) = torch.autograd.grad(out.sum(), p)
    assert torch.all(gp == 0)


@pytest.mark.parametrize("reduce", ["mean", "concat"])
def test_gradcheck_float64_cpu(reduce):
    require_kernels("cpu")
    planes, points = _inputs(2, 3, 5, 7, 20, "cpu", torch.float64, box_warp=1.5)
    # Keep points off the texel grid lines, where bilinear interpolation has a kink.
    planes.requires_grad_()
    points.requires_grad_()
    with ops.use_backend("kernels"):
        assert torch.autograd.gradcheck(
            lambda p, x: ops.sample_triplane(p, x, 1.5, reduce), (planes, points)
        )


@pytest.mark.parametrize("device", DEVICES)
def test_opcheck(device):
    require_kernels(device)
    planes, points = _inputs(2, 4, 6, 5, 30, device)
    for reduce in ("mean", "concat"):
        torch.library.opcheck(
            torch.ops.nofa.sample_triplane.default,
            (planes.requires_grad_(), points.requires_grad_(), 1.0, reduce),
        )
        torch.library.opcheck(
            torch.ops.nofa.sample_triplane_backward.default,
            (
                torch.randn(2, 30, 4 if reduce == "mean" else 12, device=device),
                planes.detach(),
                points.detach(),
                1.0,
                reduce,
                True,
                True,
            ),
        )


def test_kernel_path_is_the_custom_op():
    """The kernel path dispatches to nofa::sample_triplane (seen by the profiler)."""
    require_kernels("cpu")
    planes, points = _inputs(1, 4, 6, 6, 50, "cpu")
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        with ops.use_backend("kernels"):
            ops.sample_triplane(planes, points)
    names = {e.name for e in prof.events()}
    assert "nofa::sample_triplane" in names and "aten::grid_sampler_2d" not in names
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        with ops.use_backend("torch"):
            ops.sample_triplane(planes, points)
    names = {e.name for e in prof.events()}
    assert "nofa::sample_triplane" not in names and "aten::grid_sampler_2d" in names


def test_float64_matches_float32():
    require_kernels("cpu")
    planes, points = _inputs(1, 8, 9, 9, 200, "cpu")
    with ops.use_backend("kernels"):
        a = ops.sample_triplane(planes, points)
        b = ops.sample_triplane(planes.double(), points.double())
    assert rel_err(a, b) < 1e-6


BAD = [
    ("planes", lambda p, x: (p[0], x), "planes must have shape"),
    ("planes", lambda p, x: (p[:, :2], x), "planes must have shape"),
    ("points", lambda p, x: (p, x[..., :2]), "points must have shape"),
    ("points", lambda p, x: (p, x[0]), "points must have shape"),
    ("batch", lambda p, x: (p, x[:1]), "same batch size"),
    ("dtype", lambda p, x: (p.int(), x), "planes must be float32 or float64"),
    ("dtype", lambda p, x: (p, x.long()), "points must be float32 or float64"),
    ("dtype", lambda p, x: (p.double(), x), "must have the same dtype"),
]


@pytest.mark.parametrize("what,make,msg", BAD, ids=[b[0] + str(i) for i, b in enumerate(BAD)])
@pytest.mark.parametrize("backend", ["kernels", "torch"])
def test_bad_input(what, make, msg, backend):
    planes, points = _inputs(2, 4, 5, 5, 10, "cpu")
    p, x = make(planes, points)
    with ops.use_backend(backend), pytest.raises((ValueError, TypeError), match=msg):
        ops.sample_triplane(p, x)


def test_bad_reduce_and_box_warp():
    planes, points = _inputs(1, 4, 5, 5, 10, "cpu")
    with pytest.raises(ValueError, match="reduce must be one of"):
        ops.sample_triplane(planes, points, reduce="sum")
    with pytest.raises(ValueError, match="box_warp must be a positive finite number"):
        ops.sample_triplane(planes, points, box_warp=0.0)
    with pytest.raises(TypeError, match="planes must be a torch.Tensor"):
        ops.sample_triplane(planes.numpy(), points)


def test_different_devices():
    planes, points = _inputs(1, 4, 5, 5, 10, "cpu")
    with pytest.raises(ValueError, match="planes, points must be on the same device"):
        ops.sample_triplane(planes, points.to("meta"))


def test_cpp_checks_name_the_argument():
    """Calling the registered op directly still fails clearly (TORCH_CHECK in C++)."""
    require_kernels("cpu")
    planes, points = _inputs(1, 4, 5, 5, 10, "cpu")
    with pytest.raises(RuntimeError, match="planes must hold 3 planes"):
        torch.ops.nofa.sample_triplane(planes[:, :2], points, 1.0, "mean")
    with pytest.raises(RuntimeError, match="reduce must be"):
        torch.ops.nofa.sample_triplane(planes, points, 1.0, "max")


def test_backend_switch_and_env(monkeypatch):
    assert ops.get_backend() in ops.BACKENDS
    with ops.use_backend("torch"):
        assert ops.get_backend() == "torch"
        with ops.use_backend("kernels"):
            assert ops.get_backend() == "kernels"
        assert ops.get_backend() == "torch"
    monkeypatch.setenv("NOFA_BACKEND", "torch")
    assert ops.get_backend() == "torch"
    monkeypatch.setenv("NOFA_BACKEND", "bogus")
    with pytest.raises(ValueError, match="NOFA_BACKEND"):
        ops.get_backend()
    with pytest.raises(ValueError, match="backend must be one of"):
        with ops.use_backend("gpu"):
            pass


def test_kernels_requested_but_missing_raises():
    planes, points = _inputs(1, 4, 5, 5, 10, "meta")
    with (
        ops.use_backend("kernels"),
        pytest.raises(RuntimeError, match="no sample_triplane kernel is compiled"),
    ):
        ops.sample_triplane(planes, points)


def test_build_info():
    info = ops.build_info()
    assert info["compiled"] is True, info
    assert ops.kernels_available("cpu")
    assert ops.kernels_available("cuda") == info["cuda"]
    assert not ops.kernels_available("cpu", "no_such_op")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("M", [7, 60, 5000])
def test_few_and_many_points(device, M):
    """The CPU kernel reads planes in place for few points and from a channels-last copy for
    many (the switch is at one point per 32 texels): both must match the reference."""
    require_kernels(device)
    planes, points = _inputs(2, 16, 64, 48, M, device)
    _compare(planes, points, 1.0, "mean")
    _compare(planes, points, 1.0, "concat")


# ---- Channels-last-strided planes and the banded plane-gradient pass (CPU kernel) ----


def _cl(planes: torch.Tensor) -> torch.Tensor:
    """The same values with [N, 3, H, W, C] memory (channels-last-strided planes)."""
    out = planes.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)
    assert out.permute(0, 1, 3, 4, 2).is_contiguous() and (
        planes.shape[2] == 1 or not out.is_contiguous()
    )
    return out


def _op_grads(planes, points, cot, reduce="mean"):
    return torch.ops.nofa.sample_triplane_backward(cot, planes, points, 1.0, reduce, True, True)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("M", [5, 3000])  # few points (planes read in place) and many
@pytest.mark.parametrize("reduce", ["mean", "concat"])
def test_channels_last_planes(device, M, reduce):
    require_kernels(device)
    planes, points = _inputs(2, 8, 24, 20, M, device)
    _compare(_cl(planes), points, 1.0, reduce)  # kernels vs reference on the strided planes
    out_c, g_c = _run("kernels", planes, points, 1.0, reduce, None)
    out_l, _ = _run("kernels", _cl(planes), points, 1.0, reduce, None)
    assert torch.equal(out_c, out_l)
    cot = torch.randn_like(out_c)
    gp_c, gx_c = _op_grads(planes, points, cot, reduce)
    gp_l, gx_l = _op_grads(_cl(planes), points, cot, reduce)
    # The plane gradient comes back in planes' own layout (what empty_like gives), no copy.
    assert gp_c.stride() == planes.stride() and gp_l.stride() == _cl(planes).stride()
    assert torch.equal(gx_c, gx_l)
    if device == "cuda":
        # The CUDA plane gradient sums with float atomics: the order, and so the last bits,
        # vary between runs (the op alerts under torch.use_deterministic_algorithms).
        torch.testing.assert_close(gp_l, gp_c, rtol=1e-5, atol=1e-6)
    else:
        assert torch.equal(gp_c, gp_l)


def test_channels_last_gradcheck_and_opcheck():
    require_kernels("cpu")
    planes, points = _inputs(2, 3, 6, 5, 25, "cpu", torch.float64, box_warp=1.5)
    planes = _cl(planes).requires_grad_()
    points.requires_grad_()
    with ops.use_backend("kernels"):
        assert torch.autograd.gradcheck(
            lambda p, x: ops.sample_triplane(p, x, 1.5, "mean"), (planes, points)
        )
    p32, x32 = planes.detach().float(), points.detach().float()
    p32 = _cl(p32)
    torch.library.opcheck(torch.ops.nofa.sample_triplane.default, (p32, x32, 1.5, "concat"))
    for pg, xg in [(True, True), (True, False), (False, True)]:
        torch.library.opcheck(
            torch.ops.nofa.sample_triplane_backward.default,
            (torch.randn(2, 25, 3), p32, x32, 1.5, "mean", pg, xg),
        )


def _rows_points(H, W, n_cols=5):
    """Points (normalised, box_warp 2) whose tap row y0 takes every value from -1 to H - 1
    (so every pair of neighbouring rows, whatever the band split, is a tap pair), with
    columns at the borders too, plus points outside the planes."""
    iy = torch.arange(-1, H, dtype=torch.float64) + torch.tensor([0.25, 0.75]).double()[:, None]
    iy = torch.cat([iy.flatten(), torch.tensor([-0.999, H - 0.001])])
    ix = torch.tensor([-0.9, 0.3, W / 2 + 0.1, W - 1.2, W - 0.05]).double()[:n_cols]
    v = (2 * iy + 1) / H - 1
    u = (2 * ix + 1) / W - 1
    uu, vv = torch.meshgrid(u, v, indexing="ij")
    # Plane 0 reads (x, y): x -> W, y -> H; z just spreads plane 1 and 2 lookups around.
    pts = torch.stack(
        [uu.flatten(), vv.flatten(), torch.linspace(-1.1, 1.1, uu.numel()).double()], -1
    )
    outside = torch.tensor(
        [[0.0, 1.5, 0.0], [-1.2, 0.0, 0.3], [0.0, 0.0, 3.0], [2.0, -2.0, 2.0]]
    ).double()
    return torch.cat([pts, outside]).float()


@pytest.mark.parametrize("C", [1, 5, 32])
def test_band_boundaries_and_thread_counts(C):
    """Taps on both sides of every row boundary, first/last rows, points outside: the result
    matches the reference, and is bitwise the same for any thread count (the bands change)."""
    require_kernels("cpu")
    H, W = 37, 11
    pts = _rows_points(H, W)[None]
    planes = torch.randn(1, 3, C, H, W)
    _compare(planes, pts, box_warp=2.0)
    _compare(_cl(planes), pts, box_warp=2.0, reduce="concat")
    cot = torch.randn(1, pts.shape[1], C)
    before = torch.get_num_threads()
    try:
        results = []
        for t in (1, 2, 3, 7):
            torch.set_num_threads(t)
            results.append(
                torch.ops.nofa.sample_triplane_backward(cot, planes, pts, 2.0, "mean", True, False)[
                    0
                ]
            )
    finally:
        torch.set_num_threads(before)
    assert all(torch.equal(r, results[0]) for r in results[1:])


def test_many_bands_batch_with_different_point_patterns():
    """N = 2: one batch element's points bunched in a few rows (ray-like, one band busy, the
    others empty), the other's spread out with some outside; planes big enough to be split
    into bands by size as well as by thread count."""
    require_kernels("cpu")
    planes = torch.randn(2, 3, 32, 96, 80)
    t = torch.linspace(0, 1, 400)[:, None]
    ray = torch.tensor([0.05, -0.02, 0.6]) + t * torch.tensor([0.01, 0.02, -1.1])
    bunch = (ray[None, :, :] + 0.003 * torch.randn(6, 1, 3)).reshape(-1, 3)
    spread = (torch.rand(bunch.shape[0], 3) * 2 - 1) * 0.65
    points = torch.stack([bunch, spread])
    # With ~100 texels a side an ulp of the texel coordinate moves a value by ~1e-5.
    _compare(planes, points, atol=5e-5)
    _compare(_cl(planes), points, reduce="concat", atol=5e-5)
    points[1] = 5.0  # one batch element entirely outside
    _compare(_cl(planes), points, atol=5e-5)


@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "other"])
def test_backward_gradient_layout_rule(layout):
    """The plane gradient has torch.empty_like(planes)'s strides, whatever the layout."""
    require_kernels("cpu")
    planes, points = _inputs(1, 6, 7, 9, 80, "cpu")
    if layout == "channels_last":
        planes = _cl(planes)
    elif layout == "other":  # a dense layout that is neither: computed then copied
        planes = planes.transpose(3, 4).contiguous().transpose(3, 4)
    cot = torch.randn(1, 80, 6)
    gp, _ = torch.ops.nofa.sample_triplane_backward(cot, planes, points, 1.0, "mean", True, False)
    assert gp.stride() == torch.empty_like(planes).stride()
    with ops.use_backend("torch"):
        p = planes.detach().clone().requires_grad_()
        (want,) = torch.autograd.grad(ops.sample_triplane(p, points, 1.0, "mean"), p, cot)
    assert rel_err(gp, want) <= 1e-5
    empty = torch.ops.nofa.sample_triplane_backward(
        cot[:, :0], planes, points[:, :0], 1.0, "mean", True, False
    )[0]
    assert empty.stride() == gp.stride() and torch.all(empty == 0)


def test_decode_triplane_accepts_channels_last_planes():
    """decode_triplane's backward returns what sample_triplane_backward gives: CL planes work."""
    require_kernels("cpu")
    planes, points = _inputs(1, 8, 16, 16, 600, "cpu")
    dec = [torch.randn(16, 8) / 3, torch.randn(16), torch.randn(4, 16) / 4, torch.randn(4)]
    grads = []
    for pl in (planes, _cl(planes)):
        p = pl.detach().clone().requires_grad_()
        dens, feat = ops.decode_triplane(p, points, 1.0, *dec)
        (g,) = torch.autograd.grad((dens.sum() + feat.square().sum()), p)
        grads.append(g)
    assert rel_err(grads[1], grads[0]) <= 1e-6
