"""Detail network C and fusion networks gamma, eta (paper 3.2).

    F_res = C(I_s - I_hat_s)                                            (eq. 2)
    F_e   = gamma(F_res) * F_c + eta(F_res)                             (eq. 3)

C is a small strided CNN taking the residual image down to the generator's head
resolution; gamma and eta are two-layer CNNs. gamma starts at 1 and eta at 0 (plus a
small random part), so that a freshly initialised detail path starts close to the coarse
path without blocking gradients.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .encoder import check_image


class DetailNetwork(nn.Module):
    """C: residual image [N, 3, S, S] -> F_res [N, out_channels, h, h] (h = feature_resolution)."""

    def __init__(
        self,
        image_size: int = 512,
        feature_resolution: int = 64,
        base_channels: int = 32,
        max_channels: int = 128,
        out_channels: int = 128,
    ) -> None:
        super().__init__()
        steps = math.log2(image_size / feature_resolution)
        if steps < 0 or steps != int(steps):
            raise ValueError(
                f"image_size / feature_resolution must be a power of two >= 1, "
                f"got {image_size} / {feature_resolution}"
            )
        self.image_size, self.feature_resolution, self.out_channels = (
            image_size,
            feature_resolution,
            out_channels,
        )
        layers: list[nn.Module] = [nn.Conv2d(3, base_channels, 3, padding=1), nn.LeakyReLU(0.2)]
        ch = base_channels
        for _ in range(int(steps)):
            nxt = min(2 * ch, max_channels)
            layers += [nn.Conv2d(ch, nxt, 3, stride=2, padding=1), nn.LeakyReLU(0.2)]
            ch = nxt
        layers += [nn.Conv2d(ch, out_channels, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, residual: torch.Tensor) -> torch.Tensor:
        check_image("residual", residual, self.image_size)
        return self.net(residual)


class FusionNetwork(nn.Module):
    """gamma or eta: F_res [N, in_channels, h, h] -> [N, out_channels, h, h], starting near
    `init_value`."""

    def __init__(
        self,
        in_channels: int = 128,
        out_channels: int = 512,
        hidden: int = 128,
        init_value: float = 0.0,
        init_scale: float = 0.01,
    ) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(in_channels, hidden, 3, padding=1)
        self.conv1 = nn.Conv2d(hidden, out_channels, 3, padding=1)
        with torch.no_grad():
            self.conv1.weight.mul_(init_scale)
            self.conv1.bias.fill_(init_value)

    def forward(self, f_res: torch.Tensor) -> torch.Tensor:
        return self.conv1(F.leaky_relu(self.conv0(f_res), 0.2))


def fuse(f_c: torch.Tensor, f_res: torch.Tensor, gamma: nn.Module, eta: nn.Module) -> torch.Tensor:
    """F_e = gamma(F_res) * F_c + eta(F_res) (eq. 3); all [N, C, h, h]."""
    return gamma(f_res) * f_c + eta(f_res)
