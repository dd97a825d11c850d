"""`composite_rays`: the public op (EG3D MipRayMarcher2 compositing)."""
from __future__ import annotations

import torch

from . import _backend, _checks, reference


def composite_rays(
    colors: torch.Tensor, densities: torch.Tensor, depths: torch.Tensor, white_back: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Composite samples along rays (EG3D's MipRayMarcher2).

    Args:
        colors: [N, R, S, C] per-sample features.
        densities: [N, R, S, 1] raw densities (softplus(x - 1) is applied inside).
        depths: [N, R, S, 1] sample depths, sorted along S (S >= 2).
        white_back: add 1 - sum(weights) (a white background) before the final x*2-1.

    Returns:
        features [N, R, C], depth [N, R, 1], weights [N, R, S-1, 1].

    Differentiable w.r.t. colors, densities and depths, with gradients arriving on any of
    the three outputs (the weights feed importance sampling and may carry one). The depth
    is clamped to [depths.min(), depths.max()] (EG3D), so a ray whose depth sits on a
    bound passes its depth gradient to the elements holding that bound, as autograd
    through the reference does. An empty ray (all weights 0) gets the far bound as depth;
    its depth cotangent goes to that bound only, not through the 0 / 0 (where plain
    autograd would give NaN). Double backward is not supported.
    """
    _checks.tensor("colors", colors, dims=4, layout="[N, R, S, C]")
    _checks.tensor("densities", densities, dims=4, layout="[N, R, S, 1]")
    _checks.tensor("depths", depths, dims=4, layout="[N, R, S, 1]")
    _checks.dim_size("densities", densities, 3, 1, "[N, R, S, 1]")
    _checks.dim_size("depths", depths, 3, 1, "[N, R, S, 1]")
    for name, t in (("densities", densities), ("depths", depths)):
        if t.shape[:3] != colors.shape[:3]:
            raise ValueError(
                f"{name} must match colors in N, R, S: colors {list(colors.shape)}, {name} {list(t.shape)}"
            )
    if colors.shape[2] < 2:
        raise ValueError(f"colors/densities/depths need S >= 2 samples per ray (one interval), got S={colors.shape[2]}")
    _checks.same_device(colors=colors, densities=densities, depths=depths)
    _checks.same_dtype(colors=colors, densities=densities, depths=depths)
    if _backend.use_kernels("composite_rays", colors.device):
        _backend.record("composite_rays", "kernels")
        return torch.ops.nofa.composite_rays(colors, densities, depths, bool(white_back))
    _backend.record("composite_rays", "torch")
    return reference.composite_rays(colors, densities, depths, white_back)


def _register() -> None:
    @torch.library.register_fake("nofa::composite_rays")
    def _(colors, densities, depths, white_back):
        N, R, S, C = colors.shape
        return colors.new_empty(N, R, C), colors.new_empty(N, R, 1), colors.new_empty(N, R, S - 1, 1)

    @torch.library.register_fake("nofa::composite_rays_backward")
    def _(grad_features, grad_depth, grad_weights, colors, densities, depths, white_back,
          colors_grad, densities_grad, depths_grad):
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
            grad_features, grad_depth, grad_weights, colors, densities, depths, ctx.white_back, *need
        )
        return (gc if need[0] else None), (gd if need[1] else None), (gz if need[2] else None), None

    torch.library.register_autograd("nofa::composite_rays", backward, setup_context=setup_context)


if _backend._C is not None:
    _register()
