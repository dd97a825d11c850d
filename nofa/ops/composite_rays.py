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
