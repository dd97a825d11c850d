"""Rules every backend of every op follows (docs/architecture.md, docs/*.md per op):
non-finite inputs, preconditions (sorted depths, bool flags, box_warp) and double backward.
Each is checked on the kernels and on the pure-PyTorch reference, on the CPU and, when a GPU
is visible, on CUDA."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import DEVICES, require_kernels

import nofa.ops as ops
from nofa.ops.cpu_isa import ISAS, cpu_isa_info, path_calls, supported_isas, use_cpu_isa

NAN, INF = float("nan"), float("inf")
BACKENDS = ["kernels", "torch"]


def _run(backend, fn, *inputs, device="cpu"):
    """fn(*inputs) on `backend` and `device` with fresh leaves; returns (outputs, grads of a
    random projection of the outputs' finite entries), on the CPU."""
    if backend == "kernels":
        require_kernels(device)
    xs = [t.detach().clone().to(device).requires_grad_() for t in inputs]
    with ops.use_backend(backend), ops.trace_backends() as tr:
        outs = fn(*xs)
    outs = outs if isinstance(outs, tuple) else (outs,)
    ran = {b for _, b in tr.calls}
    assert ran == {"torch"} if backend == "torch" else "kernels" in ran, tr.calls
    g = torch.Generator().manual_seed(1)
    loss = sum(
        (torch.nan_to_num(o, 0.0, 0.0, 0.0) * torch.randn(o.shape, generator=g).to(o)).sum()
        for o in outs
    )
    grads = torch.autograd.grad(loss, xs, allow_unused=True)
    return [o.detach().cpu() for o in outs], [g.cpu() for g in grads]


def _same(a, b, tol=1e-5):
    """Equal, with NaN in the same places."""
    a, b = a.detach().cpu(), b.detach().cpu()
    assert torch.equal(torch.isnan(a), torch.isnan(b)), (a, b)
    torch.testing.assert_close(torch.nan_to_num(a), torch.nan_to_num(b), rtol=tol, atol=tol)


# ---- non-finite points: sample_triplane / decode_triplane -------------------------------------
POINTS = torch.tensor(
    [
        [
            [0.1, 0.2, 0.1],
            [NAN, 0.1, 0.1],
            [0.1, NAN, 0.1],
            [0.1, 0.1, NAN],
            [INF, 0.1, 0.1],
            [0.1, -INF, 0.1],
            [0.1, 0.1, INF],
            [0.3, 0.1, -0.2],
        ]
    ]
)


def _planes():
    return torch.randn(1, 3, 4, 8, 8, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("device", DEVICES)
def test_nonfinite_points_sample_triplane_read_zero_on_the_planes_using_them(device):
    planes = _planes()
    res = {
        b: _run(
            b, lambda p, x: ops.sample_triplane(p, x, 1.0, "concat"), planes, POINTS, device=device
        )
        for b in BACKENDS
    }
    (out_k, g_k), (out_t, g_t) = res["kernels"], res["torch"]
    out = out_t[0].view(8, 3, 4)
    # plane 0 reads (x, y), plane 1 (x, z), plane 2 (z, x): a non-finite coordinate zeroes the
    # planes using it and leaves the others as for a finite point.
    uses = {0: (0, 1, 2), 1: (0,), 2: (1, 2)}  # coordinate -> planes that read it
    for row, coord in ((1, 0), (2, 1), (3, 2), (4, 0), (5, 1), (6, 2)):
        for plane in range(3):
            if plane in uses[coord]:
                assert torch.equal(out[row, plane], torch.zeros(4)), (row, plane)
            else:
                assert out[row, plane].abs().sum() > 0
    assert torch.isfinite(g_t[0]).all() and torch.isfinite(g_t[1]).all()
    assert torch.equal(g_t[1][0, 1], torch.zeros(3))  # x NaN: no plane reads this point
    _same(out_k[0], out_t[0])
    for a, b in zip(g_k, g_t):
        _same(a, b, 1e-4)


@pytest.mark.parametrize("device", DEVICES)
def test_nonfinite_points_decode_triplane_follow_the_lookup_rule(device):
    planes = _planes()
    g = torch.Generator().manual_seed(2)
    w = (
        torch.randn(16, 4, generator=g),
        torch.randn(16, generator=g),
        torch.randn(3, 16, generator=g),
        torch.randn(3, generator=g),
    )
    res = {
        b: _run(
            b,
            lambda p, x, *w: ops.decode_triplane(p, x, 1.0, *w),
            planes,
            POINTS,
            *w,
            device=device,
        )
        for b in BACKENDS
    }
    for i in range(2):
        assert torch.isfinite(res["torch"][0][i]).all()
        _same(res["kernels"][0][i], res["torch"][0][i])
    for a, b in zip(res["kernels"][1], res["torch"][1]):
        assert torch.isfinite(b).all()
        _same(a, b, 1e-4)
    # x = NaN reads no plane: it decodes the features of a point outside every plane.
    far = torch.tensor([[[5.0, 5.0, 5.0]]])
    with ops.use_backend("torch"):
        d_far, f_far = ops.decode_triplane(planes, far, 1.0, *w)
    _same(res["torch"][0][0][:, 1:2], d_far)
    _same(res["torch"][0][1][:, 1:2], f_far)


# ---- non-finite points: deform_points ----------------------------------------------------------
def _field():
    from nofa.models import DeformationField

    torch.manual_seed(0)
    field = DeformationField(d_hidden=32, w_hidden=32)
    with torch.no_grad():
        field.d_weights[-1].normal_(0, 0.05)
    return field


@pytest.mark.parametrize("device", DEVICES)
def test_nonfinite_points_deform_points_give_nan_for_that_point_only(device):
    field = _field().to(device)
    pts = POINTS[:, :7].to(device)
    alpha, beta = torch.randn(1, 80, device=device), torch.randn(1, 64, device=device)
    outs = {}
    for b in BACKENDS:
        if b == "kernels":
            require_kernels(device)
        x = pts.clone().requires_grad_()
        with ops.use_backend(b), ops.trace_backends() as tr:
            outs[b] = field(x, alpha, beta)
        assert tr.backends("deform_points") == {b}
        good = torch.isfinite(pts).all(-1)[0].cpu()
        x_c, offset, weight = (t.cpu() for t in outs[b])
        for t in (x_c, offset, weight):
            assert torch.isnan(t[0, ~good]).all() and torch.isfinite(t[0, good]).all()
        (g,) = torch.autograd.grad(
            outs[b][0][:, good.to(device)].sum() + outs[b][2][:, good.to(device)].sum(), x
        )
        g = g.cpu()
        assert torch.isfinite(g[0, good]).all()  # a non-finite point's own gradient is undefined
        outs[b] = (x_c, offset, weight, g[0, good])
    for a, b in zip(outs["kernels"], outs["torch"]):
        _same(a.detach(), b.detach(), 1e-4)


# ---- non-finite parameters: weights, biases, conditioning, planes, colours, densities -----------
# Where the kernels run: each CPU instruction-set tier (docs/cpu_isa.md; the ones this CPU lacks
# are skipped) and CUDA. Every case checks that the kernels ran, on which CPU path, and that they
# put NaN exactly where the reference does, in the outputs and in every gradient.
TARGETS = [pytest.param(("cpu", isa), id=f"cpu-{isa}") for isa in ISAS] + [
    pytest.param(("cuda", None), id="cuda", marks=DEVICES[1].marks)
]


def _compare_on_target(target, fn, inputs, cpu_ops, tol=1e-4, exact_nan=True):
    """fn(*inputs) on the kernels of `target` and on the reference: NaN in the same outputs and
    gradient entries (exact_nan=False: non-finite values in the same entries, NaN or +-inf), the
    rest close; on the CPU, each op of `cpu_ops` ran (only) the path its tier takes. Returns the
    reference's (outputs, gradients)."""
    device, isa = target
    require_kernels(device)
    if isa is not None and isa not in supported_isas():
        pytest.skip(f"this CPU does not support the {isa} tier (detected: {supported_isas()[-1]})")
    before = path_calls()
    with use_cpu_isa(isa or "auto"):
        expected = {op: cpu_isa_info()["ops"][op]["path"] for op in cpu_ops}
        got = _run("kernels", fn, *inputs, device=device)
    if device == "cpu":
        after = path_calls()
        for op, path in expected.items():
            ran = {t for t in ISAS if after[op][t] > before[op][t]}
            assert ran == {path}, (op, isa, ran)
    want = _run("torch", fn, *inputs)
    pairs = [(f"output {i}", a, b) for i, (a, b) in enumerate(zip(got[0], want[0]))]
    pairs += [(f"gradient {i}", a, b) for i, (a, b) in enumerate(zip(got[1], want[1]))]
    for what, a, b in pairs:
        assert (a is None) == (b is None), what
        if a is None:
            continue
        if exact_nan:
            assert torch.equal(torch.isnan(a), torch.isnan(b)), (what, a, b)
            _same(a, b, tol)
        else:
            finite = torch.isfinite(b)
            assert torch.equal(torch.isfinite(a), finite), (what, a, b)
            torch.testing.assert_close(a[finite], b[finite], rtol=tol, atol=tol)
    return want


def _deform_inputs():
    """points [2, 9, 3], alpha [2, 4], beta [2, 3], D-Net 3 layers, W-Net 2 (n_freqs 2)."""
    g = torch.Generator().manual_seed(4)
    P, A, B = 3 + 6 * 2, 4, 3
    pts = torch.rand(2, 9, 3, generator=g) * 2 - 1
    alpha, beta = torch.randn(2, A, generator=g), torch.randn(2, B, generator=g)
    dims = {"d": [P + A + B, 16, 12, 3], "w": [P + A, 8, 1]}
    params = []
    for net in ("d", "w"):
        ds = dims[net]
        ws = [torch.randn(o, i, generator=g) / i**0.5 for i, o in zip(ds[:-1], ds[1:])]
        bs = [torch.randn(o, generator=g) * 0.1 for o in ds[1:]]
        params += [ws, bs]
    return [pts, alpha, beta, *params[0], *params[1], *params[2], *params[3]]


def _deform(x, a, b, dw0, dw1, dw2, db0, db1, db2, ww0, ww1, wb0, wb1):
    return ops.deform_points(x, a, b, [dw0, dw1, dw2], [db0, db1, db2], [ww0, ww1], [wb0, wb1], 2)


# (input index in _deform_inputs, flat element, what becomes NaN in the forward)
DEFORM_NAN_CASES = {
    "d_weights[0] PE column": (3, 5, "offset"),
    "d_weights[0] alpha column": (3, 15 + 1, "offset"),
    "d_weights[0] beta column": (3, 15 + 4 + 2, "offset"),
    "d_weights[1]": (4, 7, "offset"),
    "d_weights[2] row 1": (5, 12 + 3, "offset[1]"),
    "d_biases[0]": (6, 3, "offset"),
    "d_biases[1]": (7, 0, "offset"),
    "d_biases[2]": (8, 2, "offset[2]"),
    "w_weights[0] PE column": (9, 2, "weight"),
    "w_weights[0] alpha column": (9, 15 + 3, "weight"),
    "w_weights[1]": (10, 5, "weight"),
    "w_biases[0]": (11, 7, "weight"),
    "w_biases[1]": (12, 0, "weight"),
    "alpha[1]": (1, 4 + 2, "batch 1"),
    "beta[0]": (2, 1, "batch 0 offset"),
}


@pytest.mark.parametrize("case", list(DEFORM_NAN_CASES))
@pytest.mark.parametrize("target", TARGETS)
def test_nan_parameters_deform_points_match_the_reference(target, case):
    """A NaN in any weight, bias, alpha or beta reaches the outputs it feeds (the kernels' ReLU
    used to turn it into 0: finite, plausible offsets) and the gradients, as in the reference."""
    index, element, reaches = DEFORM_NAN_CASES[case]
    inputs = _deform_inputs()
    inputs[index].view(-1)[element] = NAN
    (x_c, offset, weight), _ = _compare_on_target(target, _deform, inputs, ["deform_points"])
    # ... and exactly the outputs it feeds.
    want = [torch.zeros_like(t, dtype=torch.bool) for t in (x_c, offset, weight)]
    if reaches == "offset":
        want[0][:], want[1][:] = True, True
    elif reaches.startswith("offset["):
        k = int(reaches[-2])
        want[0][..., k], want[1][..., k] = True, True
    elif reaches == "weight":
        want[0][:], want[2][:] = True, True
    elif reaches == "batch 1":
        for m in want:
            m[1] = True
    else:  # beta reaches the D-Net only
        want[0][0], want[1][0] = True, True
    for name, t, m in zip(("x_c", "offset", "weight"), (x_c, offset, weight), want):
        assert torch.equal(torch.isnan(t), m), (case, name)


@pytest.mark.parametrize("target", TARGETS)
def test_inf_parameters_deform_points_match_the_reference(target):
    """+-inf in a hidden weight and in the W-Net's output bias: inf * 0 and inf - inf give NaN
    in the same places as in the reference."""
    inputs = _deform_inputs()
    inputs[4].view(-1)[7] = INF
    inputs[12].view(-1)[0] = -INF
    _compare_on_target(target, _deform, inputs, ["deform_points"])


DECODE_CASES = {
    "fc0_weight": (2, 7),
    "fc0_bias": (3, 5),
    "fc1_weight": (4, 70),
    "fc1_bias (density)": (5, 0),
    "fc1_bias (a feature)": (5, 3),
    "planes": (0, 1000),
}


@pytest.mark.parametrize("value", [NAN, INF, -INF])
@pytest.mark.parametrize("case", list(DECODE_CASES))
@pytest.mark.parametrize("target", TARGETS)
def test_nonfinite_decoder_weights_and_planes_decode_triplane_match_the_reference(
    target, case, value
):
    """EG3D's decoder shapes (C 32, hidden 64: the CPU's vector paths). Points in and outside the
    box: one outside reads no plane, so it passes no gradient even when a NaN weight makes its
    feature gradient NaN (as CUDA's grid_sample; the CPU's multiplied its zero padding by it).
    NaN: NaN in the same entries. +-inf: non-finite in the same entries; the vector CPU paths
    may give +-inf where the reference gives NaN (docs/ops.md)."""
    g = torch.Generator().manual_seed(5)
    planes = torch.randn(1, 3, 32, 8, 8, generator=g)
    pts = torch.rand(1, 40, 3, generator=g) * 3 - 1.5
    w = [
        torch.randn(64, 32, generator=g) * 0.3,
        torch.randn(64, generator=g),
        torch.randn(9, 64, generator=g) * 0.3,
        torch.randn(9, generator=g),
    ]
    inputs = [planes, pts, *w]
    index, element = DECODE_CASES[case]
    inputs[index].view(-1)[element] = value
    (dens, feats), _ = _compare_on_target(
        target,
        lambda p, x, *w: ops.decode_triplane(p, x, 1.0, *w),
        inputs,
        ["decode_triplane_forward", "decode_triplane_backward"],
        exact_nan=value != value or target[1] in (None, "scalar"),
    )
    if value != value:  # a NaN reaches the outputs (+-inf may saturate a sigmoid)
        assert torch.isnan(feats).any() or torch.isnan(dens).any()


@pytest.mark.parametrize("value", [NAN, INF, -INF])
@pytest.mark.parametrize("target", TARGETS)
def test_nonfinite_planes_sample_triplane_match_the_reference(target, value):
    g = torch.Generator().manual_seed(6)
    planes = torch.randn(1, 3, 19, 8, 8, generator=g)
    planes[0, 1, 2, 3, 4] = value
    pts = torch.rand(1, 60, 3, generator=g) * 2.4 - 1.2
    (out,), _ = _compare_on_target(
        target,
        lambda p, x: ops.sample_triplane(p, x, 1.0, "concat"),
        [planes, pts],
        ["sample_triplane_forward", "sample_triplane_backward"],
    )
    assert not torch.isfinite(out).all()


@pytest.mark.parametrize("value", [NAN, INF, -INF])
@pytest.mark.parametrize("which", ["colors", "densities"])
@pytest.mark.parametrize("target", TARGETS)
def test_nonfinite_colors_and_densities_composite_match_the_reference(target, which, value):
    c, d, z = (torch.nan_to_num(t, 2.5) for t in _composite_inputs())
    z = torch.sort(z, 2)[0]
    (c if which == "colors" else d)[0, 1, 3, 0] = value
    _compare_on_target(target, ops.composite_rays, [c, d, z], ["composite_rays"])

    def merged(c, d, z):
        return ops.composite_rays_merged(
            c[:, :, :3], d[:, :, :3], z[:, :, :3], c[:, :, 3:], d[:, :, 3:], z[:, :, 3:]
        )

    _compare_on_target(target, merged, [c, d, z], ["composite_rays_merged"])


# ---- NaN depths: composite_rays / composite_rays_merged ------------------------------------------
def _composite_inputs():
    g = torch.Generator().manual_seed(0)
    R, S, C = 5, 6, 3
    colors = torch.rand(1, R, S, C, generator=g)
    dens = torch.randn(1, R, S, 1, generator=g) * 3 + 2
    depths = torch.sort(torch.rand(1, R, S, 1, generator=g) + 2, 2)[0]
    depths[0, 1, 3, 0] = NAN
    depths[0, 2, 0, 0] = NAN
    dens[0, 4] = -1000.0  # an empty ray: its depth is the far bound of the non-NaN depths
    return colors, dens, depths


def _check_nan_rule(outs, grads, depths):
    features, depth, weights = outs
    bad = torch.isnan(depths).any(-2)[0, :, 0]
    assert torch.isnan(features[0, bad]).all() and torch.isnan(depth[0, bad]).all()
    assert torch.isnan(weights[0, bad]).all()
    for t in (features, depth, weights):
        assert torch.isfinite(t[0, ~bad]).all()
    assert depth[0, 4, 0] == torch.max(
        depths[~torch.isnan(depths)]
    )  # NaN does not reach other rays
    for g in grads:  # gradients of the other rays stay finite
        assert torch.isfinite(g[0, ~bad]).all()


@pytest.mark.parametrize("device", DEVICES)
def test_nan_depths_composite_rays(device):
    inputs = _composite_inputs()
    res = {b: _run(b, ops.composite_rays, *inputs, device=device) for b in BACKENDS}
    for b in BACKENDS:
        _check_nan_rule(*res[b], inputs[2])
    bad = torch.isnan(inputs[2]).any(-2)[0, :, 0]
    for a, b in zip(res["kernels"][0], res["torch"][0]):
        _same(a, b)
    for a, b in zip(res["kernels"][1], res["torch"][1]):
        _same(a[0, ~bad], b[0, ~bad], 1e-4)


@pytest.mark.parametrize("device", DEVICES)
def test_nan_depths_composite_rays_merged(device):
    c, d, z = _composite_inputs()

    def merged(c, d, z):
        return ops.composite_rays_merged(
            c[:, :, :3], d[:, :, :3], z[:, :, :3], c[:, :, 3:], d[:, :, 3:], z[:, :, 3:]
        )

    res = {b: _run(b, merged, c, d, z, device=device) for b in BACKENDS}
    for b in BACKENDS:
        _check_nan_rule(*res[b], z)
    bad = torch.isnan(z).any(-2)[0, :, 0]
    for a, b in zip(res["kernels"][0], res["torch"][0]):
        _same(a, b)
    for a, b in zip(res["kernels"][1], res["torch"][1]):
        _same(a[0, ~bad], b[0, ~bad], 1e-4)


# ---- preconditions ---------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_unsorted_depths_raise(backend):
    c, d, z = (t.clone() for t in _composite_inputs())
    z = torch.nan_to_num(z, 2.5)
    z = torch.sort(z, 2)[0]
    z[0, 3, 2, 0] = z[0, 3, 0, 0] - 0.1  # one ray out of order
    with ops.use_backend(backend):
        with pytest.raises(ValueError, match="depths must be sorted ascending"):
            ops.composite_rays(c, d, z)
        with pytest.raises(ValueError, match="depths_b must be sorted ascending"):
            ops.composite_rays_merged(
                c[:, :, :3],
                d[:, :, :3],
                torch.sort(z[:, :, :3], 2)[0],
                c[:, :, 3:],
                d[:, :, 3:],
                z[:, :, 3:].flip(2),
            )


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("value", ["no", 1, None])
def test_white_back_must_be_bool(backend, value):
    c, d, z = (torch.nan_to_num(t, 2.5) for t in _composite_inputs())
    z = torch.sort(z, 2)[0]
    with ops.use_backend(backend):
        with pytest.raises(TypeError, match="white_back must be a bool"):
            ops.composite_rays(c, d, z, value)
        with pytest.raises(TypeError, match="white_back must be a bool"):
            ops.composite_rays_merged(
                c[:, :, :3], d[:, :, :3], z[:, :, :3], c[:, :, 3:], d[:, :, 3:], z[:, :, 3:], value
            )


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "value,error",
    [
        (NAN, ValueError),
        (INF, ValueError),
        (-1.0, ValueError),
        (0, ValueError),
        ("1.0", TypeError),
        (True, TypeError),
    ],
)
def test_box_warp_must_be_a_positive_finite_number(backend, value, error):
    planes, pts = _planes(), torch.zeros(1, 4, 3)
    w = (torch.randn(16, 4), torch.randn(16), torch.randn(3, 16), torch.randn(3))
    with ops.use_backend(backend):
        with pytest.raises(error, match="box_warp must be a positive finite number"):
            ops.sample_triplane(planes, pts, value)
        with pytest.raises(error, match="box_warp must be a positive finite number"):
            ops.decode_triplane(planes, pts, value, *w)


def test_render_options_check_flags_and_box_warp():
    from nofa.render import RenderOptions

    with pytest.raises(TypeError, match="white_back must be a bool"):
        RenderOptions(white_back="no")
    with pytest.raises(ValueError, match="box_warp"):
        RenderOptions(box_warp=float("nan"))
    with pytest.raises(ValueError, match="box_warp"):
        RenderOptions(box_warp="1")


# ---- double backward ----------------------------------------------------------------------------
def _double_backward_cases(device="cpu"):
    g = torch.Generator().manual_seed(0)
    planes = torch.randn(1, 3, 4, 8, 8, generator=g).to(device)
    pts = (torch.rand(1, 10, 3, generator=g) - 0.5).to(device)
    w = tuple(
        t.to(device)
        for t in (
            torch.randn(16, 4, generator=g),
            torch.randn(16, generator=g),
            torch.randn(3, 16, generator=g),
            torch.randn(3, generator=g),
        )
    )
    c, d, z = (torch.nan_to_num(t, 2.5).to(device) for t in _composite_inputs())
    z = torch.sort(z, 2)[0]
    field = _field().to(device)
    ab = (torch.randn(1, 80, generator=g).to(device), torch.randn(1, 64, generator=g).to(device))
    return {
        "sample_triplane": (lambda p, x: ops.sample_triplane(p, x), (planes, pts)),
        "decode_triplane": (lambda p, x: ops.decode_triplane(p, x, 1.0, *w)[1], (planes, pts)),
        "composite_rays": (lambda c, d: ops.composite_rays(c, d, z)[0], (c, d)),
        "composite_rays_merged": (
            lambda c, d: ops.composite_rays_merged(
                c[:, :, :3], d[:, :, :3], z[:, :, :3], c[:, :, 3:], d[:, :, 3:], z[:, :, 3:]
            )[0],
            (c, d),
        ),
        "deform_points": (lambda x: field(x, *ab)[0], (pts,)),
    }


def _grid_sample_has_double_backward(device: str) -> bool:
    x = torch.randn(1, 1, 3, 3, device=device, requires_grad=True)
    grid = torch.rand(1, 2, 2, 2, device=device, requires_grad=True)
    (g,) = torch.autograd.grad(
        F.grid_sample(x, grid, align_corners=False).square().sum(), grid, create_graph=True
    )
    try:
        g.sum().backward()
    except RuntimeError as e:
        if "not implemented" in str(e):
            return False
        raise
    return True


@pytest.mark.parametrize(
    "op",
    [
        "sample_triplane",
        "decode_triplane",
        "composite_rays",
        "composite_rays_merged",
        "deform_points",
    ],
)
@pytest.mark.parametrize("device", DEVICES)
def test_double_backward_through_a_kernel_raises(op, device):
    require_kernels(device)
    fn, inputs = _double_backward_cases(device)[op]
    xs = [t.clone().requires_grad_() for t in inputs]
    with ops.use_backend("kernels"):
        out = fn(*xs)
    first = torch.autograd.grad((out * out).sum(), xs, create_graph=True)
    with pytest.raises(RuntimeError, match=f"{op}'s kernel has no double backward"):
        sum(g.square().sum() for g in first).backward()
    # The reference differentiates twice (the documented way to get second derivatives) where
    # PyTorch's own grid_sample does (docs/ops.md, "Double backward": not torch 2.11's).
    if op in ("sample_triplane", "decode_triplane") and not _grid_sample_has_double_backward(
        device
    ):
        return
    xs = [t.clone().requires_grad_() for t in inputs]
    with ops.use_backend("torch"):
        first = torch.autograd.grad((fn(*xs) ** 2).sum(), xs, create_graph=True)
    sum(g.square().sum() for g in first).backward()
    assert all(x.grad is not None for x in xs)


def test_double_backward_of_channels_last_planes_is_exact():
    require_kernels("cpu")
    planes = torch.randn(1, 3, 4, 5, 6, dtype=torch.float64, requires_grad=True)
    with ops.use_backend("kernels"), ops.trace_backends() as tr:
        assert torch.autograd.gradgradcheck(lambda p: ops.channels_last_planes(p) * 1.0, (planes,))
    assert tr.backends("channels_last_planes") == {"kernels"}
