"""The CPU instruction-set layer: every CPU op on every tier this CPU supports, forced with
`use_cpu_isa`, against the pure-PyTorch reference (forward and backward, fresh random
inputs, odd sizes that leave vector tails, non-contiguous and empty inputs), and the
layer's own report of which path really ran (a silent fallback fails the test)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import assert_grads_close, rel_err, require_kernels

import nofa.ops as ops
from nofa.ops import reference
from nofa.ops.cpu_isa import (
    CPU_OPS,
    ISAS,
    cpu_isa_info,
    path_calls,
    set_cpu_isa,
    supported_isas,
    use_cpu_isa,
)

# The tiers each op has code for (the spec; cpu_isa_info must agree). An op forced to a
# tier it lacks runs its best tier below it.
IMPLEMENTED = {
    "sample_triplane_forward": ISAS,
    "sample_triplane_backward": ISAS,
    "decode_triplane_forward": ISAS,
    "decode_triplane_backward": ISAS,
    "composite_rays": ISAS,
    "composite_rays_merged": ISAS,
    "deform_points": ("scalar",),  # its products are ATen GEMMs, which pick their own ISA
    "channels_last_planes": ISAS,
}


def expected_path(op: str, isa: str) -> str:
    return max((t for t in IMPLEMENTED[op] if ISAS.index(t) <= ISAS.index(isa)), key=ISAS.index)


@pytest.fixture(params=ISAS)
def isa(request):
    require_kernels("cpu")
    name = request.param
    if name not in supported_isas():
        pytest.skip(
            f"this CPU does not support the {name} tier (detected: {cpu_isa_info()['detected']})"
        )
    with use_cpu_isa(name), ops.use_backend("kernels"):
        yield name


@contextlib.contextmanager
def paths_run():
    """Yields a dict filled, on exit, with {op: {isa: calls made inside the block}}."""
    before = path_calls()
    delta: dict[str, dict[str, int]] = {}
    yield delta
    after = path_calls()
    for op in after:
        delta[op] = {t: after[op][t] - before[op][t] for t in ISAS}


def assert_ran(delta: dict, op: str, path: str) -> None:
    ran = {t: n for t, n in delta[op].items() if n}
    assert ran and set(ran) == {path}, (
        f"{op}: expected only the {path} path to run, got {delta[op]}"
    )


def grads(outs, ins, cots):
    return torch.autograd.grad(outs, ins, cots, allow_unused=True)


# ---- sample_triplane --------------------------------------------------------------------
@pytest.mark.parametrize(
    "N,M,C,H,W,reduce,layout",
    [
        (2, 301, 5, 7, 9, "mean", "nchw"),  # few points: reads [C, H, W] in place
        (1, 900, 19, 8, 6, "concat", "nchw"),  # many points: channels-last copy, C tail
        (2, 257, 16, 9, 11, "mean", "cl"),  # channels-last-strided planes
        (1, 333, 3, 5, 4, "mean", "noncontig"),  # a strided view
        (1, 700, 17, 5, 33, "concat", "nchw"),  # plane gradient: register transposes + tails
    ],
)
def test_sample_triplane(isa, N, M, C, H, W, reduce, layout):
    torch.manual_seed(M + C)
    planes = torch.randn(N, 3, C, H, W)
    if layout == "cl":
        planes = planes.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)
    elif layout == "noncontig":
        planes = torch.randn(N, 3, C, H, 2 * W)[..., ::2]
    pts = torch.rand(N, M, 3) * 2.4 - 1.2  # some outside the box
    planes.requires_grad_()
    pts.requires_grad_()
    with paths_run() as delta:
        out = ops.sample_triplane(planes, pts, 2.0, reduce)
        cot = torch.randn_like(out)
        got = grads(out, (planes, pts), cot)
    want_out = reference.sample_triplane(planes, pts, 2.0, reduce)
    want = grads(want_out, (planes, pts), cot)
    assert rel_err(out, want_out) <= 1e-6
    assert_grads_close(got, want, 1e-5, names=["planes", "points"])
    assert_ran(delta, "sample_triplane_forward", expected_path("sample_triplane_forward", isa))
    assert_ran(delta, "sample_triplane_backward", expected_path("sample_triplane_backward", isa))


def test_sample_triplane_empty(isa):
    planes = torch.randn(2, 3, 4, 5, 6, requires_grad=True)
    pts = torch.rand(2, 0, 3, requires_grad=True)
    out = ops.sample_triplane(planes, pts)
    assert out.shape == (2, 0, 4)
    g = grads(out, (planes, pts), torch.ones_like(out))
    assert (g[0] == 0).all() and g[1].shape == (2, 0, 3)


# ---- decode_triplane ---------------------------------------------------------------------
def decoder_inputs(N, M, C, H, W, Hd, F, seed):
    torch.manual_seed(seed)
    planes = torch.randn(N, 3, C, H, W).permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)
    pts = torch.rand(N, M, 3) * 2.0 - 1.0
    w0, b0 = torch.randn(Hd, C) * 0.3, torch.randn(Hd) * 12  # pre-activations about -40 .. 40
    w1, b1 = torch.randn(1 + F, Hd) * 0.3, torch.randn(1 + F)
    return [t.requires_grad_() for t in (planes, pts, w0, b0, w1, b1)]


@pytest.mark.parametrize("F,M", [(32, 1001), (0, 203), (5, 66), (17, 130), (47, 95)])
def test_decode_triplane_vector_shapes(isa, F, M):
    """The EG3D decoder shapes (C = 32, Hd = 64) that the vector paths cover; F leaves
    partial output vectors of both widths, M partial point groups."""
    t = decoder_inputs(2, M, 32, 12, 10, 64, F, seed=F + M)
    with paths_run() as delta:
        dens, feats = ops.decode_triplane(t[0], t[1], 0.9, *t[2:])
        cots = (torch.randn_like(dens), torch.randn_like(feats))
        got = grads((dens, feats), t, cots)
    rd, rf = reference.decode_triplane(t[0], t[1], 0.9, *t[2:])
    want = grads((rd, rf), t, cots)
    assert rel_err(dens, rd) <= 1e-5
    if F:
        assert rel_err(feats, rf) <= 1e-5
    assert_grads_close(
        got,
        want,
        1e-4,
        names=["planes", "points", "fc0_weight", "fc0_bias", "fc1_weight", "fc1_bias"],
    )
    assert_ran(delta, "decode_triplane_forward", expected_path("decode_triplane_forward", isa))
    assert_ran(delta, "decode_triplane_backward", expected_path("decode_triplane_backward", isa))
    # Without the forward's features the backward recomputes the output layer.
    with paths_run() as delta:
        direct = torch.ops.nofa.decode_triplane_backward(
            *cots, None, *t[:2], 0.9, *t[2:], True, True, True
        )
    assert_grads_close(direct, got, 1e-5)
    assert_ran(delta, "decode_triplane_backward", expected_path("decode_triplane_backward", isa))


@pytest.mark.parametrize(
    "C,Hd,dtype", [(8, 64, torch.float32), (32, 48, torch.float32), (32, 64, torch.float64)]
)
def test_decode_triplane_other_shapes_run_scalar(isa, C, Hd, dtype):
    """Shapes and dtypes outside the vector code run (and are recorded as) the scalar path."""
    t = decoder_inputs(1, 300, C, 8, 8, Hd, 7, seed=C + Hd)
    t = [x.detach().to(dtype).requires_grad_() for x in t]
    with paths_run() as delta:
        dens, feats = ops.decode_triplane(t[0], t[1], 1.0, *t[2:])
        got = grads((dens, feats), t, (torch.ones_like(dens), torch.ones_like(feats)))
    rd, rf = reference.decode_triplane(t[0], t[1], 1.0, *t[2:])
    want = grads((rd, rf), t, (torch.ones_like(rd), torch.ones_like(rf)))
    assert rel_err(dens, rd) <= 1e-5 and rel_err(feats, rf) <= 1e-5
    assert_grads_close(got, want, 1e-4)
    assert_ran(delta, "decode_triplane_forward", "scalar")


def test_decode_triplane_extremes_and_nan(isa):
    """softplus / sigmoid at +-90 (exp underflow, PyTorch's threshold of 20) and NaN."""
    t = decoder_inputs(1, 64, 32, 8, 8, 64, 32, seed=3)
    t = [x.detach() for x in t]
    t[2] = torch.zeros_like(t[2])
    t[3] = torch.linspace(-90, 90, 64)  # pre-activations = the bias
    t[4] = t[4] * 8
    with paths_run() as delta:
        dens, feats = ops.decode_triplane(t[0], t[1], 1.0, *t[2:])
    rd, rf = reference.decode_triplane(t[0], t[1], 1.0, *t[2:])
    assert rel_err(dens, rd) <= 1e-6 and rel_err(feats, rf) <= 1e-6
    assert_ran(delta, "decode_triplane_forward", expected_path("decode_triplane_forward", isa))
    t[3][5] = float("nan")
    dens, feats = ops.decode_triplane(t[0], t[1], 1.0, *t[2:])
    assert torch.isnan(dens).all() and torch.isnan(feats).all()


def test_decode_triplane_empty(isa):
    t = decoder_inputs(2, 0, 32, 4, 4, 64, 32, seed=0)
    dens, feats = ops.decode_triplane(t[0], t[1], 1.0, *t[2:])
    assert dens.shape == (2, 0, 1) and feats.shape == (2, 0, 32)


# ---- composite_rays / composite_rays_merged ------------------------------------------------
def ray_set(N, R, S, C, seed, scale=4.0):
    torch.manual_seed(seed)
    colors = torch.randn(N, R, S, C)
    dens = torch.randn(N, R, S, 1) * scale
    depths = torch.sort(torch.rand(N, R, S, 1) * 2 + 1, dim=2).values
    return colors, dens, depths


def composite_check(fn, ref, inputs, op, isa):
    inputs = [x.requires_grad_() for x in inputs]
    with paths_run() as delta:
        out = fn(*inputs)
        cots = [torch.randn_like(o) for o in out]
        got = grads(out, inputs, cots)
    want_out = ref(*inputs)
    want = grads(want_out, inputs, cots)
    for a, b in zip(out, want_out):
        assert rel_err(a, b) <= 1e-5
    assert_grads_close(got, want, 1e-4)
    assert_ran(delta, op, expected_path(op, isa))


@pytest.mark.parametrize("S", [2, 9, 26, 48])  # 1, 8, 25, 47 intervals: every tail length class
@pytest.mark.parametrize("white_back", [False, True])
def test_composite_rays(isa, S, white_back):
    c, d, z = ray_set(2, 5, S, 3, seed=S)
    c = c.transpose(1, 2).contiguous().transpose(1, 2)  # non-contiguous colours
    composite_check(
        lambda *x: ops.composite_rays(*x, white_back=white_back),
        lambda *x: reference.composite_rays(*x, white_back=white_back),
        [c, d, z],
        "composite_rays",
        isa,
    )


@pytest.mark.parametrize("Sa,Sb", [(7, 13), (24, 24), (3, 2)])
def test_composite_rays_merged(isa, Sa, Sb):
    a = ray_set(2, 4, Sa, 3, seed=Sa)
    b = ray_set(2, 4, Sb, 3, seed=100 + Sb)
    composite_check(
        lambda *x: ops.composite_rays_merged(*x, white_back=True),
        lambda *x: reference.composite_rays_merged(*x, white_back=True),
        [*a, *b],
        "composite_rays_merged",
        isa,
    )


def test_composite_empty(isa):
    c, d, z = ray_set(2, 0, 5, 3, seed=0)
    feat, depth, w = ops.composite_rays(c, d, z)
    assert feat.shape == (2, 0, 3) and w.shape == (2, 0, 4, 1)


# ---- deform_points -----------------------------------------------------------------------
def test_deform_points(isa):
    torch.manual_seed(5)
    L, A, B, N, M = 2, 4, 3, 2, 77
    P = 3 + 6 * L
    dims_d, dims_w = [P + A + B, 16, 12, 3], [P + A, 8, 1]
    dw = [torch.randn(o, i) / i**0.5 for i, o in zip(dims_d, dims_d[1:])]
    db = [torch.randn(o) * 0.1 for o in dims_d[1:]]
    ww = [torch.randn(o, i) / i**0.5 for i, o in zip(dims_w, dims_w[1:])]
    wb = [torch.randn(o) * 0.1 for o in dims_w[1:]]
    pts, alpha, beta = torch.rand(N, M, 3) - 0.5, torch.randn(N, A), torch.randn(N, B)
    ins = [pts, alpha, beta, *dw, *db, *ww, *wb]
    for x in ins:
        x.requires_grad_()

    def call(fn):
        return fn(pts, alpha, beta, dw, db, ww, wb, n_freqs=L)

    with paths_run() as delta:
        out = call(ops.deform_points)
        cots = [torch.randn_like(o) for o in out]
        got = grads(out, ins, cots)
    want_out = call(reference.deform_points)
    want = grads(want_out, ins, cots)
    for a, b in zip(out, want_out):
        assert rel_err(a, b) <= 1e-5
    assert_grads_close(got, want, 1e-4)
    assert_ran(delta, "deform_points", expected_path("deform_points", isa))


# ---- channels_last_planes ----------------------------------------------------------------
@pytest.mark.parametrize(
    "C,H,W,dtype",
    [(32, 20, 21, torch.float32), (5, 9, 7, torch.float32), (16, 16, 16, torch.float64)],
)
def test_channels_last_planes(isa, C, H, W, dtype):
    """Full 16 x 16 blocks and tails both ways; float64 has no vector code (scalar)."""
    torch.manual_seed(C)
    planes = torch.randn(2, 3, C, H, W, dtype=dtype, requires_grad=True)
    with paths_run() as delta:
        cl = ops.channels_last_planes(planes)
        cot = torch.randn_like(cl)
        (g,) = grads(cl, (planes,), cot)  # the backward relayouts the other way
    assert ops.is_channels_last(cl)
    assert torch.equal(cl, planes) and torch.equal(g, cot)
    path = expected_path("channels_last_planes", isa) if dtype == torch.float32 else "scalar"
    assert_ran(delta, "channels_last_planes", path)


# ---- the layer itself --------------------------------------------------------------------
def test_info_reports_every_op_and_the_forced_tier(isa):
    info = cpu_isa_info()
    assert info["forced"] == isa and info["active"] == isa and info["error"] is None
    assert set(info["ops"]) == set(CPU_OPS)
    for op in CPU_OPS:
        assert info["ops"][op]["path"] == expected_path(op, isa), op
        assert info["ops"][op]["best"] == expected_path(op, info["detected"]), op


def test_set_cpu_isa_restores_and_rejects():
    require_kernels("cpu")
    prev = set_cpu_isa("scalar")
    try:
        assert cpu_isa_info()["active"] == "scalar"
        with use_cpu_isa("auto"):
            assert cpu_isa_info()["active"] == cpu_isa_info()["detected"]
        assert cpu_isa_info()["active"] == "scalar"
    finally:
        set_cpu_isa(prev)
    with pytest.raises(ValueError, match="isa must be one of"):
        set_cpu_isa("sse9")
    with pytest.raises(RuntimeError, match="isa must be one of"):
        torch.ops.nofa.set_cpu_isa("sse9")
    if supported_isas()[-1] != "avx512":
        with pytest.raises(RuntimeError, match="does not support the avx512"):
            set_cpu_isa("avx512")


def run_with_env(value: str, code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, NOFA_CPU_ISA=value)
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )


def test_environment_variable():
    """NOFA_CPU_ISA is obeyed by the ops; a bad value fails every CPU op with a clear error."""
    require_kernels("cpu")
    code = (
        "import json, torch, nofa.ops as ops\n"
        "from nofa.ops.cpu_isa import cpu_isa_info\n"
        "try:\n"
        "    ops.sample_triplane(torch.randn(1, 3, 4, 5, 5), torch.rand(1, 50, 3))\n"
        "    err = None\n"
        "except RuntimeError as e:\n"
        "    err = str(e)\n"
        "i = cpu_isa_info()\n"
        "print(json.dumps({'err': err, 'forced': i['forced'], 'calls': "
        "i['ops']['sample_triplane_forward']['calls']}))\n"
    )
    r = run_with_env("scalar", code)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["err"] is None and out["forced"] == "scalar" and out["calls"]["scalar"] == 1
    r = run_with_env("avx1024", code)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert "NOFA_CPU_ISA must be one of" in out["err"]
