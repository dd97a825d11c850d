"""Pure-PyTorch twins of every nofa kernel: the oracle the tests compare against and the
fallback when no kernel is compiled. Written for clarity, with plain autograd."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# ---------------------------------------------------------------------------------------
# sample_triplane (docs/sample_triplane.md)
# ---------------------------------------------------------------------------------------


def sample_triplane(
    planes: torch.Tensor, points: torch.Tensor, box_warp: float = 1.0, reduce: str = "mean"
) -> torch.Tensor:
    """EG3D tri-plane lookup.

    planes [N, 3, C, H, W], points [N, M, 3] -> [N, M, C] ("mean") or [N, M, 3C] ("concat").
    Plane 0 samples (x, y), plane 1 (x, z), plane 2 (z, x); bilinear, zero padding,
    align_corners=False, coordinates scaled by 2 / box_warp.
    """
    N, _, C, H, W = planes.shape
    M = points.shape[1]
    if M == 0:
        return planes.new_zeros(N, 0, C if reduce == "mean" else 3 * C)
    x, y, z = (points * (2.0 / box_warp)).unbind(-1)
    uv = torch.stack(
        [torch.stack(pair, -1) for pair in ((x, y), (x, z), (z, x))], 1
    )  # [N, 3, M, 2]
    # A non-finite coordinate counts as outside the plane (the kernels' rule): move that
    # lookup well past the zero padding, where it reads 0 and gets no gradient.
    uv = torch.where(torch.isfinite(uv).all(-1, keepdim=True), uv, -4.0)
    # A lookup none of whose four taps lies in the plane reads the zero padding and passes no
    # gradient (the kernels' rule, and CUDA grid_sample's): PyTorch's CPU grid_sample
    # multiplies its zero padding by the incoming gradient, which turned a NaN there (e.g. from
    # a NaN decoder weight) into a NaN gradient for points outside the box on the CPU only.
    # The same unnormalisation as grid_sample (align_corners=False) and the kernels.
    u, v = uv.detach().unbind(-1)
    ix, iy = ((u + 1) * W - 1) / 2, ((v + 1) * H - 1) / 2
    inside = (ix >= -1) & (ix < W) & (iy >= -1) & (iy < H)
    uv = torch.where(inside[..., None], uv, uv.detach())
    sampled = F.grid_sample(
        planes.reshape(N * 3, C, H, W),
        uv.reshape(N * 3, 1, M, 2),
        mode="bilinear",
        padding_mode="zeros",
        align_corners=False,
    )  # [N*3, C, 1, M]
    sampled = sampled.reshape(N, 3, C, M).permute(0, 1, 3, 2)  # [N, 3, M, C]
    if reduce == "mean":
        return sampled.mean(1)
    return sampled.permute(0, 2, 1, 3).reshape(N, M, 3 * C)


# ---------------------------------------------------------------------------------------
# composite_rays (docs/composite_rays.md)
# ---------------------------------------------------------------------------------------


def composite_rays(
    colors: torch.Tensor, densities: torch.Tensor, depths: torch.Tensor, white_back: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """EG3D MipRayMarcher2 volume compositing.

    colors [N, R, S, C], densities [N, R, S, 1] (raw), depths [N, R, S, 1] sorted along S.
    Returns features [N, R, C] (mapped x*2-1), depth [N, R, 1], weights [N, R, S-1, 1].
    The depth is clamped to the min/max of the whole `depths` tensor (as EG3D does), of its
    non-NaN values (a NaN depth must not reach other rays; docs/ops.md).
    """
    deltas = depths[:, :, 1:] - depths[:, :, :-1]
    colors_mid = (colors[:, :, :-1] + colors[:, :, 1:]) / 2
    densities_mid = (densities[:, :, :-1] + densities[:, :, 1:]) / 2
    depths_mid = (depths[:, :, :-1] + depths[:, :, 1:]) / 2
    sigma = F.softplus(densities_mid - 1)
    alpha = 1 - torch.exp(-sigma * deltas)
    shifted = torch.cat([torch.ones_like(alpha[:, :, :1]), 1 - alpha + 1e-10], -2)
    weights = alpha * torch.cumprod(shifted, -2)[:, :, :-1]
    rgb = torch.sum(weights * colors_mid, -2)
    weight_total = weights.sum(2)
    depth_sum = torch.sum(weights * depths_mid, -2)
    # Same values as depth_sum / weight_total, but an empty ray (0 / 0 -> NaN, as in EG3D)
    # gets no gradient through the division: autograd would give 0 * (1 / 0) = NaN there,
    # even though nan_to_num passes no gradient to a non-finite value.
    empty = weight_total == 0
    depth = torch.where(
        empty,
        depth_sum.detach() / weight_total.detach(),
        depth_sum / torch.where(empty, 1, weight_total),
    )
    depth = torch.nan_to_num(depth, float("inf"))
    if depths.numel() > 0:
        # Bounds over the non-NaN depths: a NaN in one ray must not reach the others.
        inf = float("inf")
        depth = torch.clamp(
            depth,
            torch.min(depths.nan_to_num(inf, inf, -inf)),
            torch.max(depths.nan_to_num(-inf, inf, -inf)),
        )
    if white_back:
        rgb = rgb + 1 - weight_total
    return rgb * 2 - 1, depth, weights


# ---------------------------------------------------------------------------------------
# deform_points (docs/deformation.md)
# ---------------------------------------------------------------------------------------


def positional_encoding(x: torch.Tensor, n_freqs: int) -> torch.Tensor:
    """PE(x) = [x, sin(2^0 pi x), cos(2^0 pi x), ..., sin(2^(L-1) pi x), cos(2^(L-1) pi x)].

    x [..., 3] -> [..., 3 + 6 L]; each sin/cos block holds the 3 coordinates.
    """
    parts = [x]
    for k in range(n_freqs):
        arg = (math.pi * 2.0**k) * x
        parts += [torch.sin(arg), torch.cos(arg)]
    return torch.cat(parts, -1)


def _mlp(h: torch.Tensor, weights: list[torch.Tensor], biases: list[torch.Tensor]) -> torch.Tensor:
    """nn.Linear layers with ReLU between them (none after the last)."""
    for i, (w, b) in enumerate(zip(weights, biases)):
        h = F.linear(h, w, b)
        if i + 1 < len(weights):
            h = F.relu(h)
    return h


def deform_points(
    points: torch.Tensor,
    alpha: torch.Tensor,
    beta: torch.Tensor,
    d_weights: list[torch.Tensor],
    d_biases: list[torch.Tensor],
    w_weights: list[torch.Tensor],
    w_biases: list[torch.Tensor],
    n_freqs: int = 6,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The deformation field as a plain implementation writes it.

    points [N, M, 3], alpha [N, A], beta [N, B]; weights in nn.Linear layout, the first
    D-Net layer reading [PE(x) | alpha | beta] and the first W-Net layer [PE(x) | alpha].
    Returns x_c = points + weight * offset [N, M, 3], offset [N, M, 3], weight [N, M, 1].
    """
    N, M, _ = points.shape
    pe = positional_encoding(points, n_freqs)
    a = alpha[:, None, :].expand(N, M, alpha.shape[1])
    b = beta[:, None, :].expand(N, M, beta.shape[1])
    offset = _mlp(torch.cat([pe, a, b], -1), d_weights, d_biases)
    weight = torch.sigmoid(_mlp(torch.cat([pe, a], -1), w_weights, w_biases))
    return points + weight * offset, offset, weight


# ---------------------------------------------------------------------------------------
# decode_triplane (docs/decode_triplane.md): tri-plane lookup + EG3D's OSG decoder
# ---------------------------------------------------------------------------------------


def decode_triplane(
    planes: torch.Tensor,
    points: torch.Tensor,
    box_warp: float,
    fc0_weight: torch.Tensor,
    fc0_bias: torch.Tensor,
    fc1_weight: torch.Tensor,
    fc1_bias: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """planes [N, 3, C, H, W], points [N, M, 3] -> (raw density [N, M, 1], features [N, M, F]).

    Exactly `sample_triplane(..., "mean")` then `OSGDecoder.forward`.
    """
    feats = sample_triplane(planes, points, box_warp, "mean")
    x = F.linear(F.softplus(F.linear(feats, fc0_weight, fc0_bias)), fc1_weight, fc1_bias)
    return x[..., :1], torch.sigmoid(x[..., 1:]) * (1 + 2 * 0.001) - 0.001


# ---- channels_last_planes -----------------------------------------------------------------
def channels_last_planes(planes: torch.Tensor) -> torch.Tensor:
    """[N, 3, C, H, W] -> the same values stored as [N, 3, H, W, C] (a permuted view of a copy)."""
    return planes.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)


# ---------------------------------------------------------------------------------------
# composite_rays_merged: composite_rays of two depth-sorted sample sets per ray
# ---------------------------------------------------------------------------------------


def composite_rays_merged(
    colors_a: torch.Tensor,
    densities_a: torch.Tensor,
    depths_a: torch.Tensor,
    colors_b: torch.Tensor,
    densities_b: torch.Tensor,
    depths_b: torch.Tensor,
    white_back: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """composite_rays of the two sets concatenated along S and stably sorted by depth.

    colors_* [N, R, S_*, C], densities_* / depths_* [N, R, S_*, 1]. Ties keep set a first
    and each set's own order (a stable sort of the concatenation), so this is valid even for
    unsorted sets. Returns features [N, R, C], depth [N, R, 1], weights [N, R, S_a+S_b-1, 1]
    in the merged order.
    """
    return composite_rays(
        *merge_sample_sets(colors_a, densities_a, depths_a, colors_b, densities_b, depths_b),
        white_back,
    )


def merge_sample_sets(
    colors_a: torch.Tensor,
    densities_a: torch.Tensor,
    depths_a: torch.Tensor,
    colors_b: torch.Tensor,
    densities_b: torch.Tensor,
    depths_b: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The two sets concatenated along S and stably sorted by depth (set a first on ties):
    (colors [N, R, S_a+S_b, C], densities [N, R, S_a+S_b, 1], depths [N, R, S_a+S_b, 1])."""
    depths = torch.cat([depths_a, depths_b], -2)
    _, order = torch.sort(depths, dim=-2, stable=True)
    colors = torch.cat([colors_a, colors_b], -2)
    densities = torch.cat([densities_a, densities_b], -2)
    return (
        torch.gather(colors, -2, order.expand(-1, -1, -1, colors.shape[-1])),
        torch.gather(densities, -2, order),
        torch.gather(depths, -2, order),
    )
