"""`composite_rays`: the public op (EG3D MipRayMarcher2 compositing)."""

from __future__ import annotations

import torch

from . import _backend, _checks, reference

_LAYOUTS = (("colors", "[N, R, S, C]"), ("densities", "[N, R, S, 1]"), ("depths", "[N, R, S, 1]"))


def check_samples(colors, densities, depths, suffix: str = "") -> None:
    """Validate one sample set (shared with composite_rays_merged)."""
    names = [n + suffix for n, _ in _LAYOUTS]
    for name, t, (_, layout) in zip(names, (colors, densities, depths), _LAYOUTS):
        _checks.tensor(name, t, dims=4, layout=layout)
    for name, t in zip(names[1:], (densities, depths)):
        _checks.dim_size(name, t, 3, 1, "[N, R, S, 1]")
        if t.shape[:3] != colors.shape[:3]:
            raise ValueError(
                f"{name} must match {names[0]} in N, R, S: {names[0]} {list(colors.shape)}, "
                f"{name} {list(t.shape)}"
            )


def nan_rays(
    outputs: tuple[torch.Tensor, torch.Tensor, torch.Tensor], *depths: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The NaN-depth rule of both compositing ops: a ray with a NaN depth (in any of
    `depths` [N, R, S*, 1]) gets NaN features, depth and weights; other rays are untouched."""
    features, depth, weights = outputs
    bad = torch.isnan(depths[0]).any(-2)
    for z in depths[1:]:
        bad = bad | torch.isnan(z).any(-2)  # [N, R, 1]
    nan = float("nan")
    # The CPU kernels' far bound is NaN-poisoned when any depth is NaN, which turns an empty
    # ray's depth into +inf: put the far bound of the non-NaN depths there.
    far = torch.stack(
        [
            z.nan_to_num(-float("inf")).amax() if z.numel() else z.new_tensor(-float("inf"))
            for z in depths
        ]
    ).amax()
    depth = torch.where(torch.isinf(depth), far, depth)
    return (
        torch.where(bad, nan, features),
        torch.where(bad, nan, depth),
        torch.where(bad.unsqueeze(-2), nan, weights),
    )


def composite_rays(
    colors: torch.Tensor, densities: torch.Tensor, depths: torch.Tensor, white_back: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Composite samples along rays (EG3D's MipRayMarcher2).

    Args:
        colors: [N, R, S, C] per-sample features.
        densities: [N, R, S, 1] raw densities (softplus(x - 1) is applied inside).
        depths: [N, R, S, 1] sample depths, sorted ascending along S (S >= 2); unsorted
            depths raise ValueError (checked in eager mode; see docs/composite_rays.md).
        white_back: add 1 - sum(weights) (a white background) before the final x*2-1 (a bool).

    Returns:
        features [N, R, C], depth [N, R, 1], weights [N, R, S-1, 1].

    Differentiable w.r.t. colors, densities and depths, with gradients arriving on any of
    the three outputs (the weights feed importance sampling and may carry one). The depth
    is clamped to the min / max of the non-NaN depths (EG3D clamps to the tensor's min /
    max), so a ray whose depth sits on a bound passes its depth gradient to the elements
    holding that bound, as autograd through the reference does. An empty ray (all weights
    0) gets that far bound as depth; its depth cotangent goes to that bound only, not
    through the 0 / 0 (where plain autograd would give NaN). A ray with a NaN depth gets
    NaN features, depth and weights (its gradients are undefined); other rays are
    unaffected. Double backward through the kernel raises.
    """
    check_samples(colors, densities, depths)
    if colors.shape[2] < 2:
        raise ValueError(
            "colors/densities/depths need S >= 2 samples per ray (one interval), got "
            f"S={colors.shape[2]}"
        )
    _checks.same_device(colors=colors, densities=densities, depths=depths)
    _checks.same_dtype(colors=colors, densities=densities, depths=depths)
    white_back = _checks.flag("white_back", white_back)
    has_nan = _checks.sorted_depths("depths", depths)
    out = _backend.dispatch(
        "composite_rays",
        colors.device,
        lambda: torch.ops.nofa.composite_rays(colors, densities, depths, white_back),
        lambda: reference.composite_rays(colors, densities, depths, white_back),
    )
    return nan_rays(out, depths) if has_nan else out


def _register() -> None:
    @torch.library.register_fake("nofa::composite_rays")
    def _(colors, densities, depths, white_back):
        N, R, S, C = colors.shape
        # The outputs have the densities' dtype: float32 when the colours are float16 /
        # bfloat16 (CUDA autocast), the common dtype otherwise.
        return (
            densities.new_empty(N, R, C),
            densities.new_empty(N, R, 1),
            densities.new_empty(N, R, S - 1, 1),
        )

    @torch.library.register_fake("nofa::composite_rays_backward")
    def _(
        grad_features,
        grad_depth,
        grad_weights,
        colors,
        densities,
        depths,
        white_back,
        colors_grad,
        densities_grad,
        depths_grad,
    ):
        def like(t, need):
            return t.new_empty(t.shape) if need else t.new_empty(0)

        return like(colors, colors_grad), like(densities, densities_grad), like(depths, depths_grad)

    def setup_context(ctx, inputs, output):
        colors, densities, depths, white_back = inputs
        ctx.save_for_backward(colors, densities, depths)
        ctx.white_back = white_back
        # Outputs without a gradient arrive as None: the kernel skips their terms instead
        # of reading a tensor of zeros.
        ctx.set_materialize_grads(False)

    def backward(ctx, grad_features, grad_depth, grad_weights):
        colors, densities, depths = ctx.saved_tensors
        need = ctx.needs_input_grad[:3]
        gc, gd, gz = torch.ops.nofa.composite_rays_backward(
            grad_features,
            grad_depth,
            grad_weights,
            colors,
            densities,
            depths,
            ctx.white_back,
            *need,
        )
        return (gc if need[0] else None), (gd if need[1] else None), (gz if need[2] else None), None

    torch.library.register_autograd("nofa::composite_rays", backward, setup_context=setup_context)
    torch.library.register_autograd(
        "nofa::composite_rays_backward", _backend.no_double_backward("composite_rays")
    )


if _backend._C is not None:
    _register()
