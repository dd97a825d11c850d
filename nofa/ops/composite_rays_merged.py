"""`composite_rays_merged`: compositing of two depth-sorted sample sets per ray (coarse +
importance samples), merged on the fly instead of concatenated and sorted."""

from __future__ import annotations

import torch

from . import _backend, _checks, reference
from .composite_rays import check_samples, composite_rays, nan_rays

_OP = "composite_rays_merged"


def composite_rays_merged(
    colors_a: torch.Tensor,
    densities_a: torch.Tensor,
    depths_a: torch.Tensor,
    colors_b: torch.Tensor,
    densities_b: torch.Tensor,
    depths_b: torch.Tensor,
    white_back: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`composite_rays` of two sample sets per ray, merged by depth on the fly.

    Exactly `composite_rays(cat + stable sort by depth of the two sets)`: ties put set a
    first and keep each set's own order. Where this op has a kernel (CPU and CUDA), nothing of
    size [N, R, S_a + S_b, C] is built; elsewhere (a build without the kernel) it concatenates,
    sorts and
    calls :func:`composite_rays` itself (recorded as backend "torch" for this op; the
    compositing then runs on composite_rays' own backend), so callers never need to ask
    which way to composite.

    Args:
        colors_a, colors_b: [N, R, S_a, C], [N, R, S_b, C] per-sample features.
        densities_a, densities_b: [N, R, S_a, 1], [N, R, S_b, 1] raw densities.
        depths_a, depths_b: [N, R, S_a, 1], [N, R, S_b, 1] depths, each set sorted ascending
            along S in every ray (ValueError otherwise, checked in eager mode).
        white_back: add 1 - sum(weights) before the final x*2-1 (a bool).

    Returns:
        features [N, R, C], depth [N, R, 1], weights [N, R, S_a + S_b - 1, 1] (merged order).

    S_a or S_b may be 0 (then it is composite_rays of the other set); S_a + S_b >= 2. The
    depth is clamped to the min / max of the non-NaN depths of both sets; a ray with a NaN
    depth in either set gets NaN features, depth and weights (as in composite_rays).
    Differentiable w.r.t. all six inputs, with cotangents on any of the three outputs.
    Double backward through the kernel raises. Kernels on the CPU and on CUDA (the same
    per-ray merge and compositing math).
    """
    check_samples(colors_a, densities_a, depths_a, "_a")
    check_samples(colors_b, densities_b, depths_b, "_b")
    for dim, what in ((0, "N"), (1, "R"), (3, "C")):
        if colors_a.shape[dim] != colors_b.shape[dim]:
            raise ValueError(
                f"colors_a and colors_b must agree in {what} (N, R, C): colors_a "
                f"{list(colors_a.shape)}, "
                f"colors_b {list(colors_b.shape)}"
            )
    if colors_a.shape[2] + colors_b.shape[2] < 2:
        raise ValueError(
            f"colors_a/colors_b need S_a + S_b >= 2 samples per ray (one interval), got "
            f"S_a={colors_a.shape[2]}, S_b={colors_b.shape[2]}"
        )
    tensors = dict(
        colors_a=colors_a,
        densities_a=densities_a,
        depths_a=depths_a,
        colors_b=colors_b,
        densities_b=densities_b,
        depths_b=depths_b,
    )
    _checks.same_device(**tensors)
    _checks.same_dtype(**tensors)
    white_back = _checks.flag("white_back", white_back)
    has_nan = _checks.sorted_depths("depths_a", depths_a)
    has_nan = _checks.sorted_depths("depths_b", depths_b) or has_nan
    args = (colors_a, densities_a, depths_a, colors_b, densities_b, depths_b)
    if _backend.lacks_kernel(_OP, colors_a.device.type):
        # No merging kernel here: EG3D's concatenate + sort, then composite_rays on its own
        # backend (e.g. the CUDA compositing kernel). A choice of method, not a fallback.
        _backend.record(_OP, "torch")
        return composite_rays(*reference.merge_sample_sets(*args), white_back)
    out = _backend.dispatch(
        _OP,
        colors_a.device,
        lambda: torch.ops.nofa.composite_rays_merged(*args, white_back),
        lambda: reference.composite_rays_merged(*args, white_back),
    )
    return nan_rays(out, depths_a, depths_b) if has_nan else out


def _register() -> None:
    @torch.library.register_fake("nofa::composite_rays_merged")
    def _(colors_a, densities_a, depths_a, colors_b, densities_b, depths_b, white_back):
        N, R, Sa, C = colors_a.shape
        K = Sa + colors_b.shape[2] - 1
        # The densities' dtype, as composite_rays (float32 with half colours on CUDA).
        like = densities_a
        return like.new_empty(N, R, C), like.new_empty(N, R, 1), like.new_empty(N, R, K, 1)

    @torch.library.register_fake("nofa::composite_rays_merged_backward")
    def _(
        grad_features,
        grad_depth,
        grad_weights,
        colors_a,
        densities_a,
        depths_a,
        colors_b,
        densities_b,
        depths_b,
        white_back,
        colors_grad,
        densities_grad,
        depths_grad,
    ):
        def like(t, need):
            return t.new_empty(t.shape) if need else t.new_empty(0)

        return (
            like(colors_a, colors_grad),
            like(densities_a, densities_grad),
            like(depths_a, depths_grad),
            like(colors_b, colors_grad),
            like(densities_b, densities_grad),
            like(depths_b, depths_grad),
        )

    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs[:6])
        ctx.white_back = inputs[6]
        # Outputs without a gradient arrive as None: the kernel skips their terms.
        ctx.set_materialize_grads(False)

    def backward(ctx, grad_features, grad_depth, grad_weights):
        saved = ctx.saved_tensors
        need = ctx.needs_input_grad[:6]
        # One flag per kind covers both sets (a set that needs none gets its grad dropped).
        flags = (need[0] or need[3], need[1] or need[4], need[2] or need[5])
        grads = torch.ops.nofa.composite_rays_merged_backward(
            grad_features, grad_depth, grad_weights, *saved, ctx.white_back, *flags
        )
        return (*(g if n else None for g, n in zip(grads, need)), None)

    torch.library.register_autograd(
        "nofa::composite_rays_merged", backward, setup_context=setup_context
    )
    torch.library.register_autograd(
        "nofa::composite_rays_merged_backward", _backend.no_double_backward(_OP)
    )


if _backend._C is not None:
    _register()
