"""EG3D's OSG decoder: tri-plane features -> raw density + colour features."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["OSGDecoder"]


class OSGDecoder(nn.Module):
    """FC(n_features -> hidden), softplus, FC(hidden -> 1 + out_features).

    Output channel 0 is the raw density (sigma before the compositor's softplus(x - 1));
    the rest become features = sigmoid(x) * 1.002 - 0.001 (EG3D's widened sigmoid, so 0 and
    1 are reachable). The first three feature channels are the raw RGB image.

    Plain `nn.Linear` parameters: to load EG3D's equalised-lr FullyConnectedLayer weights use
    :meth:`load_eg3d_tensors`, which folds in its weight gain lr_multiplier / sqrt(in).
    """

    def __init__(self, n_features: int = 32, hidden: int = 64, out_features: int = 32) -> None:
        super().__init__()
        self.n_features, self.hidden, self.out_features = n_features, hidden, out_features
        self.fc0 = nn.Linear(n_features, hidden)
        self.fc1 = nn.Linear(hidden, 1 + out_features)

    def config(self) -> dict:
        return {
            "n_features": self.n_features,
            "hidden": self.hidden,
            "out_features": self.out_features,
        }

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """features [..., n_features] -> (raw density [..., 1], colour features [...,
        out_features])."""
        x = self.fc1(F.softplus(self.fc0(features)))
        return x[..., :1], torch.sigmoid(x[..., 1:]) * (1 + 2 * 0.001) - 0.001

    def density(self, features: torch.Tensor) -> torch.Tensor:
        """Raw density only [..., 1] (skips the colour rows: what mesh extraction needs)."""
        h = F.softplus(self.fc0(features))
        return F.linear(h, self.fc1.weight[:1], self.fc1.bias[:1])

    @torch.no_grad()
    def load_eg3d_tensors(
        self, tensors: dict[str, torch.Tensor], lr_multiplier: float = 1.0
    ) -> None:
        """Load EG3D `decoder.net.{0,2}.{weight,bias}` tensors (keys with or without that
        prefix)."""

        def get(i: int, kind: str) -> torch.Tensor:
            for key in (f"decoder.net.{i}.{kind}", f"net.{i}.{kind}"):
                if key in tensors:
                    return tensors[key]
            raise KeyError(
                f"EG3D decoder tensor net.{i}.{kind} not found (have {sorted(tensors)[:8]}...)"
            )

        for i, fc in ((0, self.fc0), (2, self.fc1)):
            w, b = get(i, "weight"), get(i, "bias")
            if w.shape != fc.weight.shape:
                raise ValueError(
                    f"EG3D net.{i}.weight has shape {list(w.shape)}, expected "
                    f"{list(fc.weight.shape)}"
                )
            fc.weight.copy_(w * (lr_multiplier / math.sqrt(w.shape[1])))
            fc.bias.copy_(b * lr_multiplier)
