"""decode_triplane (tri-plane lookup + OSG decoder, fused): kernels vs the reference."""

from __future__ import annotations

import pytest
import torch
from conftest import DEVICES, assert_grads_close, rel_err, require_kernels

import nofa.ops as ops
from nofa.ops import reference
from nofa.ops.cpu_isa import set_cpu_isa


def make_inputs(
    N=2, M=300, C=8, H=9, W=7, Hd=16, F=5, device="cpu", dtype=torch.float32, scale=1.2
):
    planes = torch.randn(N, 3, C, H, W, device=device, dtype=dtype)
    points = (torch.rand(N, M, 3, device=device, dtype=dtype) * 2 - 1) * 0.5 * scale  # some outside
    w0 = torch.randn(Hd, C, device=device, dtype=dtype) / C**0.5
    b0 = torch.randn(Hd, device=device, dtype=dtype)
    w1 = torch.randn(1 + F, Hd, device=device, dtype=dtype) / Hd**0.5
    b1 = torch.randn(1 + F, device=device, dtype=dtype)
    return [planes, points, w0, b0, w1, b1]


def call(fn, t, box_warp=1.0):
    planes, points, *dec = t
    return fn(planes, points, box_warp, *dec)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("N,M", [(1, 0), (1, 257), (2, 700)])
def test_forward_matches_reference(device, N, M):
    require_kernels(device)
    t = make_inputs(N=N, M=M, device=device)
    with ops.trace_backends() as tr:
        dens, feats = call(ops.decode_triplane, t, 0.9)
    assert tr.backends("decode_triplane") == {"kernels"}
    rd, rf = call(reference.decode_triplane, t, 0.9)
    assert dens.shape == (N, M, 1) and feats.shape == (N, M, 5)
    if M:
        assert rel_err(dens, rd) <= 1e-5 and rel_err(feats, rf) <= 1e-5


@pytest.mark.parametrize("device", DEVICES)
def test_non_contiguous_inputs(device):
    require_kernels(device)
    planes, points, w0, b0, w1, b1 = make_inputs(device=device)
    planes_nc = planes.transpose(3, 4).contiguous().transpose(3, 4)
    points_nc = points.transpose(0, 1).contiguous().transpose(0, 1)
    w0_nc, w1_nc = w0.t().contiguous().t(), w1.t().contiguous().t()
    assert not (planes_nc.is_contiguous() or points_nc.is_contiguous() or w0_nc.is_contiguous())
    got = ops.decode_triplane(planes_nc, points_nc, 1.0, w0_nc, b0, w1_nc, b1)
    want = reference.decode_triplane(planes, points, 1.0, w0, b0, w1, b1)
    for g, w in zip(got, want):
        assert rel_err(g, w) <= 1e-5


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("N,M", [(1, 600), (2, 333)])
def test_gradients_match_reference(device, N, M):
    require_kernels(device)
    t = [x.requires_grad_() for x in make_inputs(N=N, M=M, device=device)]
    gd = torch.randn(N, M, 1, device=device)
    gf = torch.randn(N, M, 5, device=device)
    got = torch.autograd.grad(call(ops.decode_triplane, t), t, (gd, gf))
    want = torch.autograd.grad(call(reference.decode_triplane, t), t, (gd, gf))
    assert_grads_close(
        got,
        want,
        1e-4,
        names=["planes", "points", "fc0_weight", "fc0_bias", "fc1_weight", "fc1_bias"],
    )


def test_gradient_of_one_output_only():
    require_kernels("cpu")
    t = [x.requires_grad_() for x in make_inputs(M=100)]
    got = torch.autograd.grad(call(ops.decode_triplane, t)[0].sum(), t)
    want = torch.autograd.grad(call(reference.decode_triplane, t)[0].sum(), t)
    assert_grads_close(got, want, 1e-4)


def test_empty_points_backward():
    require_kernels("cpu")
    t = [x.requires_grad_() for x in make_inputs(M=0)]
    dens, feats = call(ops.decode_triplane, t)
    grads = torch.autograd.grad((dens.sum() + feats.sum()), t)
    assert all(g.abs().sum() == 0 for g in grads)


def test_gradcheck_float64():
    require_kernels("cpu")
    t = [
        x.requires_grad_()
        for x in make_inputs(N=2, M=9, C=3, H=4, W=5, Hd=4, F=2, dtype=torch.float64)
    ]
    assert torch.autograd.gradcheck(lambda *a: call(ops.decode_triplane, a, 1.1), t, atol=1e-6)


def test_opcheck():
    require_kernels("cpu")
    t = [x.requires_grad_() for x in make_inputs(N=1, M=40, C=4, H=5, W=5, Hd=8, F=3)]
    torch.library.opcheck(torch.ops.nofa.decode_triplane.default, (t[0], t[1], 1.0, *t[2:]))


def test_renderer_uses_fused_op_and_torch_backend_unchanged():
    from nofa.render.renderer import TriplaneRenderer

    r = TriplaneRenderer()
    planes = torch.randn(1, 3, 32, 16, 16)
    points = torch.rand(1, 50, 3) - 0.5
    with ops.trace_backends() as tr:
        d, f = r.query(planes, points)
        dd = r.density(planes, points)
    assert tr.backends("decode_triplane") == (
        {"kernels"} if ops.kernels_available("cpu", "decode_triplane") else {"torch"}
    )
    feats = reference.sample_triplane(planes, points, r.options.box_warp, "mean")
    rd, rf = r.decoder(feats)
    assert rel_err(d, rd) <= 1e-5 and rel_err(f, rf) <= 1e-5
    assert rel_err(dd, r.decoder.density(feats)) <= 1e-5
    with ops.use_backend("torch"):
        td, tf = r.query(planes, points)
    assert torch.equal(td, rd) and torch.equal(tf, rf)


@pytest.mark.parametrize(
    "index,shape,name",
    [
        (2, (16, 7), "fc0_weight"),
        (3, (15,), "fc0_bias"),
        (4, (6, 15), "fc1_weight"),
        (5, (5,), "fc1_bias"),
    ],
)
def test_bad_decoder_shapes_name_the_argument(index, shape, name):
    t = make_inputs(M=4)
    t[index] = torch.randn(*shape)
    for backend in (
        ("torch", "kernels") if ops.kernels_available("cpu", "decode_triplane") else ("torch",)
    ):
        with ops.use_backend(backend), pytest.raises(ValueError, match=name):
            call(ops.decode_triplane, t)


def test_bad_dtype_and_kernel_check():
    t = make_inputs(M=4)
    t[4] = t[4].double()
    with pytest.raises(TypeError, match="fc1_weight"):
        call(ops.decode_triplane, t)
    if ops.kernels_available("cpu", "decode_triplane"):
        t = make_inputs(M=4)
        with pytest.raises(RuntimeError, match="fc0_bias"):
            torch.ops.nofa.decode_triplane(t[0], t[1], 1.0, t[2], t[3][:3], t[4], t[5])


# ---- the CPU's vector float32 paths (C = 32, Hd = 64, up to 47 features) ------------------
def fast_calls() -> int:
    return ops.build_info()["cpu_fast_decoder_calls"]


def require_fast_decoder():
    require_kernels("cpu")
    if not ops.build_info()["cpu_fast_decoder"]:
        pytest.skip(
            "this CPU has no AVX2 / AVX-512: decode_triplane takes the generic path (tested above)"
        )


@pytest.mark.parametrize("simd", ["1", "0"])
@pytest.mark.parametrize(
    "F,M,layout",
    [(32, 1001, "cl"), (32, 1001, "nchw"), (0, 514, "cl"), (17, 203, "cl"), (47, 66, "cl")],
)
def test_cpu_fast_path_matches_reference(request, simd, F, M, layout):
    """Both CPU paths ("1": the best vector tier the CPU has; "0": the scalar tier, the
    generic tile path; tests/test_cpu_isa.py forces each tier) against the
    reference, forward and every gradient; M not a multiple of the 4-point groups; some
    points outside the box; large pre-activations on both sides of softplus' threshold."""
    if simd == "1":
        require_fast_decoder()
    require_kernels("cpu")
    prev = set_cpu_isa("auto" if simd == "1" else "scalar")
    request.addfinalizer(lambda: set_cpu_isa(prev))
    torch.manual_seed(F + M)
    t = make_inputs(N=2, M=M, C=32, H=24, W=20, Hd=64, F=F)
    t[3] = t[3] * 12  # fc0 bias: pre-activations from about -40 to 40
    if layout == "cl":  # channels-last-strided planes, as the renderer hands them over
        t[0] = t[0].permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)
    t = [x.requires_grad_() for x in t]
    before = fast_calls()
    dens, feats = call(ops.decode_triplane, t, 0.9)
    gd, gf = torch.randn_like(dens), torch.randn_like(feats)
    got = torch.autograd.grad((dens, feats), t, (gd, gf))
    fast_ran = fast_calls() - before
    rd, rf = call(reference.decode_triplane, t, 0.9)
    want = torch.autograd.grad((rd, rf), t, (gd, gf))
    assert rel_err(dens, rd) <= 1e-5
    if F:
        assert rel_err(feats, rf) <= 1e-5
    assert_grads_close(
        got,
        want,
        1e-4,
        names=["planes", "points", "fc0_weight", "fc0_bias", "fc1_weight", "fc1_bias"],
    )
    # The backward op with and without the forward's features (the autograd path passes them).
    direct = torch.ops.nofa.decode_triplane_backward(
        gd, gf, None, *t[:2], 0.9, *t[2:], True, True, True
    )
    assert_grads_close(direct, got, 1e-5)
    # The vector paths read channels-last taps only (the generic path serves NCHW reads of
    # few points), and it must have served both the forward and the backward here.
    assert fast_ran == (2 if simd == "1" and (layout == "cl" or M * 32 >= 24 * 20) else 0)


def test_cpu_fast_path_extremes_and_nan():
    """softplus/sigmoid at +-60 and beyond (exp underflow, PyTorch's threshold) and NaN."""
    require_fast_decoder()
    t = make_inputs(N=1, M=64, C=32, H=8, W=8, Hd=64, F=32, scale=0.5)
    t[2] = torch.zeros_like(t[2])
    t[3] = torch.linspace(-90, 90, 64)  # pre-activations = the bias
    t[4] = t[4] * 8
    before = fast_calls()
    dens, feats = call(ops.decode_triplane, t)
    assert fast_calls() == before + 1
    rd, rf = call(reference.decode_triplane, t)
    assert rel_err(dens, rd) <= 1e-6 and rel_err(feats, rf) <= 1e-6
    t[3] = t[3].clone()
    t[3][5] = float("nan")
    dens, feats = call(ops.decode_triplane, t)
    assert torch.isnan(dens).all() and torch.isnan(feats).all()
