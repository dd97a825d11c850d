"""Depth samples along rays: stratified coarse samples and importance (inverse-CDF) samples.

Both follow EG3D's ImportanceRenderer. `deterministic=True` removes all randomness (no
jitter on the coarse depths; importance samples from u = linspace(0, 1, n)) so that two
renders of the same scene are bit-identical.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["importance_depths", "merge_samples", "sample_pdf", "stratified_depths"]


def stratified_depths(
    near: torch.Tensor,
    far: torch.Tensor,
    n: int,
    deterministic: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """n depths per ray from near to far [..., 1] -> [..., n, 1].

    Evenly spaced (endpoints included); unless deterministic, each is pushed forward by
    U(0, 1) * spacing, as EG3D does.
    """
    if n < 2:
        raise ValueError(f"need at least 2 coarse samples per ray, got {n}")
    t = torch.linspace(0, 1, n, dtype=near.dtype, device=near.device)
    depths = near.unsqueeze(-2) + (far - near).unsqueeze(-2) * t.view(n, 1)
    if not deterministic:
        step = (far - near).unsqueeze(-2) / (n - 1)
        noise = torch.rand(
            depths.shape, dtype=depths.dtype, device=depths.device, generator=generator
        )
        depths = depths + noise * step
    return depths


def sample_pdf(
    bins: torch.Tensor,
    weights: torch.Tensor,
    n: int,
    deterministic: bool = False,
    generator: torch.Generator | None = None,
    eps: float = 1e-5,
) -> torch.Tensor:
    """Inverse-CDF sampling of a piecewise-constant pdf.

    bins [B, K+1] bin edges, weights [B, K] -> samples [B, n] (piecewise-linear in the CDF).
    """
    weights = weights + eps
    pdf = weights / weights.sum(-1, keepdim=True)
    cdf = torch.cat([torch.zeros_like(pdf[:, :1]), torch.cumsum(pdf, -1)], -1)  # [B, K+1]
    B = bins.shape[0]
    if deterministic:
        u = torch.linspace(0, 1, n, dtype=bins.dtype, device=bins.device).expand(B, n).contiguous()
    else:
        u = torch.rand(B, n, dtype=bins.dtype, device=bins.device, generator=generator)
    idx = torch.searchsorted(cdf.contiguous(), u, right=True)
    below = (idx - 1).clamp_min(0)
    above = idx.clamp_max(cdf.shape[-1] - 1)
    pair = torch.stack([below, above], -1).view(B, 2 * n)
    cdf_g = torch.gather(cdf, 1, pair).view(B, n, 2)
    bins_g = torch.gather(bins, 1, pair).view(B, n, 2)
    denom = cdf_g[..., 1] - cdf_g[..., 0]
    denom = torch.where(denom < eps, torch.ones_like(denom), denom)
    return bins_g[..., 0] + (u - cdf_g[..., 0]) / denom * (bins_g[..., 1] - bins_g[..., 0])


def importance_depths(
    depths: torch.Tensor,
    weights: torch.Tensor,
    n: int,
    deterministic: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """EG3D importance sampling: [N, R, S, 1] coarse depths + [N, R, S-1, 1] weights -> [N, R, n,
    1].

    The weights are smoothed (max-pool 2, avg-pool 2, + 0.01) and the midpoints of the coarse
    depths are the bin edges. The result carries no gradient (as in EG3D).
    """
    N, R, S, _ = depths.shape
    if N * R == 0 or n == 0:
        return depths.new_zeros(N, R, n, 1)
    with torch.no_grad():
        z = depths.reshape(N * R, S)
        w = weights.reshape(N * R, 1, S - 1)
        w = F.max_pool1d(w, 2, 1, padding=1)  # S
        w = F.avg_pool1d(w, 2, 1).squeeze(1)  # S-1
        w = w + 0.01
        mids = 0.5 * (z[:, :-1] + z[:, 1:])  # S-1 edges -> S-2 bins
        out = sample_pdf(mids, w[:, 1:-1], n, deterministic, generator)
    return out.reshape(N, R, n, 1)


def merge_samples(
    depths_a: torch.Tensor,
    values_a: list[torch.Tensor],
    depths_b: torch.Tensor,
    values_b: list[torch.Tensor],
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Concatenate two sample sets along S and sort by depth, carrying per-sample tensors along.

    depths_* [N, R, S*, 1]; values_* lists of [N, R, S*, C_i]. Returns (depths, values).
    """
    depths = torch.cat([depths_a, depths_b], -2)
    order = torch.argsort(depths, -2)
    depths = torch.gather(depths, -2, order)
    merged = []
    for a, b in zip(values_a, values_b):
        v = torch.cat([a, b], -2)
        merged.append(torch.gather(v, -2, order.expand(*v.shape[:-1], v.shape[-1])))
    return depths, merged
