"""`deform_points`: the fused deformation field (docs/deformation.md), its autograd and
fake registrations.

Parameter layout (nn.Linear convention, weight [out, in]; P = 3 + 6 * n_freqs):
    d_weights[0] [Hd0, P + A + B]  columns [PE(x) | alpha | beta]
    d_weights[i] [Hd_i, Hd_{i-1}]  hidden layers, ReLU after every layer but the last
    d_weights[-1] [3, Hd_last]     -> offset
    w_weights[0] [Hw0, P + A]      columns [PE(x) | alpha]
    w_weights[-1] [1, Hw_last]     -> weight = sigmoid(.)
    d_biases / w_biases            one [out] vector per layer
"""

from __future__ import annotations

import torch

from . import _backend, _checks, reference

# Hidden widths the CUDA kernel takes: a tile of points keeps two layers' activations in
# shared memory, sized for the widest layer, and the block's threads stride over a layer's
# outputs, so any width up to the shared-memory plan's limit works
# (tests/cpp/test_deform_emulated.cpp runs the kernels at widths 1 .. 256).
CUDA_MAX_WIDTH = 256
CUDA_WIDTHS = range(1, CUDA_MAX_WIDTH + 1)
CUDA_MAX_LAYERS = 8  # linear layers per MLP
MAX_FREQS = 16


def _check_mlp(name: str, weights, biases, in_dim: int, out_dim: int, points: torch.Tensor) -> None:
    wn, bn = f"{name}_weights", f"{name}_biases"
    if not isinstance(weights, (list, tuple)) or not isinstance(biases, (list, tuple)):
        raise TypeError(f"{wn} and {bn} must be lists of tensors")
    if len(weights) < 2:
        raise ValueError(f"{wn} must hold at least 2 layers (one hidden), got {len(weights)}")
    if len(biases) != len(weights):
        raise ValueError(f"{bn} must hold one bias per layer ({len(weights)}), got {len(biases)}")
    prev = in_dim
    for i, (w, b) in enumerate(zip(weights, biases)):
        for nm, t in ((f"{wn}[{i}]", w), (f"{bn}[{i}]", b)):
            if not isinstance(t, torch.Tensor):
                raise TypeError(f"{nm} must be a torch.Tensor, got {type(t).__name__}")
        out = out_dim if i + 1 == len(weights) else w.shape[0]
        if w.dim() != 2 or w.shape[0] != out or w.shape[1] != prev or out == 0:
            raise ValueError(f"{wn}[{i}] must have shape [{out}, {prev}], got {list(w.shape)}")
        if b.shape != (out,):
            raise ValueError(f"{bn}[{i}] must have shape [{out}], got {list(b.shape)}")
        _checks.same_dtype(points=points, **{f"{wn}[{i}]": w, f"{bn}[{i}]": b})
        _checks.same_device(points=points, **{f"{wn}[{i}]": w, f"{bn}[{i}]": b})
        prev = out


def check_inputs(points, alpha, beta, d_weights, d_biases, w_weights, w_biases, n_freqs) -> None:
    """Validate deform_points' arguments (shared by both backends); raises with the name."""
    _checks.tensor("points", points, dims=3, layout="[N, M, 3]")
    _checks.tensor("alpha", alpha, dims=2, layout="[N, A]")
    _checks.tensor("beta", beta, dims=2, layout="[N, B]")
    _checks.dim_size("points", points, 2, 3, "[N, M, 3]")
    _checks.same_batch(points=points, alpha=alpha, beta=beta)
    _checks.same_device(points=points, alpha=alpha, beta=beta)
    _checks.same_dtype(points=points, alpha=alpha, beta=beta)
    if not isinstance(n_freqs, int) or not 0 <= n_freqs <= MAX_FREQS:
        raise ValueError(f"n_freqs must be an int in [0, {MAX_FREQS}], got {n_freqs!r}")
    P = 3 + 6 * n_freqs
    _check_mlp("d", d_weights, d_biases, P + alpha.shape[1] + beta.shape[1], 3, points)
    _check_mlp("w", w_weights, w_biases, P + alpha.shape[1], 1, points)


def cuda_unsupported_reason(d_weights, w_weights) -> str | None:
    """Why the CUDA kernel cannot run these widths (None when it can)."""
    for name, ws in (("d", d_weights), ("w", w_weights)):
        if len(ws) > CUDA_MAX_LAYERS:
            return (
                f"{name}_weights has {len(ws)} layers; the CUDA deform_points kernel supports at "
                f"most {CUDA_MAX_LAYERS} per MLP"
            )
        for i, w in enumerate(ws[:-1]):
            if w.shape[0] not in CUDA_WIDTHS:
                return (
                    f"{name}_weights[{i}] has {w.shape[0]} outputs; the CUDA deform_points kernel "
                    f"supports hidden widths in [1, {CUDA_MAX_WIDTH}]"
                )
    return None


def deform_points(
    points: torch.Tensor,
    alpha: torch.Tensor,
    beta: torch.Tensor,
    d_weights: list[torch.Tensor],
    d_biases: list[torch.Tensor],
    w_weights: list[torch.Tensor],
    w_biases: list[torch.Tensor],
    n_freqs: int = 6,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Map points of the deformed space to the canonical space (NOFA++ section 3.3).

    Args:
        points: [N, M, 3] sample points in the target-expression space.
        alpha: [N, A] identity coefficients (A = 80 for the 3DMM used by NOFA++).
        beta: [N, B] expression coefficients (B = 64).
        d_weights, d_biases: the D-Net layers (see the module docstring for the layout).
        w_weights, w_biases: the W-Net layers.
        n_freqs: positional-encoding octaves L (PE has 3 + 6 L values).

    Returns:
        x_c [N, M, 3] = points + weight * offset, offset [N, M, 3], weight [N, M, 1].

    A point with a non-finite coordinate (NaN, +-inf) gets NaN x_c, offset and weight;
    other points are unaffected (gradients into the weights then are NaN, as with any NaN
    in a PyTorch model). Differentiable w.r.t. points, alpha, beta and every weight and
    bias (first derivatives only: double backward through the kernel raises). On CUDA the
    kernel supports hidden widths up to CUDA_MAX_WIDTH and up to CUDA_MAX_LAYERS layers per
    MLP; with backend "auto" other sizes fall back to the reference with a warning, with
    backend "kernels" they raise ValueError.
    """
    check_inputs(points, alpha, beta, d_weights, d_biases, w_weights, w_biases, n_freqs)
    args = (
        points,
        alpha,
        beta,
        list(d_weights),
        list(d_biases),
        list(w_weights),
        list(w_biases),
        n_freqs,
    )

    def kernel():
        # With autograd recording, the kernel keeps the D-Net's hidden activations (all
        # but the first layer) for the backward; without, nothing per point beyond a tile.
        # The CUDA backward recomputes them chunk by chunk, so nothing is saved there.
        tensors = (points, alpha, beta, *d_weights, *d_biases, *w_weights, *w_biases)
        # The CUDA backward recomputes them, so only the CPU kernel saves them.
        save = (
            points.device.type == "cpu"
            and torch.is_grad_enabled()
            and any(t.requires_grad for t in tensors)
        )
        return torch.ops.nofa.deform_points(*args, save)[:3]

    unsupported = (
        cuda_unsupported_reason(d_weights, w_weights) if points.device.type == "cuda" else None
    )
    x_c, offset, weight = _backend.dispatch(
        "deform_points", points.device, kernel, lambda: reference.deform_points(*args), unsupported
    )
    # One rule for non-finite points on every backend (the kernels' ReLU would otherwise
    # turn a NaN into a plausible-looking offset).
    bad = ~torch.isfinite(points).all(-1, keepdim=True)
    nan = float("nan")
    return torch.where(bad, nan, x_c), torch.where(bad, nan, offset), torch.where(bad, nan, weight)


def _register() -> None:
    @torch.library.register_fake("nofa::deform_points")
    def _(
        points, alpha, beta, d_weights, d_biases, w_weights, w_biases, n_freqs, save_hidden=False
    ):
        N, M = points.shape[0], points.shape[1]
        S = sum(w.shape[0] for w in d_weights[1:-1])
        hidden = points.new_empty(N, M, S) if save_hidden else points.new_empty(0, M, 0)
        return (
            points.new_empty(N, M, 3),
            points.new_empty(N, M, 3),
            points.new_empty(N, M, 1),
            hidden,
        )

    @torch.library.register_fake("nofa::deform_points_backward")
    def _(
        gxc,
        goff,
        gw,
        points,
        alpha,
        beta,
        d_weights,
        d_biases,
        w_weights,
        w_biases,
        n_freqs,
        hidden,
    ):
        like = lambda ts: [t.new_empty(t.shape) for t in ts]  # noqa: E731
        return (
            points.new_empty(points.shape),
            alpha.new_empty(alpha.shape),
            beta.new_empty(beta.shape),
            like(d_weights),
            like(d_biases),
            like(w_weights),
            like(w_biases),
        )

    def setup_context(ctx, inputs, output):
        points, alpha, beta, d_weights, d_biases, w_weights, w_biases, n_freqs = inputs[:8]
        hidden = output[3]
        ctx.mark_non_differentiable(hidden)
        # No zero-filled gradient for `hidden` (it is as large as the activations).
        ctx.set_materialize_grads(False)
        ctx.n_d, ctx.n_w = len(d_weights), len(w_weights)
        ctx.n_freqs = n_freqs
        # Besides the inputs only `hidden` (empty unless the forward saved it): the backward
        # recomputes the rest tile by tile.
        ctx.save_for_backward(
            hidden, points, alpha, beta, *d_weights, *d_biases, *w_weights, *w_biases
        )

    def backward(ctx, g_xc, g_off, g_w, _g_hidden):
        hidden, *saved = ctx.saved_tensors
        points, alpha, beta = saved[:3]
        nd, nw = ctx.n_d, ctx.n_w
        dw, db = list(saved[3 : 3 + nd]), list(saved[3 + nd : 3 + 2 * nd])
        ww, wb = list(saved[3 + 2 * nd : 3 + 2 * nd + nw]), list(saved[3 + 2 * nd + nw :])
        N, M = points.shape[0], points.shape[1]
        g_xc = g_xc if g_xc is not None else points.new_zeros(N, M, 3)
        g_off = g_off if g_off is not None else points.new_zeros(N, M, 3)
        g_w = g_w if g_w is not None else points.new_zeros(N, M, 1)
        gx, ga, gb, gdw, gdb, gww, gwb = torch.ops.nofa.deform_points_backward(
            g_xc, g_off, g_w, points, alpha, beta, dw, db, ww, wb, ctx.n_freqs, hidden
        )
        need = ctx.needs_input_grad
        return (
            gx if need[0] else None,
            ga if need[1] else None,
            gb if need[2] else None,
            gdw,
            gdb,
            gww,
            gwb,
            None,
            None,
        )

    torch.library.register_autograd("nofa::deform_points", backward, setup_context=setup_context)
    torch.library.register_autograd(
        "nofa::deform_points_backward", _backend.no_double_backward("deform_points")
    )


if _backend._C is not None:
    _register()
