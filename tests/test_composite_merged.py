"""composite_rays_merged: CPU kernel against the reference (cat + stable sort + composite_rays)."""

from __future__ import annotations

import pytest
import torch
from conftest import DEVICES, HAS_CUDA, assert_grads_close, require_kernels
from test_composite_rays import FWD_TOL, GRAD_TOL, depth_tol

import nofa.ops as ops
from nofa.ops.cpu_isa import use_cpu_isa

OP = "composite_rays_merged"
NAMES = ("colors_a", "densities_a", "depths_a", "colors_b", "densities_b", "depths_b")
SIZES = [(48, 48), (5, 0), (1, 1), (3, 7)]


def sorted_depths(N, R, S, device, dtype, quantize):
    """Random depths in [1, 3], sorted along S; on a coarse grid (many exact ties within and
    between sets) in the rays where `quantize` [R] is True."""
    z = 1 + 2 * torch.rand(N, R, S, 1, device=device, dtype=dtype)
    z = torch.where(quantize.view(1, R, 1, 1), torch.round(z * 4) / 4, z)
    return torch.sort(z, dim=2).values


def make_sets(N, R, Sa, Sb, C, device="cpu", dtype=torch.float32, ties=True, extremes=True):
    """Two sample sets whose depths interleave; rays 0 mod 3 quantized (ties), rays 1 mod 5
    saturated (+80), rays 2 mod 5 empty (-80)."""
    quantize = (torch.arange(R, device=device) % 3 == 0) & ties
    sets = []
    for S in (Sa, Sb):
        colors = torch.rand(N, R, S, C, device=device, dtype=dtype)
        densities = torch.randn(N, R, S, 1, device=device, dtype=dtype) * 3
        if extremes:
            densities[:, 1::5] = 80.0
            densities[:, 2::5] = -80.0
        sets += [colors, densities, sorted_depths(N, R, S, device, dtype, quantize)]
    return tuple(sets)


def run(inputs, backend, white_back, cotangents=None, fn=None):
    """Forward on `backend` (checking which one ran), then the gradients of all inputs."""
    leaves = [t.detach().clone().requires_grad_() for t in inputs]
    with ops.use_backend(backend), ops.trace_backends() as tr:
        outs = (fn or ops.composite_rays_merged)(*leaves, white_back=white_back)
    if fn is None:
        assert tr.backends(OP) == {"kernels" if backend == "kernels" else "torch"}
    if cotangents is None:
        return outs, None
    used = [(o, g) for o, g in zip(outs, cotangents) if g is not None]
    grads = torch.autograd.grad(
        [o for o, _ in used], leaves, [g for _, g in used], allow_unused=True
    )
    return outs, [torch.zeros_like(x) if g is None else g for g, x in zip(grads, leaves)]


def merged_inputs(inputs):
    """The concatenated + stably sorted inputs of the equivalent composite_rays call."""
    ca, da, za, cb, db, zb = inputs
    z = torch.cat([za, zb], 2)
    order = torch.sort(z, dim=2, stable=True).indices
    return (torch.cat([ca, cb], 2), torch.cat([da, db], 2), z), order


def compare(inputs, white_back, cot_mask=(True, True, True)):
    require_kernels("cpu")
    ref_out, _ = run(inputs, "torch", white_back)
    cots = [torch.randn_like(o) if m else None for o, m in zip(ref_out, cot_mask)]
    k_out, k_grads = run(inputs, "kernels", white_back, cots)
    r_out, r_grads = run(inputs, "torch", white_back, cots)
    cat, _ = merged_inputs(inputs)
    for name, a, b in zip(("features", "depth", "weights"), k_out, r_out):
        assert a.shape == b.shape and a.dtype == b.dtype, name
        assert torch.isfinite(a).all(), f"{name}: non-finite output"
        if a.numel():
            err = (a.detach() - b.detach()).abs()
            tol = depth_tol(cat, r_out[2]) if name == "depth" else FWD_TOL
            assert (err <= tol).all(), f"{name}: max abs error {err.max().item():.3g}"
    assert_grads_close(k_grads, r_grads, tol=GRAD_TOL, names=NAMES)
    return cots


@pytest.mark.parametrize("sizes", SIZES, ids=[f"{a}+{b}" for a, b in SIZES])
@pytest.mark.parametrize("C", [1, 3, 32])
@pytest.mark.parametrize("white_back", [False, True])
def test_matches_reference(sizes, C, white_back):
    compare(make_sets(2, 20, *sizes, C), white_back)


@pytest.mark.parametrize("sizes", SIZES, ids=[f"{a}+{b}" for a, b in SIZES])
@pytest.mark.parametrize("white_back", [False, True])
def test_equals_composite_rays_kernel(sizes, white_back):
    # The same per-ray code on the same values in the same order: bit for bit the result of
    # the composite_rays kernel on cat + stable sort + gather, gradients included (the
    # gather's backward only places each gradient, it adds nothing).
    require_kernels("cpu")
    inputs = make_sets(2, 20, *sizes, 3)

    def cat_sort(ca, da, za, cb, db, zb, white_back):
        (c, d, z), order = merged_inputs((ca, da, za, cb, db, zb))
        gather = lambda t: torch.gather(t, 2, order.expand(-1, -1, -1, t.shape[3]))  # noqa: E731
        return ops.composite_rays(gather(c), gather(d), gather(z), white_back)

    outs, _ = run(inputs, "kernels", white_back)
    cots = [torch.randn_like(o) for o in outs]
    k_out, k_grads = run(inputs, "kernels", white_back, cots)
    c_out, c_grads = run(inputs, "kernels", white_back, cots, fn=cat_sort)
    for name, a, b in zip(
        ("features", "depth", "weights") + NAMES, (*k_out, *k_grads), (*c_out, *c_grads)
    ):
        assert torch.equal(a, b), f"{name}: max abs difference {(a - b).abs().max().item():.3g}"


def test_tie_order():
    # Exact ties between the sets: set a's sample comes first. The densities differ, so the
    # other order would change the weights of the following interval.
    require_kernels("cpu")
    z = torch.tensor([1.0, 2.0, 3.0]).view(1, 1, 3, 1)
    da, db = (
        torch.tensor([0.0, 5.0, 1.0]).view(1, 1, 3, 1),
        torch.tensor([9.0, -3.0, 2.0]).view(1, 1, 3, 1),
    )
    ca, cb = torch.rand(1, 1, 3, 2), torch.rand(1, 1, 3, 2)
    with ops.use_backend("kernels"):
        got = ops.composite_rays_merged(ca, da, z, cb, db, z.clone())
    order = torch.tensor([0, 3, 1, 4, 2, 5])
    want = ops.composite_rays(
        torch.cat([ca, cb], 2)[:, :, order],
        torch.cat([da, db], 2)[:, :, order],
        torch.cat([z, z], 2)[:, :, order],
    )
    for a, b in zip(got, want):
        assert torch.equal(a, b)


@pytest.mark.parametrize(
    "cot_mask", [(True, False, False), (False, True, False), (False, False, True)]
)
def test_partial_cotangents(cot_mask):
    compare(make_sets(1, 30, 6, 9, 3), white_back=cot_mask[0], cot_mask=cot_mask)


def test_some_inputs_need_no_grad():
    # Only set b's colours and set a's depths require a gradient.
    require_kernels("cpu")
    inputs = make_sets(1, 10, 4, 5, 3)
    grads = {}
    for backend in ("kernels", "torch"):
        x = [t.clone() for t in inputs]
        x[3].requires_grad_()
        x[2].requires_grad_()
        with ops.use_backend(backend):
            feat, depth, _ = ops.composite_rays_merged(*x)
        grads[backend] = torch.autograd.grad(feat.sum() + depth.sum(), (x[3], x[2]))
    assert_grads_close(
        grads["kernels"], grads["torch"], tol=GRAD_TOL, names=("colors_b", "depths_a")
    )


def test_scalar_cpu_path():
    # Forces the scalar interval math (what non-AVX2 CPUs run) instead of SIMD exp / log1p.
    with use_cpu_isa("scalar"):
        compare(make_sets(2, 20, 48, 48, 3), white_back=True)


@pytest.mark.parametrize("device", DEVICES)
def test_non_contiguous(device):
    # On CUDA the host makes sample-major copies of the densities and depths of both sets.
    require_kernels(device)
    ca, da, za, cb, db, zb = make_sets(2, 12, 7, 5, 6, device)
    ca = ca.transpose(0, 1).contiguous().transpose(0, 1)[..., ::2]
    cb = cb[..., 1::2]
    da = da.transpose(1, 2).contiguous().transpose(1, 2)
    zb = torch.cat([zb, zb], -1)[..., :1]
    assert not any(t.is_contiguous() for t in (ca, cb, da, zb))
    compare((ca, da, za, cb, db, zb), white_back=False)


def test_no_rays():
    require_kernels("cpu")
    inputs = [t.requires_grad_() for t in make_sets(2, 0, 5, 4, 3)]
    with ops.use_backend("kernels"):
        feat, depth, weights = ops.composite_rays_merged(*inputs)
    assert feat.shape == (2, 0, 3) and depth.shape == (2, 0, 1) and weights.shape == (2, 0, 8, 1)
    grads = torch.autograd.grad(feat.sum() + depth.sum() + weights.sum(), inputs)
    assert [tuple(g.shape) for g in grads] == [tuple(x.shape) for x in inputs]


def test_empty_set_a():
    compare(make_sets(1, 10, 0, 6, 3), white_back=True)


@pytest.mark.parametrize("sizes", [(3, 4), (5, 0)])
def test_gradcheck_float64(sizes):
    require_kernels("cpu")
    for white_back in (False, True):
        # No ties (a perturbed tie would swap samples) and no saturated rays (not smooth).
        inputs = make_sets(1, 3, *sizes, 2, dtype=torch.float64, ties=False, extremes=False)
        # gradcheck rejects empty tensors (stride 0): an empty set b is passed as a constant.
        n = 6 if sizes[1] else 3
        leaves = [t.requires_grad_() for t in inputs[:n]]

        def fn(*x, inputs=inputs, n=n, white_back=white_back):
            with ops.use_backend("kernels"):
                return ops.composite_rays_merged(*x, *inputs[n:], white_back=white_back)

        assert torch.autograd.gradcheck(fn, leaves)


def test_opcheck():
    require_kernels("cpu")
    inputs = make_sets(2, 7, 4, 3, 3)
    for white_back in (False, True):
        args = (*(t.clone().requires_grad_() for t in inputs), white_back)
        torch.library.opcheck(torch.ops.nofa.composite_rays_merged.default, args)
    cots = (torch.randn(2, 7, 3), torch.randn(2, 7, 1), torch.randn(2, 7, 6, 1))
    for flags in ((True, True, True), (False, True, False)):
        torch.library.opcheck(
            torch.ops.nofa.composite_rays_merged_backward.default, (*cots, *inputs, True, *flags)
        )


@pytest.mark.cuda
@pytest.mark.skipif(not HAS_CUDA, reason="no CUDA GPU visible: CUDA kernel not exercised")
@pytest.mark.parametrize("sizes", SIZES, ids=[f"{a}+{b}" for a, b in SIZES])
@pytest.mark.parametrize("white_back", [False, True])
@pytest.mark.parametrize("C", [3, 32, 33])
def test_cuda_kernel_matches_cpu_kernel(sizes, white_back, C):
    # The CUDA kernel runs the same per-ray math on the same merged order as the CPU
    # kernel: outputs and all six gradients agree to float rounding (sums over channels
    # may be ordered differently), and the clamp-bound gradient spans both sets.
    require_kernels("cuda")
    require_kernels("cpu")
    inputs = make_sets(2, 20, *sizes, C)
    outs, _ = run(inputs, "kernels", white_back)
    cots = [torch.randn_like(o) for o in outs]
    c_out, c_grads = run(inputs, "kernels", white_back, cots)
    g_out, g_grads = run(
        [t.cuda() for t in inputs], "kernels", white_back, [c.cuda() for c in cots]
    )
    cat, _ = merged_inputs(inputs)
    for name, a, b in zip(("features", "depth", "weights"), c_out, g_out):
        err = (b.detach().cpu() - a.detach()).abs()
        tol = depth_tol(cat, c_out[2]) if name == "depth" else FWD_TOL
        assert (err <= tol).all(), f"{name}: max abs error {err.max().item():.3g}"
    assert_grads_close([g.cpu() for g in g_grads], c_grads, tol=GRAD_TOL, names=NAMES)


BAD = [
    (
        "S_a + S_b = 1",
        lambda a, b: (*(t[:, :, :1] for t in a), *(t[:, :, :0] for t in b)),
        "S_a \\+ S_b >= 2",
    ),
    ("S mismatch a", lambda a, b: (a[0], a[1][:, :, :-1], a[2], *b), "densities_a"),
    ("R mismatch b", lambda a, b: (*a, b[0], b[1], b[2][:, :-1]), "depths_b"),
    ("N mismatch", lambda a, b: (*a, *(t[:1] for t in b)), "colors_a and colors_b"),
    ("C mismatch", lambda a, b: (*a, b[0][..., :2], *b[1:]), "colors_a and colors_b"),
    ("trailing dim", lambda a, b: (*a, b[0], torch.cat([b[1], b[1]], -1), b[2]), "densities_b"),
    ("3-d colors", lambda a, b: (a[0][0], *a[1:], *b), "colors_a"),
    ("int depths", lambda a, b: (*a, b[0], b[1], b[2].long()), "depths_b"),
    ("dtype mix", lambda a, b: (*a, b[0].double(), *b[1:]), "colors_b"),
]


def bad_args(make):
    s = make_sets(2, 4, 5, 3, 3)
    return make(s[:3], s[3:])


@pytest.mark.parametrize("backend", ["kernels", "torch"])
@pytest.mark.parametrize("case", BAD, ids=[b[0] for b in BAD])
def test_bad_input_public(backend, case):
    _, make, word = case
    with ops.use_backend(backend), pytest.raises((ValueError, TypeError), match=word):
        ops.composite_rays_merged(*bad_args(make))


@pytest.mark.parametrize("case", BAD, ids=[b[0] for b in BAD])
def test_bad_input_kernel(case):
    # The registered op checks on its own (it can be called without the Python wrapper).
    require_kernels("cpu")
    _, make, word = case
    with pytest.raises(RuntimeError, match=word):
        torch.ops.nofa.composite_rays_merged(*bad_args(make), False)
