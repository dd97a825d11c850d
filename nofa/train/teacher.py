"""A synthetic-data teacher from a randomly initialised generator (CPU proofs, demos).

A freshly initialised tiny generator renders nearly flat colour fields: its tri-plane
features are small (std ~1) next to the decoder's biases, so density and colour hardly vary
in space. Scaling every toRGB layer of the synthesis network by `gain` (16 by default)
scales the tri-plane features by the same factor (std ~17), which gives renders with
spatial structure that changes with the latent and with the view (3D-consistent, since
they come from one tri-plane). w_avg, a running mean tracked during GAN training, is zero
in a fresh model; it is set to the mean W of `samples` latents so that truncation and the
`w_avg` baseline mean what they mean for a trained EG3D."""

from __future__ import annotations

import torch

from ..models import NOFAAvatar
from ..render import default_label

__all__ = ["make_random_teacher"]


@torch.no_grad()
def make_random_teacher(
    model: NOFAAvatar, gain: float = 16.0, samples: int = 4096, seed: int = 0
) -> NOFAAvatar:
    """Scale `model.generator`'s toRGB weights by `gain` and set w_avg (in place); returns model."""
    if not gain > 0:
        raise ValueError(f"gain must be > 0, got {gain}")
    g = model.generator
    for name, p in g.synthesis.named_parameters():
        if ".torgb." in f".{name}" and name.endswith("torgb.weight"):
            p.mul_(gain)
    gen = torch.Generator().manual_seed(int(seed))
    z = torch.randn(samples, g.z_dim, generator=gen).to(g.w_avg)
    c = default_label()[None].expand(samples, -1).to(g.w_avg)
    g.mapping.w_avg.copy_(g.mapping(z, c)[:, 0].mean(0))
    return model
