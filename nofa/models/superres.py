"""Super-resolution of the neural rendering (EG3D's hybrid design, paper 3.3 "image SR module").

The raw feature image (rgb = its first 3 channels) is resized to `input_resolution`
(128 in the paper preset; a 64 px rendering is bilinearly up-sampled first, which is the
64 -> 512 variant), then two StyleGAN2 synthesis blocks, both driven by the last W code,
each double the resolution: 128 -> 256 -> 512. The toRGB skips add to the up-sampled
raw rgb, so the output stays anchored to the rendering.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .stylegan2 import SynthesisBlock


class SuperResolution(nn.Module):
    """(rgb [N, 3, r, r], feature [N, C, r, r], ws [N, num_ws, w_dim]) -> image [N, 3, 4R, 4R], R =
    input_resolution.

    `block_channels` = (256, 128) is EG3D's "8XDC" module, (128, 64) its "8X" one.
    """

    def __init__(
        self,
        in_channels: int = 32,
        input_resolution: int = 128,
        w_dim: int = 512,
        block_channels: tuple[int, int] = (256, 128),
        antialias: bool = True,
        conv_clamp: float | None = None,
    ) -> None:
        super().__init__()
        self.in_channels, self.input_resolution, self.antialias = (
            in_channels,
            input_resolution,
            antialias,
        )
        self.output_resolution = 4 * input_resolution
        c0, c1 = block_channels
        self.block0 = SynthesisBlock(
            in_channels, c0, w_dim, 2 * input_resolution, 3, is_last=False, conv_clamp=conv_clamp
        )
        self.block1 = SynthesisBlock(
            c0, c1, w_dim, 4 * input_resolution, 3, is_last=True, conv_clamp=conv_clamp
        )

    def forward(
        self, rgb: torch.Tensor, feature: torch.Tensor, ws: torch.Tensor, noise_mode: str = "none"
    ) -> torch.Tensor:
        if feature.dim() != 4 or feature.shape[1] != self.in_channels:
            raise ValueError(
                f"feature must have shape [N, {self.in_channels}, H, W], got {list(feature.shape)}"
            )
        if rgb.dim() != 4 or rgb.shape[1] != 3:
            raise ValueError(f"rgb must have shape [N, 3, H, W], got {list(rgb.shape)}")
        w = ws[:, -1:, :].expand(-1, 3, -1)  # conv0, conv1, torgb all use the last code
        r = self.input_resolution
        if feature.shape[-1] != r or feature.shape[-2] != r:
            feature = F.interpolate(
                feature, size=(r, r), mode="bilinear", align_corners=False, antialias=self.antialias
            )
            rgb = F.interpolate(
                rgb, size=(r, r), mode="bilinear", align_corners=False, antialias=self.antialias
            )
        x, img = self.block0(feature, rgb, w, noise_mode=noise_mode)
        _, img = self.block1(x, img, w, noise_mode=noise_mode)
        return img
