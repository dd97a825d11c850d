"""deform_points (kernels vs the pure-PyTorch twin) and the DeformationField module."""

from __future__ import annotations

import importlib
import math
import time
import warnings

import pytest
import torch
from conftest import DEVICES, HAS_CUDA, assert_grads_close, rel_err, require_kernels

import nofa.ops as ops
from nofa.models import DeformationField

dp_mod = importlib.import_module("nofa.ops.deform_points")  # the module, not the function

SMALL = dict(n_freqs=4, id_dim=7, exp_dim=5, d_hidden=32, d_layers=3, w_hidden=32, w_layers=2)


def randomised(model: DeformationField, seed: int = 1) -> DeformationField:
    """Non-identity weights: every parameter random, scaled like a trained layer."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for w, b in zip([*model.d_weights, *model.w_weights], [*model.d_biases, *model.w_biases]):
            w.copy_(torch.randn(w.shape, generator=g) * (1.5 / math.sqrt(w.shape[1])))
            b.copy_(torch.randn(b.shape, generator=g) * 0.1)
    return model


def inputs(model: DeformationField, N: int, M: int, device, dtype=torch.float32, seed: int = 2):
    g = torch.Generator().manual_seed(seed)
    pts = (torch.rand(N, M, 3, generator=g, dtype=dtype) * 2.4 - 1.2).to(device)
    alpha = torch.randn(N, model.id_dim, generator=g, dtype=dtype).to(device)
    beta = torch.randn(N, model.exp_dim, generator=g, dtype=dtype).to(device)
    return pts, alpha, beta


def run(model, backend, pts, alpha, beta, cots, wrt_inputs=True):
    """Outputs and gradients of sum(out * cot) w.r.t. points, alpha, beta, every parameter."""
    # detach() keeps the strides, so non-contiguous inputs reach the op as they are.
    pts = pts.detach().requires_grad_(wrt_inputs)
    alpha = alpha.detach().requires_grad_(wrt_inputs)
    beta = beta.detach().requires_grad_(wrt_inputs)
    with ops.use_backend(backend), ops.trace_backends() as tr:
        outs = model(pts, alpha, beta)
    assert tr.backends("deform_points") == {backend}
    loss = sum((o * c).sum() for o, c in zip(outs, cots) if c is not None)
    params = list(model.parameters())
    leaves = ([pts, alpha, beta] if wrt_inputs else []) + params
    grads = torch.autograd.grad(loss, leaves)
    return [o.detach() for o in outs], list(grads)


def grad_names(model, wrt_inputs=True):
    return (["points", "alpha", "beta"] if wrt_inputs else []) + [
        n for n, _ in model.named_parameters()
    ]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    "cfg,N,M",
    [
        (SMALL, 2, 333),
        (SMALL, 3, 1),
        (dict(), 1, 300),
        (dict(d_hidden=64, w_hidden=128, n_freqs=6), 2, 97),
        # Widths that are not multiples of 32 (the tiny preset's W-Net has 16): on CUDA too.
        (dict(SMALL, d_hidden=40, w_hidden=16, d_layers=2), 2, 50),
    ],
)
def test_kernel_matches_reference(device, cfg, N, M):
    require_kernels(device)
    model = randomised(DeformationField(**cfg)).to(device)
    pts, alpha, beta = inputs(model, N, M, device)
    g = torch.Generator().manual_seed(5)
    cots = [torch.randn(N, M, k, generator=g).to(device) for k in (3, 3, 1)]
    (xk, ok, wk), gk = run(model, "kernels", pts, alpha, beta, cots)
    (xr, orf, wr), gr = run(model, "torch", pts, alpha, beta, cots)
    assert ok.abs().max() > 1e-2, "weights should give a non-trivial offset"
    for name, a, b in (("x_c", xk, xr), ("offset", ok, orf), ("weight", wk, wr)):
        assert a.shape == b.shape
        assert rel_err(a, b) <= 1e-5, f"{name}: {rel_err(a, b):.3g}"
    assert_grads_close(gk, gr, tol=1e-4, names=grad_names(model))


@pytest.mark.parametrize("device", DEVICES)
def test_partial_outputs_and_no_input_grads(device):
    """Only x_c used (offset/weight get no gradient); inputs without requires_grad."""
    require_kernels(device)
    model = randomised(DeformationField(**SMALL)).to(device)
    pts, alpha, beta = inputs(model, 2, 200, device)
    cots = [torch.randn(2, 200, 3, device=device), None, None]
    _, gk = run(model, "kernels", pts, alpha, beta, cots, wrt_inputs=False)
    _, gr = run(model, "torch", pts, alpha, beta, cots, wrt_inputs=False)
    assert_grads_close(gk, gr, tol=1e-4, names=grad_names(model, False))


@pytest.mark.parametrize("device", DEVICES)
def test_no_grad_forward_and_recompute_backward(device):
    """The no-grad forward (no saved activations) equals the grad-mode one, and the
    backward gives the same gradients with and without the saved hidden activations."""
    require_kernels(device)
    model = randomised(DeformationField(**SMALL)).to(device)
    pts, alpha, beta = inputs(model, 2, 300, device)
    args = (
        pts,
        alpha,
        beta,
        list(model.d_weights),
        list(model.d_biases),
        list(model.w_weights),
        list(model.w_biases),
        model.n_freqs,
    )
    with torch.no_grad():
        plain = torch.ops.nofa.deform_points(*args, False)
        saved = torch.ops.nofa.deform_points(*args, True)
    assert plain[3].numel() == 0
    assert saved[3].shape == (2, 300, 2 * SMALL["d_hidden"])
    for a, b in zip(plain[:3], saved[:3]):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    with ops.use_backend("kernels"), torch.no_grad():
        for a, b in zip(model(pts, alpha, beta), plain[:3]):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
    g = [torch.randn_like(t) for t in plain[:3]]
    with torch.no_grad():
        rec = torch.ops.nofa.deform_points_backward(*g, *args, pts.new_empty(0))
        sav = torch.ops.nofa.deform_points_backward(*g, *args, saved[3])
    flat = lambda r: list(r[:3]) + [t for lst in r[3:] for t in lst]  # noqa: E731
    assert_grads_close(flat(rec), flat(sav), tol=1e-5)


def test_autograd_through_the_op_without_saved_hidden():
    """Autograd through the op called with save_hidden False (what CUDA always passes) gives
    the gradients of the save_hidden True call. The flag has no schema default because torch
    < 2.13 drops default-valued arguments before the autograd formula and then rejects its
    gradient list (docs/deformation.md); this runs that path on the CPU."""
    require_kernels("cpu")
    model = randomised(DeformationField(**SMALL))
    pts, alpha, beta = inputs(model, 2, 50, "cpu")
    grads = []
    for save in (False, True):
        leaves = [
            t.detach().clone().requires_grad_() for t in (pts, alpha, beta, *model.parameters())
        ]
        p, a, b, *params = leaves
        nd = len(model.d_weights)
        dw, db = params[:nd], params[nd : 2 * nd]
        ww, wb = (
            params[2 * nd : 2 * nd + len(model.w_weights)],
            params[2 * nd + len(model.w_weights) :],
        )
        out = torch.ops.nofa.deform_points(p, a, b, dw, db, ww, wb, model.n_freqs, save)
        assert (out[3].numel() > 0) == save
        (out[0].square().sum() + out[1].sum() + out[2].sum()).backward()
        grads.append([t.grad for t in leaves])
    assert all(g is not None for g in grads[0])
    assert_grads_close(grads[0], grads[1], tol=1e-5)


def test_gradcheck_float64():
    require_kernels("cpu")
    model = randomised(
        DeformationField(
            n_freqs=2, id_dim=3, exp_dim=2, d_hidden=5, d_layers=2, w_hidden=4, w_layers=2
        )
    ).double()
    pts, alpha, beta = inputs(model, 2, 3, "cpu", torch.float64)
    params = [p.detach().clone().requires_grad_() for p in model.parameters()]
    nd = len(model.d_weights)
    nw = len(model.w_weights)

    def f(x, a, b, *ps):
        dw, db = list(ps[:nd]), list(ps[nd : 2 * nd])
        ww, wb = list(ps[2 * nd : 2 * nd + nw]), list(ps[2 * nd + nw :])
        with ops.use_backend("kernels"):
            return ops.deform_points(x, a, b, dw, db, ww, wb, 2)

    order = [*model.d_weights, *model.d_biases, *model.w_weights, *model.w_biases]
    ids = {id(p): i for i, p in enumerate(model.parameters())}
    ps = [params[ids[id(p)]] for p in order]
    xs = [t.detach().clone().requires_grad_() for t in (pts, alpha, beta)]
    assert torch.autograd.gradcheck(f, (*xs, *ps), eps=1e-6, atol=1e-7, rtol=1e-5)


def test_opcheck():
    require_kernels("cpu")
    model = randomised(DeformationField(**SMALL))
    pts, alpha, beta = inputs(model, 2, 40, "cpu")
    ps = [
        p.detach().clone().requires_grad_()
        for p in (*model.d_weights, *model.d_biases, *model.w_weights, *model.w_biases)
    ]
    nd, nw = len(model.d_weights), len(model.w_weights)
    lists = [ps[:nd], ps[nd : 2 * nd], ps[2 * nd : 2 * nd + nw], ps[2 * nd + nw :]]
    for save in (False, True):
        args = (pts.requires_grad_(), alpha, beta, *lists, model.n_freqs, save)
        torch.library.opcheck(torch.ops.nofa.deform_points.default, args)
    with torch.no_grad():
        hidden = torch.ops.nofa.deform_points(pts, alpha, beta, *lists, model.n_freqs, True)[3]
    g = [torch.randn(2, 40, k) for k in (3, 3, 1)]
    bargs = (
        *g,
        pts.detach(),
        alpha,
        beta,
        *[[t.detach() for t in l] for l in lists],
        model.n_freqs,
        hidden,
    )
    torch.library.opcheck(torch.ops.nofa.deform_points_backward.default, bargs)


@pytest.mark.parametrize("backend", ["kernels", "torch"])
def test_identity_at_init(backend):
    if backend == "kernels":
        require_kernels("cpu")
    model = DeformationField()
    pts, alpha, beta = inputs(model, 2, 500, "cpu")
    with ops.use_backend(backend):
        x_c, offset, weight = model(pts, alpha, beta)
    assert torch.equal(x_c, pts)
    assert torch.equal(offset, torch.zeros_like(offset))
    assert weight.shape == (2, 500, 1)
    assert (weight > 0).all() and (weight < 1).all()
    assert weight.std() > 0, "W-Net should start with non-constant weights"


def jaw_target(pts: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """Canonical coordinates of a jaw-like motion: the lower half (smoothly masked) rotates
    about the x axis through a pivot, by an angle driven by expression coefficient 0."""
    angle = (0.6 * beta[:, 0])[:, None]  # [N, 1]
    mask = torch.sigmoid(-6.0 * pts[..., 1])  # ~1 below y = 0, ~0 above
    a = angle * mask
    y, z = pts[..., 1] - 0.2, pts[..., 2]
    ry = torch.cos(a) * y - torch.sin(a) * z + 0.2
    rz = torch.sin(a) * y + torch.cos(a) * z
    return torch.stack([pts[..., 0], ry, rz], -1)


@pytest.fixture
def one_thread():
    """Tiny per-step work: one thread avoids OpenMP/MKL wake-up costs (seconds on a busy
    2-core runner) without changing what is computed."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_training_fits_jaw_motion(one_thread):
    """With the kernels, Adam fits a smooth expression-driven deformation: the error on
    held-out points falls by at least 10x within a few hundred steps."""
    require_kernels("cpu")
    torch.manual_seed(0)
    model = DeformationField(
        n_freqs=2, id_dim=4, exp_dim=4, d_hidden=64, d_layers=3, w_hidden=32, w_layers=2
    )
    alpha = torch.randn(1, 4)

    def batch(n, m, gen=None):
        pts = torch.rand(n, m, 3, generator=gen) * 2 - 1
        beta = torch.randn(n, 4, generator=gen)
        return pts, alpha.expand(n, 4), beta

    val = batch(8, 256, torch.Generator().manual_seed(9))
    val_target = jaw_target(val[0], val[2])

    def val_error():
        with torch.no_grad(), ops.use_backend("kernels"):
            return ((model(*val)[0] - val_target) ** 2).mean().item()

    err0 = val_error()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    t0 = time.perf_counter()
    with ops.use_backend("kernels"), ops.trace_backends() as tr:
        for _ in range(250):
            pts, a, b = batch(8, 32)
            loss = ((model(pts, a, b)[0] - jaw_target(pts, b)) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    assert tr.backends("deform_points") == {"kernels"}
    err1 = val_error()
    assert err1 * 10 <= err0, (
        f"error fell only from {err0:.3g} to {err1:.3g} in {time.perf_counter() - t0:.1f}s"
    )


def test_bad_inputs():
    model = DeformationField(**SMALL)
    pts, alpha, beta = inputs(model, 2, 10, "cpu")
    with pytest.raises(ValueError, match="alpha"):
        model(pts, alpha[:, :-1], beta)
    with pytest.raises(ValueError, match="beta"):
        model(pts, alpha, torch.randn(2, 9))
    with pytest.raises(ValueError, match="batch size"):
        model(pts, alpha[:1], beta)
    with pytest.raises(TypeError, match="points must be float32 or float64"):
        model(pts.to(torch.int32), alpha, beta)
    with pytest.raises(TypeError, match="alpha must be float32 or float64"):
        model(pts, alpha.half(), beta)
    with pytest.raises(TypeError, match="same dtype"):
        model(pts.double(), alpha, beta)
    with pytest.raises(ValueError, match=r"points must have shape \[N, M, 3\]"):
        model(pts[..., :2], alpha, beta)
    args = [
        list(model.d_weights),
        list(model.d_biases),
        list(model.w_weights),
        list(model.w_biases),
    ]
    with pytest.raises(ValueError, match=r"d_weights\[0\] must have shape"):
        ops.deform_points(pts, alpha, torch.randn(2, 6), *args, SMALL["n_freqs"])
    with pytest.raises(ValueError, match=r"w_biases must hold one bias per layer"):
        ops.deform_points(pts, alpha, beta, *args[:3], args[3][:-1], SMALL["n_freqs"])
    with pytest.raises(ValueError, match="n_freqs"):
        ops.deform_points(pts, alpha, beta, *args, -1)


def test_kernel_checks_name_the_argument():
    """The C++ entry points validate too (for callers of torch.ops.nofa directly)."""
    require_kernels("cpu")
    model = DeformationField(**SMALL)
    pts, alpha, beta = inputs(model, 2, 10, "cpu")
    args = [
        list(model.d_weights),
        list(model.d_biases),
        list(model.w_weights),
        list(model.w_biases),
    ]
    with pytest.raises(RuntimeError, match=r"d_weights\[0\] must have shape"):
        torch.ops.nofa.deform_points(pts, alpha[:, :-1], beta, *args, SMALL["n_freqs"], False)
    with pytest.raises(RuntimeError, match="same batch size"):
        torch.ops.nofa.deform_points(pts, alpha[:1], beta, *args, SMALL["n_freqs"], False)
    with pytest.raises(RuntimeError, match="points must be float32 or float64"):
        torch.ops.nofa.deform_points(pts.int(), alpha, beta, *args, SMALL["n_freqs"], False)
    with pytest.raises(RuntimeError, match="hidden must be empty or have shape"):
        g = torch.zeros(2, 10, 3)
        torch.ops.nofa.deform_points_backward(
            g, g, g[..., :1], pts, alpha, beta, *args, SMALL["n_freqs"], torch.zeros(2, 10, 5)
        )


def test_cuda_width_support_rule():
    """Which sizes the CUDA kernel takes (checked without a GPU; the CUDA tests below
    observe the error and the fallback): any hidden width in [1, 256] (the tiny preset's 16
    included), at most 8 linear layers per MLP."""

    def reason(**cfg):
        m = DeformationField(**{**SMALL, **cfg})
        return dp_mod.cuda_unsupported_reason(list(m.d_weights), list(m.w_weights))

    assert reason() is None
    assert (
        dp_mod.cuda_unsupported_reason(
            list(DeformationField().d_weights), list(DeformationField().w_weights)
        )
        is None
    )
    for width in (1, 16, 40, 100, 256):
        assert reason(d_hidden=width, w_hidden=width) is None, width
    assert reason(d_layers=7) is None  # 8 linear layers
    r = reason(w_hidden=264)
    assert r is not None and "w_weights[0]" in r and "264" in r and "[1, 256]" in r
    r = reason(d_layers=8)  # 9 linear layers
    assert r is not None and "d_weights has 9 layers" in r


@pytest.mark.cuda
@pytest.mark.skipif(not HAS_CUDA, reason="no CUDA GPU visible: CUDA kernel not exercised")
def test_cuda_unsupported_width_errors_or_falls_back():
    require_kernels("cuda")
    model = randomised(DeformationField(**{**SMALL, "d_hidden": 264})).cuda()
    pts, alpha, beta = inputs(model, 1, 50, "cuda")
    with ops.use_backend("kernels"), pytest.raises(ValueError, match="supports hidden widths"):
        model(pts, alpha, beta)
    with (
        ops.use_backend("auto"),
        ops.trace_backends() as tr,
        warnings.catch_warnings(record=True) as w,
    ):
        warnings.simplefilter("always")
        out = model(pts, alpha, beta)
    assert tr.backends("deform_points") == {"torch"}
    assert any("supports hidden widths" in str(x.message) for x in w)
    with ops.use_backend("torch"):
        torch.testing.assert_close(out[0], model(pts, alpha, beta)[0])
    # The direct torch.ops.nofa.deform_points call with this width (the C++ check, no Python
    # wrapper in front) is in tests/test_cuda_errors.py, which runs it in a child process:
    # on the first GPU run it crashed the whole pytest run here.


@pytest.mark.parametrize("device", DEVICES)
def test_empty_and_noncontiguous(device):
    require_kernels(device)
    model = randomised(DeformationField(**SMALL)).to(device)
    pts, alpha, beta = inputs(model, 2, 0, device)
    with ops.use_backend("kernels"):
        outs = model(pts.requires_grad_(), alpha, beta)
    assert [tuple(o.shape) for o in outs] == [(2, 0, 3), (2, 0, 3), (2, 0, 1)]
    sum(o.sum() for o in outs).backward()
    assert pts.grad.shape == (2, 0, 3)
    assert all(torch.equal(p.grad, torch.zeros_like(p)) for p in model.parameters())
    # Non-contiguous points (every other point of a larger tensor) and alpha (a column slice).
    big, alpha2, beta = inputs(model, 2, 400, device)
    pts = big[:, ::2]
    alpha = torch.cat([alpha2, alpha2], 1)[:, ::2]
    assert not pts.is_contiguous() and not alpha.is_contiguous()
    cots = [torch.randn(2, 200, k, device=device) for k in (3, 3, 1)]
    (xk, _, _), gk = run(model, "kernels", pts, alpha, beta, cots)
    (xr, _, _), gr = run(model, "torch", pts, alpha, beta, cots)
    assert rel_err(xk, xr) <= 1e-5
    assert_grads_close(gk, gr, tol=1e-4, names=grad_names(model))
