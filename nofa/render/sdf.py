"""Signed-distance primitives and a sphere tracer, for NumPy arrays and torch tensors alike.

The procedural heads (nofa.models.procedural_head) are built from these: smooth unions of
ellipsoids, spheres and capsules. Every function returns the array type it is given, so the
same head evaluates in NumPy (the synthetic talking-head renderer: many small element-wise
ops, where NumPy's per-op cost is far below torch's on a busy CPU) and in torch
(the template head: differentiable, any device). Points are [..., 3]; distances are [...]
(negative inside). Constants take the points' dtype and device.

    near, far, valid = ray_sphere_bounds(origins, dirs, centre, radius)
    hit, t = sphere_trace(sdf, origins, dirs, near, far, valid, steps=48, eps=3e-4)
    surface = origins[hit] + dirs[hit] * t[hit, None]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np
import torch

__all__ = [
    "Array",
    "capsule",
    "ellipsoid",
    "mirror_x",
    "ray_aabb_bounds",
    "ray_sphere_bounds",
    "smooth_max",
    "smooth_min",
    "sphere",
    "sphere_trace",
]

Array = TypeVar("Array", np.ndarray, torch.Tensor)  # every function returns what it is given


def _const(like: Array, values) -> Array:
    """`values` as an array of `like`'s type, dtype (and device)."""
    if isinstance(like, torch.Tensor):
        return like.new_tensor(values)
    return np.asarray(values, like.dtype)


def _norm(q: Array) -> Array:
    """Euclidean length over the last axis, [..., 3] -> [...]."""
    if isinstance(q, torch.Tensor):
        return q.norm(dim=-1)
    # Spelled out, not (q * q).sum(-1): a fixed summation order.
    return np.sqrt(q[..., 0] * q[..., 0] + q[..., 1] * q[..., 1] + q[..., 2] * q[..., 2])


def _clip(a: Array, lo: float, hi: float) -> Array:
    return a.clamp(lo, hi) if isinstance(a, torch.Tensor) else np.clip(a, lo, hi)


def _clamp_min0(a: Array) -> Array:
    return a.clamp_min(0) if isinstance(a, torch.Tensor) else np.maximum(a, 0)


def _sqrt(a: Array) -> Array:
    return a.sqrt() if isinstance(a, torch.Tensor) else np.sqrt(a)


def ellipsoid(p: Array, centre: Sequence[float], radii: Sequence[float]) -> Array:
    """Approximate signed distance [...] to an axis-aligned ellipsoid from points [..., 3]:
    exact on the surface, a bounded under-estimate elsewhere (safe for sphere tracing)."""
    # The guard against 0 / 0 at the centre is + 1e-9, not a clamp, as the synthetic data was
    # made with: in float32 it rounds away wherever |q / r| > 0.017, i.e. all but deep inside.
    if isinstance(p, torch.Tensor):
        r = p.new_tensor(radii)
        q = (p - p.new_tensor(centre)) / r
        k0 = q.norm(dim=-1)
        k1 = (q / r).norm(dim=-1) + 1e-9
        return k0 * (k0 - 1) / k1
    # NumPy: one array per coordinate, contiguous after the first op (the fastest form there).
    dt = p.dtype.type
    c, r = [dt(v) for v in centre], [dt(v) for v in radii]
    qx, qy, qz = (p[..., 0] - c[0]) / r[0], (p[..., 1] - c[1]) / r[1], (p[..., 2] - c[2]) / r[2]
    k0 = np.sqrt(qx * qx + qy * qy + qz * qz)
    qx, qy, qz = qx / r[0], qy / r[1], qz / r[2]
    k1 = np.sqrt(qx * qx + qy * qy + qz * qz) + 1e-9
    return k0 * (k0 - 1) / k1


def sphere(p: Array, centre: Sequence[float], radius: float) -> Array:
    """Signed distance [...] to a sphere from points [..., 3]."""
    return _norm(p - _const(p, centre)) - radius


def capsule(p: Array, a: Sequence[float], b: Sequence[float], radius: float) -> Array:
    """Signed distance [...] to the capsule of `radius` around the segment a-b, points [..., 3]."""
    a, b = _const(p, a), _const(p, b)
    pa, ba = p - a, b - a
    h = _clip((pa * ba).sum(-1) / (ba * ba).sum(), 0, 1)
    return _norm(pa - h[..., None] * ba) - radius


def smooth_min(a: Array, b: Array, k: float) -> Array:
    """Union of two distances, smoothed over blend radius `k` (polynomial smooth minimum; the
    plain minimum when k <= 0)."""
    if k <= 0:
        return torch.minimum(a, b) if isinstance(a, torch.Tensor) else np.minimum(a, b)
    h = _clip(0.5 + 0.5 * (b - a) / k, 0, 1)
    return b + (a - b) * h - k * h * (1 - h)


def smooth_max(a: Array, b: Array, k: float) -> Array:
    """Intersection of two distances, smoothed over `k` (the plain maximum when k <= 0);
    smooth_max(a, -b, k) carves b out of a."""
    if k <= 0:
        return torch.maximum(a, b) if isinstance(a, torch.Tensor) else np.maximum(a, b)
    return -smooth_min(-a, -b, k)


def mirror_x(p: Array) -> Array:
    """Points [..., 3] folded onto x >= 0, so a left-right pair of features is written once."""
    if isinstance(p, torch.Tensor):
        return torch.cat([p[..., :1].abs(), p[..., 1:]], -1)
    return np.concatenate([np.abs(p[..., :1]), p[..., 1:]], -1)


def ray_sphere_bounds(
    origins: Array, dirs: Array, centre: Sequence[float], radius: float
) -> tuple[Array, Array, Array]:
    """Where rays (origins, unit dirs [R, 3]) cross a bounding sphere: near [R] (0 when the
    origin is inside), far [R] and valid [R] (bool: the line meets the sphere; near/far are
    meaningless where it does not)."""
    o = origins - _const(origins, centre)
    b = (o * dirs).sum(-1)
    disc = b * b - ((o * o).sum(-1) - radius**2)
    root = _sqrt(_clamp_min0(disc))
    return _clamp_min0(-b - root), -b + root, disc > 0


def ray_aabb_bounds(
    origins: Array, dirs: Array, lo: Sequence[float], hi: Sequence[float]
) -> tuple[Array, Array, Array]:
    """Slab test of rays (origins, dirs [R, 3]) with the axis-aligned box [lo, hi]: near [R]
    (0 when the origin is inside), far [R] and valid [R] (bool: the box is entered in front of
    the origin; near/far are meaningless where it is not)."""
    if isinstance(dirs, torch.Tensor):
        safe = torch.where(dirs == 0, torch.full_like(dirs, 1e-12), dirs)
    else:
        safe = np.where(dirs == 0, np.asarray(1e-12, dirs.dtype), dirs)
    inv = 1.0 / safe
    t0, t1 = (_const(origins, lo) - origins) * inv, (_const(origins, hi) - origins) * inv
    if isinstance(t0, torch.Tensor):
        near, far = torch.minimum(t0, t1).amax(-1), torch.maximum(t0, t1).amin(-1)
    else:
        near, far = np.minimum(t0, t1).max(-1), np.maximum(t0, t1).min(-1)
    near = _clamp_min0(near)
    return near, far, far > near


def sphere_trace(
    sdf: Callable[[Array], Array],
    origins: Array,
    dirs: Array,
    near: Array,
    far: Array,
    valid: Array,
    steps: int = 64,
    eps: float = 2e-4,
    two_sided: bool = True,
) -> tuple[Array, Array]:
    """March rays (origins, unit dirs [R, 3]) from `near` [R] by the signed distance until it
    drops below `eps` (a hit), the ray passes `far` [R] or `steps` run out; only rays with
    `valid` [R] march. `sdf`: points [M, 3] -> distances [M]. `two_sided`: a hit needs
    |distance| < eps (a step that overshoots into the surface steps back out); otherwise any
    distance below eps, inside included, is a hit.

    Returns hit [R] (bool) and t [R]: the distance along the ray (where it stopped; for a
    missed ray wherever marching ended)."""
    torch_arrays = isinstance(near, torch.Tensor)
    t = near.clone() if torch_arrays else near.copy()
    hit = torch.zeros_like(valid) if torch_arrays else np.zeros(valid.shape, bool)
    active = valid.nonzero().squeeze(-1) if torch_arrays else np.nonzero(valid)[0]
    for _ in range(steps):
        if len(active) == 0:
            break
        ta = t[active]
        d = sdf(origins[active] + dirs[active] * ta[:, None])
        t[active] = ta + d
        done = (abs(d) if two_sided else d) < eps
        hit[active[done]] = True
        active = active[~done & (t[active] < far[active])]
    return hit, t
