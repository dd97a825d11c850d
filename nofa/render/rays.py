"""Camera rays through pixel centres, and their intersection with the tri-plane box."""

from __future__ import annotations

import torch

from .cameras import parse_label

__all__ = ["generate_rays", "ray_box_bounds"]


def generate_rays(labels: torch.Tensor, resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One ray per pixel centre for each camera (EG3D's RaySampler semantics).

    Args:
        labels: [N, 25] camera labels (see :mod:`nofa.render.cameras`).
        resolution: image side in pixels.

    Returns:
        origins [N, R, 3] and unit directions [N, R, 3] in world space, R = resolution**2,
        row-major (ray r is pixel row r // resolution, column r % resolution).
    """
    if labels.dim() != 2 or labels.shape[1] != 25:
        raise ValueError(f"labels must have shape [N, 25], got {list(labels.shape)}")
    if resolution < 1:
        raise ValueError(f"resolution must be >= 1, got {resolution}")
    cam2world, K = parse_label(labels)
    N = labels.shape[0]
    fx, fy = K[:, 0, 0, None], K[:, 1, 1, None]
    cx, cy, sk = K[:, 0, 2, None], K[:, 1, 2, None], K[:, 0, 1, None]
    centres = (
        torch.arange(resolution, dtype=labels.dtype, device=labels.device) + 0.5
    ) / resolution
    v, u = torch.meshgrid(centres, centres, indexing="ij")  # v: row (image y), u: column (x)
    u, v = u.reshape(1, -1), v.reshape(1, -1)
    # Pinhole with skew, at camera depth 1 (OpenCV axes).
    x_cam = (u - cx + cy * sk / fy - sk * v / fy) / fx
    y_cam = (v - cy) / fy
    cam = torch.stack(
        [x_cam.expand(N, -1), y_cam.expand(N, -1), torch.ones_like(x_cam).expand(N, -1)], -1
    )
    dirs = torch.nn.functional.normalize(cam @ cam2world[:, :3, :3].transpose(1, 2), dim=-1)
    origins = cam2world[:, None, :3, 3].expand_as(dirs)
    return origins, dirs


def ray_box_bounds(
    origins: torch.Tensor, dirs: torch.Tensor, box_size: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Slab-test entry/exit depths of rays with the cube [-box_size/2, box_size/2]^3.

    origins, dirs: [..., 3]. Returns near [..., 1], far [..., 1], hit [..., 1] (bool: the ray
    enters the box in front of its origin). near/far are meaningless where hit is False.
    """
    half = box_size / 2
    inv = 1.0 / torch.where(dirs == 0, torch.full_like(dirs, 1e-12), dirs)
    t0, t1 = (-half - origins) * inv, (half - origins) * inv
    near = torch.minimum(t0, t1).amax(-1, keepdim=True).clamp_min(0.0)
    far = torch.maximum(t0, t1).amin(-1, keepdim=True)
    return near, far, far > near
