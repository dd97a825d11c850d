"""The tri-plane generator G (EG3D backbone): mapping + StyleGAN2 synthesis to a
3*C x R x R image reshaped into a tri-plane [3, C, R, R] (paper: 96 x 256 x 256 ->
[3, 32, 256, 256] from 14 W+ codes).

The synthesis is split at `head_resolution` (default 64) so that the detail path can
replace the intermediate feature F_c by F_e (eq. 3) and run the rest of G again.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from .mapping import MappingNetwork
from .stylegan2 import SynthesisBlock, block_channels


class SynthesisNetwork(nn.Module):
    """Blocks b4, b8, ..., b{resolution} (skip architecture) -> image [N, img_channels, R, R]."""

    def __init__(
        self,
        w_dim: int,
        resolution: int,
        img_channels: int,
        channel_base: int = 32768,
        channel_max: int = 512,
        conv_clamp: float | None = None,
    ) -> None:
        super().__init__()
        if resolution < 4 or resolution & (resolution - 1):
            raise ValueError(f"resolution must be a power of two >= 4, got {resolution}")
        self.w_dim, self.resolution, self.img_channels = w_dim, resolution, img_channels
        self.block_resolutions = [2**i for i in range(2, int(math.log2(resolution)) + 1)]
        channels = block_channels(self.block_resolutions, channel_base, channel_max)
        self.channels = channels
        self.num_ws = 0
        self.w_offsets: list[int] = []
        for res in self.block_resolutions:
            in_ch = channels[res // 2] if res > 4 else 0
            is_last = res == resolution
            block = SynthesisBlock(
                in_ch, channels[res], w_dim, res, img_channels, is_last, conv_clamp=conv_clamp
            )
            self.w_offsets.append(self.num_ws)
            self.num_ws += block.num_conv + (block.num_torgb if is_last else 0)
            setattr(self, f"b{res}", block)

    def block(self, res: int) -> SynthesisBlock:
        return getattr(self, f"b{res}")

    def run(
        self,
        ws: torch.Tensor,
        x: torch.Tensor | None,
        img: torch.Tensor | None,
        start: int,
        stop: int,
        noise_mode: str = "const",
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the blocks with start < resolution <= stop from (x, img) at resolution `start`."""
        for res, off in zip(self.block_resolutions, self.w_offsets):
            if start < res <= stop:
                b = self.block(res)
                x, img = b(
                    x, img, ws[:, off : off + b.num_conv + b.num_torgb], noise_mode=noise_mode
                )
        return x, img

    def forward(self, ws: torch.Tensor, noise_mode: str = "const") -> torch.Tensor:
        return self.run(ws, None, None, 0, self.resolution, noise_mode)[1]


class TriplaneGenerator(nn.Module):
    """G: (z, c) -> ws [N, num_ws, w_dim] -> tri-plane [N, 3, plane_channels, R, R].

    `head(ws)` runs the blocks up to `head_resolution` and returns (F_c, img): F_c the
    feature [N, ch, h, h] at that resolution, img the toRGB skip sum so far. `tail(F, img,
    ws)` continues from any feature of that shape (F_c for V_c, F_e for V_e).
    """

    def __init__(
        self,
        z_dim: int = 512,
        c_dim: int = 25,
        w_dim: int = 512,
        plane_resolution: int = 256,
        plane_channels: int = 32,
        channel_base: int = 32768,
        channel_max: int = 512,
        mapping_layers: int = 2,
        head_resolution: int = 64,
        conv_clamp: float | None = None,
        c_scale: float = 1.0,
        c_gen_conditioning_zero: bool = False,
    ) -> None:
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.plane_resolution, self.plane_channels = plane_resolution, plane_channels
        self.c_scale, self.c_gen_conditioning_zero = c_scale, c_gen_conditioning_zero
        self.synthesis = SynthesisNetwork(
            w_dim, plane_resolution, 3 * plane_channels, channel_base, channel_max, conv_clamp
        )
        if head_resolution not in self.synthesis.block_resolutions[:-1]:
            raise ValueError(
                f"head_resolution must be one of {self.synthesis.block_resolutions[:-1]} "
                f"(a block resolution below the plane resolution), got {head_resolution}"
            )
        self.head_resolution = head_resolution
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim, c_dim, w_dim, self.num_ws, mapping_layers)

    @property
    def w_avg(self) -> torch.Tensor:
        """The average W code [w_dim] (the w-bar of eq. 1)."""
        return self.mapping.w_avg

    @property
    def feature_channels(self) -> int:
        """Channels of the head feature F_c."""
        return self.synthesis.channels[self.head_resolution]

    def map(
        self,
        z: torch.Tensor,
        c: torch.Tensor,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        update_emas: bool = False,
    ) -> torch.Tensor:
        """z [N, z_dim], camera label c [N, 25] -> ws [N, num_ws, w_dim]."""
        c = torch.zeros_like(c) if self.c_gen_conditioning_zero else c * self.c_scale
        return self.mapping(z, c, truncation_psi, truncation_cutoff, update_emas)

    def _check_ws(self, ws: torch.Tensor) -> None:
        if ws.dim() != 3 or ws.shape[1] != self.num_ws or ws.shape[2] != self.w_dim:
            raise ValueError(
                f"ws must have shape [N, {self.num_ws}, {self.w_dim}], got {list(ws.shape)}"
            )

    def head(
        self, ws: torch.Tensor, noise_mode: str = "const"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """ws [N, num_ws, w_dim] -> (F_c [N, feature_channels, h, h], img [N, 3C, h, h]), h =
        head_resolution."""
        self._check_ws(ws)
        return self.synthesis.run(ws, None, None, 0, self.head_resolution, noise_mode)

    def tail(
        self, feature: torch.Tensor, img: torch.Tensor, ws: torch.Tensor, noise_mode: str = "const"
    ) -> torch.Tensor:
        """Continue from a head feature [N, feature_channels, h, h] -> planes [N, 3, C, R, R]."""
        self._check_ws(ws)
        want = (self.feature_channels, self.head_resolution, self.head_resolution)
        if feature.dim() != 4 or tuple(feature.shape[1:]) != want:
            raise ValueError(
                f"feature must have shape [N, {want[0]}, {want[1]}, {want[2]}], got "
                f"{list(feature.shape)}"
            )
        _, out = self.synthesis.run(
            ws, feature, img, self.head_resolution, self.plane_resolution, noise_mode
        )
        return self.to_planes(out)

    def to_planes(self, img: torch.Tensor) -> torch.Tensor:
        """[N, 3C, R, R] -> [N, 3, C, R, R] (EG3D's reshape)."""
        return img.reshape(img.shape[0], 3, self.plane_channels, img.shape[-2], img.shape[-1])

    def synthesize(self, ws: torch.Tensor, noise_mode: str = "const") -> torch.Tensor:
        """ws [N, num_ws, w_dim] -> planes [N, 3, C, R, R]."""
        feature, img = self.head(ws, noise_mode)
        return self.tail(feature, img, ws, noise_mode)

    def forward(
        self,
        z: torch.Tensor,
        c: torch.Tensor,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        noise_mode: str = "const",
    ) -> torch.Tensor:
        return self.synthesize(self.map(z, c, truncation_psi, truncation_cutoff), noise_mode)
