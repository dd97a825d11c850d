"""StyleGAN2 building blocks in plain PyTorch (the semantics of Karras et al. 2020 as used by
EG3D, re-implemented here): equalised-learning-rate layers, FIR up-sampling,
modulated/demodulated convolution, per-pixel noise, and synthesis blocks with toRGB skips.

Parameter and buffer names follow the StyleGAN2/EG3D conventions (`affine`, `weight`,
`bias`, `noise_strength`, `noise_const`, `resample_filter`, `const`, `conv0`, `conv1`,
`torgb`) so that tensors read from an EG3D checkpoint map onto these modules one to one
(see :mod:`nofa.models.eg3d_import`).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

LRELU_SLOPE = 0.2
LRELU_GAIN = math.sqrt(2.0)  # keeps activations at unit variance after a leaky ReLU


# ---------------------------------------------------------------------------------------
# FIR filtering
# ---------------------------------------------------------------------------------------


def make_filter(taps: list[float] | tuple[float, ...] = (1, 3, 3, 1)) -> torch.Tensor:
    """The 2-D low-pass filter used for up-sampling: outer product of `taps`, summing to 1."""
    f = torch.as_tensor(taps, dtype=torch.float32)
    f = torch.outer(f, f)
    return f / f.sum()


def upfirdn2d(
    x: torch.Tensor,
    f: torch.Tensor,
    up: int = 1,
    padding: tuple[int, int, int, int] = (0, 0, 0, 0),
    gain: float = 1.0,
) -> torch.Tensor:
    """Zero-insert up-sample by `up`, pad (x0, x1, y0, y1; negative crops), convolve with `f`.

    x [N, C, H, W], f [fh, fw] -> [N, C, H', W']. `gain` scales the filter (4 for 2x
    up-sampling keeps the mean intensity).
    """
    N, C, H, W = x.shape
    if up > 1:
        x = x.reshape(N, C, H, 1, W, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(N, C, H * up, W * up)
    px0, px1, py0, py1 = padding
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    x = x[:, :, max(-py0, 0) : x.shape[2] - max(-py1, 0), max(-px0, 0) : x.shape[3] - max(-px1, 0)]
    # a true convolution: conv2d correlates, so flip the (symmetric in practice) filter
    k = (f * gain).flip([0, 1]).to(x.dtype)
    k = k[None, None].expand(C, 1, *f.shape)
    return F.conv2d(x, k, groups=C)


def upsample2d(x: torch.Tensor, f: torch.Tensor, up: int = 2) -> torch.Tensor:
    """Up-sample x [N, C, H, W] -> [N, C, up*H, up*W] with FIR filter f (a 4-tap filter by
    default)."""
    fh, fw = f.shape
    pad = ((fw + up - 1) // 2, (fw - up) // 2, (fh + up - 1) // 2, (fh - up) // 2)
    return upfirdn2d(x, f, up=up, padding=pad, gain=up * up)


def bias_act(
    x: torch.Tensor,
    b: torch.Tensor | None,
    act: str = "linear",
    gain: float = 1.0,
    clamp: float | None = None,
    dim: int = 1,
) -> torch.Tensor:
    """x + b (broadcast along `dim`), then the activation scaled by its gain, then clamp."""
    if b is not None:
        shape = [1] * x.dim()
        shape[dim] = -1
        x = x + b.reshape(shape)
    if act == "lrelu":
        x = F.leaky_relu(x, LRELU_SLOPE) * (LRELU_GAIN * gain)
    elif act == "linear":
        x = x * gain if gain != 1 else x
    else:
        raise ValueError(f"activation must be 'linear' or 'lrelu', got {act!r}")
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return x


# ---------------------------------------------------------------------------------------
# Equalised learning rate layers
# ---------------------------------------------------------------------------------------


class FullyConnectedLayer(nn.Module):
    """Linear layer with equalised learning rate: weights are stored at unit variance
    (divided by `lr_multiplier`) and scaled at run time by lr_multiplier / sqrt(in)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        activation: str = "linear",
        lr_multiplier: float = 1.0,
        bias_init: float = 0.0,
    ) -> None:
        super().__init__()
        self.in_features, self.out_features, self.activation = in_features, out_features, activation
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [..., in] -> [..., out]."""
        w = self.weight * self.weight_gain
        b = self.bias * self.bias_gain if self.bias is not None else None
        y = F.linear(x, w, b if self.activation == "linear" else None)
        if self.activation != "linear":
            y = bias_act(y, b, self.activation, dim=y.dim() - 1)
        return y

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, act={self.activation}"


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


# ---------------------------------------------------------------------------------------
# Modulated convolution
# ---------------------------------------------------------------------------------------


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    *,
    up: int = 1,
    padding: int = 0,
    resample_filter: torch.Tensor | None = None,
    demodulate: bool = True,
) -> torch.Tensor:
    """Per-sample modulated convolution, done as one grouped convolution.

    x [N, I, H, W], weight [O, I, k, k], styles [N, I] -> [N, O, H*up, W*up].
    With up=2 this is a stride-2 transposed convolution followed by the FIR filter
    (StyleGAN2's order), which keeps the up-sampled features alias-free.
    """
    N, I, H, W = x.shape
    O, _, kh, kw = weight.shape
    if N == 0:  # a grouped conv cannot have zero groups
        return x.new_zeros(0, O, H * up, W * up)
    w = weight.unsqueeze(0) * styles.reshape(N, 1, I, 1, 1)  # [N, O, I, k, k]
    if demodulate:
        w = w * (w.square().sum(dim=[2, 3, 4], keepdim=True) + 1e-8).rsqrt()
    x = x.reshape(1, N * I, H, W)
    if up == 1:
        y = F.conv2d(x, w.reshape(N * O, I, kh, kw), padding=padding, groups=N)
    else:
        assert resample_filter is not None, "up-sampling needs the FIR filter"
        fh, fw = resample_filter.shape
        # padding bookkeeping of "transposed conv then filter" that yields exactly up*H
        px0 = padding + (fw + up - 1) // 2 - (kw - 1)
        px1 = padding + (fw - up) // 2 - (kw - up)
        py0 = padding + (fh + up - 1) // 2 - (kh - 1)
        py1 = padding + (fh - up) // 2 - (kh - up)
        wt = w.transpose(1, 2).reshape(N * I, O, kh, kw)
        y = F.conv_transpose2d(x, wt, stride=up, groups=N)
        y = upfirdn2d(y, resample_filter, padding=(px0, px1, py0, py1), gain=up * up)
    return y.reshape(N, O, y.shape[2], y.shape[3])


class SynthesisLayer(nn.Module):
    """Modulated 3x3 conv (+ optional 2x up-sampling) + noise + bias + leaky ReLU."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        kernel_size: int = 3,
        up: int = 1,
        use_noise: bool = True,
        activation: str = "lrelu",
        conv_clamp: float | None = None,
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.w_dim = in_channels, out_channels, w_dim
        self.resolution, self.up, self.use_noise = resolution, up, use_noise
        self.activation, self.conv_clamp, self.padding = activation, conv_clamp, kernel_size // 2
        self.register_buffer("resample_filter", make_filter())
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        if use_noise:
            self.register_buffer("noise_const", torch.randn(resolution, resolution))
            self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def forward(
        self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "const", gain: float = 1.0
    ) -> torch.Tensor:
        """x [N, I, R/up, R/up], w [N, w_dim] -> [N, O, R, R]. noise_mode: random | const | none."""
        styles = self.affine(w)
        y = modulated_conv2d(
            x,
            self.weight,
            styles,
            up=self.up,
            padding=self.padding,
            resample_filter=self.resample_filter,
        )
        if self.use_noise and noise_mode != "none":
            if noise_mode == "random":
                noise = torch.randn(
                    y.shape[0], 1, self.resolution, self.resolution, device=y.device, dtype=y.dtype
                )
            elif noise_mode == "const":
                noise = self.noise_const.to(y.dtype)
            else:
                raise ValueError(
                    f"noise_mode must be 'random', 'const' or 'none', got {noise_mode!r}"
                )
            y = y + noise * self.noise_strength
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(y, self.bias.to(y.dtype), self.activation, gain=gain, clamp=clamp)


class ToRGBLayer(nn.Module):
    """Modulated (not demodulated) 1x1 conv to `out_channels` image channels."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        kernel_size: int = 1,
        conv_clamp: float | None = None,
    ) -> None:
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain
        y = modulated_conv2d(x, self.weight, styles, demodulate=False)
        return bias_act(y, self.bias.to(y.dtype), clamp=self.conv_clamp)


class SynthesisBlock(nn.Module):
    """One resolution of the synthesis network ('skip' architecture).

    The first block (in_channels == 0) starts from a learned constant and has one conv;
    the others up-sample with conv0 and refine with conv1. Each block adds its toRGB output
    to the FIR-up-sampled image of the previous block.
    Uses `num_conv + num_torgb` W codes; advances the W index by `num_conv`.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        img_channels: int,
        is_last: bool,
        conv_clamp: float | None = None,
        use_noise: bool = True,
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.resolution, self.img_channels, self.is_last = resolution, img_channels, is_last
        self.register_buffer("resample_filter", make_filter())
        self.num_conv = 0
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn(out_channels, resolution, resolution))
        else:
            self.conv0 = SynthesisLayer(
                in_channels,
                out_channels,
                w_dim,
                resolution,
                up=2,
                conv_clamp=conv_clamp,
                use_noise=use_noise,
            )
            self.num_conv += 1
        self.conv1 = SynthesisLayer(
            out_channels,
            out_channels,
            w_dim,
            resolution,
            conv_clamp=conv_clamp,
            use_noise=use_noise,
        )
        self.num_conv += 1
        self.torgb = ToRGBLayer(out_channels, img_channels, w_dim, conv_clamp=conv_clamp)
        self.num_torgb = 1

    def forward(
        self,
        x: torch.Tensor | None,
        img: torch.Tensor | None,
        ws: torch.Tensor,
        noise_mode: str = "const",
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x [N, in, R/2, R/2] (None for the first block), img [N, img_ch, R/2, R/2] or None,
        ws [N, num_conv + num_torgb, w_dim] -> (x [N, out, R, R], img [N, img_ch, R, R])."""
        w_iter = iter(ws.unbind(1))
        if self.in_channels == 0:
            x = self.const.unsqueeze(0).expand(ws.shape[0], -1, -1, -1).to(ws.dtype)
        else:
            x = self.conv0(x, next(w_iter), noise_mode=noise_mode)
        x = self.conv1(x, next(w_iter), noise_mode=noise_mode)
        if img is not None:
            img = upsample2d(img, self.resample_filter)
        y = self.torgb(x, next(w_iter))
        img = y if img is None else img + y
        return x, img


def block_channels(resolutions: list[int], channel_base: int, channel_max: int) -> dict[int, int]:
    """StyleGAN2's width schedule: min(channel_base // res, channel_max) channels at `res`."""
    return {r: min(channel_base // r, channel_max) for r in resolutions}
