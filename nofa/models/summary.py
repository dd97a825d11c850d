"""Parameter counts and key shapes of a NOFAAvatar preset (`nofa info --model PRESET`)."""

from __future__ import annotations

import torch

MODULES = ("encoder", "generator", "detail", "gamma", "eta", "deformation", "decoder", "superres")


def parameter_counts(model: torch.nn.Module) -> dict[str, int]:
    """{module name: trainable + frozen parameter count} for the avatar's parts, plus 'total'."""
    counts = {name: sum(p.numel() for p in getattr(model, name).parameters()) for name in MODULES}
    counts["total"] = sum(p.numel() for p in model.parameters())
    return counts


def print_summary(preset: str) -> None:
    from .avatar import NOFAAvatar

    with torch.device("meta"):  # no memory, no init cost: only shapes matter here
        model = NOFAAvatar.from_preset(preset)
    g = model.generator
    print(
        f"model preset {preset!r}: image {model.image_size}^2, tri-plane [3, {g.plane_channels}, "
        f"{g.plane_resolution}, {g.plane_resolution}], {g.num_ws} W codes of {g.w_dim}, F_c at "
        f"{g.head_resolution}^2 x {g.feature_channels}, neural rendering "
        f"{model.render_resolution}^2 -> SR "
        f"{model.superres.output_resolution}^2"
    )
    for name, n in parameter_counts(model).items():
        print(f"  {name:<12} {n:>12,d} parameters")
