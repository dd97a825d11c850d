"""StyleGAN2 mapping network with camera conditioning (EG3D): (z, c) -> W+ codes."""

from __future__ import annotations

import torch
import torch.nn as nn

from .stylegan2 import FullyConnectedLayer, normalize_2nd_moment


class MappingNetwork(nn.Module):
    """z [N, z_dim] and camera label c [N, c_dim] -> ws [N, num_ws, w_dim].

    c is embedded by a linear layer, both inputs are normalised to unit second moment,
    concatenated and sent through `num_layers` leaky-ReLU FC layers (lr multiplier 0.01).
    With `update_emas=True` (generator training) the running mean `w_avg` is tracked
    (beta 0.998); it is the average latent of eq. 1. Truncation pulls
    the first `truncation_cutoff` codes (all when None) towards it.
    """

    def __init__(
        self,
        z_dim: int = 512,
        c_dim: int = 25,
        w_dim: int = 512,
        num_ws: int = 14,
        num_layers: int = 2,
        lr_multiplier: float = 0.01,
        w_avg_beta: float = 0.998,
    ) -> None:
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.num_ws = z_dim, c_dim, w_dim, num_ws
        self.num_layers, self.w_avg_beta = num_layers, w_avg_beta
        embed_features = w_dim if c_dim > 0 else 0
        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        features = [z_dim + embed_features] + [w_dim] * num_layers
        for i in range(num_layers):
            setattr(
                self,
                f"fc{i}",
                FullyConnectedLayer(
                    features[i], features[i + 1], activation="lrelu", lr_multiplier=lr_multiplier
                ),
            )
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(
        self,
        z: torch.Tensor,
        c: torch.Tensor | None = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        update_emas: bool = False,
    ) -> torch.Tensor:
        if z.dim() != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must have shape [N, {self.z_dim}], got {list(z.shape)}")
        parts = [normalize_2nd_moment(z)] if self.z_dim > 0 else []
        if self.c_dim > 0:
            if c is None or c.dim() != 2 or c.shape[1] != self.c_dim:
                got = None if c is None else list(c.shape)
                raise ValueError(f"c (camera label) must have shape [N, {self.c_dim}], got {got}")
            parts.append(normalize_2nd_moment(self.embed(c.to(z.dtype))))
        x = torch.cat(parts, dim=1)
        for i in range(self.num_layers):
            x = getattr(self, f"fc{i}")(x)
        if update_emas:
            with torch.no_grad():
                self.w_avg.copy_(x.detach().mean(0).lerp(self.w_avg, self.w_avg_beta))
        ws = x.unsqueeze(1).repeat(1, self.num_ws, 1)
        if truncation_psi != 1:
            cutoff = self.num_ws if truncation_cutoff is None else truncation_cutoff
            ws = torch.cat([self.w_avg.lerp(ws[:, :cutoff], truncation_psi), ws[:, cutoff:]], dim=1)
        return ws
