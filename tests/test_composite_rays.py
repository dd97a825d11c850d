"""composite_rays: CPU / CUDA kernels against the pure-PyTorch reference (EG3D MipRayMarcher2)."""

from __future__ import annotations

import pytest
import torch
from conftest import DEVICES, assert_grads_close, require_kernels

import nofa.ops as ops
from nofa.ops import reference
from nofa.ops.cpu_isa import use_cpu_isa

FWD_TOL = 1e-5  # float32 forward: max abs error
GRAD_TOL = 1e-4  # float32 gradients: norm-wise relative error
NAMES = ("colors", "densities", "depths")


def make_inputs(N, R, S, C, device="cpu", dtype=torch.float32, dens_scale=3.0, near=0.8, far=3.2):
    """Random colours and densities, depths sorted along S and unevenly spaced per ray."""
    colors = torch.rand(N, R, S, C, device=device, dtype=dtype)
    densities = torch.randn(N, R, S, 1, device=device, dtype=dtype) * dens_scale
    gaps = torch.rand(N, R, S, 1, device=device, dtype=dtype) ** 2 + 0.05
    depths = near + (far - near) * torch.cumsum(gaps, 2) / gaps.sum(2, keepdim=True)
    return colors, densities, depths


def run(inputs, backend, white_back, cotangents=None, trace_ok=True):
    """Forward on `backend`, then gradients w.r.t. all inputs under `cotangents`."""
    leaves = [t.detach().clone().requires_grad_() for t in inputs]
    with ops.use_backend(backend), ops.trace_backends() as tr:
        outs = ops.composite_rays(*leaves, white_back=white_back)
    if trace_ok:
        assert tr.backends("composite_rays") == {"kernels" if backend == "kernels" else "torch"}
    if cotangents is None:
        return outs, None
    used = [(o, g) for o, g in zip(outs, cotangents) if g is not None]
    grads = torch.autograd.grad(
        [o for o, _ in used], leaves, [g for _, g in used], allow_unused=True
    )
    return outs, grads


def depth_tol(inputs, weights):
    """Per-ray tolerance of the float32 depth.

    The depth is sum(w * z_mid) / sum(w). Each weight carries an absolute rounding error of
    about one float32 ulp at 1 (6e-8, from 1 - exp(-x)), which any two float32
    implementations round differently, so a nearly empty ray's depth is ill-conditioned:
    the error bound grows like S * 6e-8 * depth span / sum(w). An empty ray (sum 0) must
    match exactly (the far bound).
    """
    wsum = weights.detach().sum(2)
    span = (inputs[2].max() - inputs[2].min()).item()
    cond = 2 * inputs[0].shape[2] * 6e-8 * span / wsum.clamp_min(1e-30)
    return FWD_TOL + torch.where(wsum > 0, cond, torch.zeros_like(cond))


def compare(inputs, white_back, cot_mask=(True, True, True), grad_tol=GRAD_TOL):
    device = inputs[0].device.type
    require_kernels(device)
    ref_out, _ = run(inputs, "torch", white_back)
    cots = [torch.randn_like(o) if m else None for o, m in zip(ref_out, cot_mask)]
    k_out, k_grads = run(inputs, "kernels", white_back, cots)
    r_out, r_grads = run(inputs, "torch", white_back, cots)
    for name, a, b in zip(("features", "depth", "weights"), k_out, r_out):
        assert a.shape == b.shape and a.dtype == b.dtype, name
        assert torch.isfinite(a).all(), f"{name}: non-finite output"
        if a.numel():
            err = (a.detach() - b.detach()).abs()
            tol = depth_tol(inputs, r_out[2]) if name == "depth" else FWD_TOL
            assert (err <= tol).all(), f"{name}: max abs error {err.max().item():.3g}"
    # The reference gives None for an input no used output depends on; the kernel zeros.
    r_grads = [torch.zeros_like(x) if g is None else g for g, x in zip(r_grads, inputs)]
    k_grads = [torch.zeros_like(x) if g is None else g for g, x in zip(k_grads, inputs)]
    assert_grads_close(k_grads, r_grads, tol=grad_tol, names=NAMES)
    return k_out, k_grads


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("S", [2, 3, 48, 96, 192])
@pytest.mark.parametrize("C", [1, 3, 32])
@pytest.mark.parametrize("white_back", [False, True])
def test_matches_reference(device, S, C, white_back):
    compare(make_inputs(2, 24, S, C, device), white_back)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("C", [0, 5, 33, 96])
def test_channel_counts(device, C):
    # The CUDA colour dot product runs one group of L lanes per (ray, sample), L = C rounded
    # up to a power of two (at most 32, looping above): C = 0 (no colour work), 5 (L = 8,
    # idle lanes), 33 and 96 (loops, a partial one for 33); 37 rays * 7 samples * L lanes is
    # no multiple of the block size, so the last block has threads past the last group.
    compare(make_inputs(1, 37, 7, C, device), white_back=C % 2 == 1)


@pytest.mark.parametrize("device", DEVICES)
def test_many_rays(device):
    # N * R = 10^5 rays.
    compare(make_inputs(2, 50_000, 3, 3, device), white_back=True)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    "cot_mask",
    [(True, False, False), (False, True, False), (False, False, True), (True, False, True)],
)
def test_partial_cotangents(device, cot_mask):
    # Only some outputs carry a gradient (the others arrive as None in the backward).
    compare(make_inputs(1, 40, 12, 3, device), white_back=cot_mask[0], cot_mask=cot_mask)


@pytest.mark.parametrize("device", DEVICES)
def test_non_contiguous(device):
    c, d, z = make_inputs(2, 30, 16, 6, device)
    colors = c.transpose(0, 1).contiguous().transpose(0, 1)[..., ::2]  # strided channels
    densities = d.expand(2, 30, 16, 1).clone().transpose(1, 2).contiguous().transpose(1, 2)
    depths = torch.cat([z, z], -1)[..., :1]
    assert (
        not colors.is_contiguous() and not densities.is_contiguous() and not depths.is_contiguous()
    )
    compare((colors, densities, depths), white_back=False)


@pytest.mark.parametrize("device", DEVICES)
def test_no_rays(device):
    require_kernels(device)
    inputs = [t.requires_grad_() for t in make_inputs(2, 0, 5, 3, device)]
    with ops.use_backend("kernels"):
        feat, depth, weights = ops.composite_rays(*inputs)
    assert feat.shape == (2, 0, 3) and depth.shape == (2, 0, 1) and weights.shape == (2, 0, 4, 1)
    grads = torch.autograd.grad(feat.sum() + depth.sum() + weights.sum(), inputs)
    assert [tuple(g.shape) for g in grads] == [tuple(x.shape) for x in inputs]


def saturated_inputs(device, N=2, R=6, S=10, C=4):
    """Rays of +80 (alpha == 1 at the first interval), -80 (empty) and mixed densities.

    Depths are 0.5 apart, so sigma * delta = 39.5 for +80: 1 - exp(-39.5) == 1 in float32.
    """
    colors, densities, _ = make_inputs(N, R, S, C, device)
    depths = (
        (1.0 + 0.5 * torch.arange(S, device=device, dtype=torch.float32))
        .view(1, 1, S, 1)
        .repeat(N, R, 1, 1)
    )
    densities[:, 0::3] = 80.0
    densities[:, 1::3] = -80.0
    densities[:, 2::3, : S // 2] = -80.0
    densities[:, 2::3, S // 2 :] = 80.0
    return colors, densities, depths


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("white_back", [False, True])
def test_saturation(device, white_back):
    inputs = saturated_inputs(device)
    (feat, depth, weights), grads = compare(inputs, white_back)
    w = weights.detach()
    assert (w[:, 0::3, 0] == 1).all(), "+80: alpha must be exactly 1 at the first interval"
    assert (w[:, 1::3] == 0).all(), "-80: an empty ray has zero weights"
    # EG3D: an empty ray's depth is 0/0 -> NaN -> +inf, clamped to the largest depth.
    assert (depth.detach()[:, 1::3] == inputs[2].max()).all()
    for g in grads:
        assert torch.isfinite(g).all()


@pytest.mark.parametrize("white_back", [False, True])
def test_scalar_cpu_path(white_back):
    # On AVX2 CPUs the float32 kernel computes exp / log1p with SIMD; this forces the scalar
    # interval math (what other CPUs and, line for line, the CUDA kernels run).
    with use_cpu_isa("scalar"):
        compare(make_inputs(2, 24, 48, 3), white_back)
        compare(saturated_inputs("cpu"), white_back)


@pytest.mark.parametrize("device", DEVICES)
def test_depth_gradient_on_clamp_bound(device):
    # All rays share the same depths, so min and max are tied across rays: the empty rays'
    # depth cotangent (clamped to the far bound) is shared by every element equal to max.
    inputs = saturated_inputs(device, R=4)
    compare(inputs, white_back=False, cot_mask=(False, True, False))


def test_gradcheck_float64():
    require_kernels("cpu")
    for white_back in (False, True):
        c, d, z = make_inputs(2, 3, 5, 2, dtype=torch.float64)
        leaves = [t.requires_grad_() for t in (c, d, z)]

        def fn(*x, white_back=white_back):
            with ops.use_backend("kernels"):
                return ops.composite_rays(*x, white_back=white_back)

        assert torch.autograd.gradcheck(fn, leaves)


def test_gradcheck_float64_saturated():
    # Saturated and empty rays stay differentiable: alpha == 1 in float64 needs
    # sigma * delta > 37, reached here by +80 densities with 0.5-spaced depths.
    require_kernels("cpu")
    c, d, z = (t.double() for t in saturated_inputs("cpu", N=1, R=3, S=5, C=2))
    d[0, 1] = -5.0  # a nearly empty ray keeps the depth path finite (gradcheck needs smoothness)
    leaves = [t.requires_grad_() for t in (c, d, z)]

    def fn(*x):
        with ops.use_backend("kernels"):
            return ops.composite_rays(*x)

    assert torch.autograd.gradcheck(fn, leaves)


@pytest.mark.parametrize("device", DEVICES)
def test_opcheck(device):
    require_kernels(device)
    c, d, z = make_inputs(2, 7, 6, 3, device)
    for white_back in (False, True):
        args = (c.requires_grad_(), d.requires_grad_(), z.requires_grad_(), white_back)
        torch.library.opcheck(torch.ops.nofa.composite_rays.default, args)
    cots = (torch.randn(2, 7, 3, device=device), torch.randn(2, 7, 1, device=device), None)
    torch.library.opcheck(
        torch.ops.nofa.composite_rays_backward.default,
        (*cots, c.detach(), d.detach(), z.detach(), True, True, True, True),
    )


BAD = [
    ("S = 1", lambda c, d, z: (c[:, :, :1], d[:, :, :1], z[:, :, :1]), "S >= 2"),
    ("S mismatch", lambda c, d, z: (c, d[:, :, :-1], z), "densities"),
    ("R mismatch", lambda c, d, z: (c, d, z[:, :-1]), "depths"),
    ("trailing dim", lambda c, d, z: (c, torch.cat([d, d], -1), z), "densities"),
    ("3-d colors", lambda c, d, z: (c[0], d, z), "colors"),
    ("int colors", lambda c, d, z: ((c * 10).int(), d, z), "colors"),
    ("int depths", lambda c, d, z: (c, d, z.long()), "depths"),
    ("dtype mix", lambda c, d, z: (c, d.double(), z), "densities"),
]


@pytest.mark.parametrize("backend", ["kernels", "torch"])
@pytest.mark.parametrize("case", BAD, ids=[b[0] for b in BAD])
def test_bad_input_public(backend, case):
    _, make, word = case
    args = make(*make_inputs(1, 4, 5, 3))
    with ops.use_backend(backend), pytest.raises((ValueError, TypeError), match=word):
        ops.composite_rays(*args)


@pytest.mark.parametrize("case", BAD, ids=[b[0] for b in BAD])
def test_bad_input_kernel(case):
    # The registered op checks on its own (it can be called without the Python wrapper).
    require_kernels("cpu")
    _, make, word = case
    args = make(*make_inputs(1, 4, 5, 3))
    with pytest.raises(RuntimeError, match=word):
        torch.ops.nofa.composite_rays(*args, False)


def test_reference_gradients_finite_for_empty_rays():
    # The fallback path too: an empty ray's depth (0/0) must not poison the gradients.
    c, d, z = (t.requires_grad_() for t in saturated_inputs("cpu"))
    feat, depth, weights = reference.composite_rays(c, d, z)
    grads = torch.autograd.grad(feat.sum() + depth.sum() + weights.sum(), (c, d, z))
    assert all(torch.isfinite(g).all() for g in grads)
    assert (depth[:, 1::3] == z.max()).all()
