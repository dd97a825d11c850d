"""SDF primitives and the sphere tracer (nofa.render.sdf), and the procedural head builder
(nofa.models.procedural_head): NumPy and torch give the same distances, the tracer finds
analytic intersections."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nofa.models.procedural_head import SdfHead, synthetic_head, template_head
from nofa.render.sdf import (
    capsule,
    ellipsoid,
    mirror_x,
    ray_aabb_bounds,
    ray_sphere_bounds,
    smooth_max,
    smooth_min,
    sphere,
    sphere_trace,
)


@pytest.fixture
def points() -> np.ndarray:
    return np.random.default_rng(0).uniform(-0.5, 0.5, (500, 3))


def test_ellipsoid_with_equal_radii_is_the_exact_sphere_distance(points):
    d = ellipsoid(points, (0.1, -0.05, 0.0), (0.2, 0.2, 0.2))
    exact = np.linalg.norm(points - [0.1, -0.05, 0.0], axis=1) - 0.2
    np.testing.assert_allclose(d, exact, atol=1e-7)
    np.testing.assert_allclose(sphere(points, (0.1, -0.05, 0.0), 0.2), exact, atol=1e-12)
    # an elongated one: exact on the surface, its sign right everywhere
    on = np.array([[0.3, 0.0, 0.0], [0.0, -0.1, 0.0], [0.0, 0.0, 0.05]])
    np.testing.assert_allclose(ellipsoid(on, (0, 0, 0), (0.3, 0.1, 0.05)), 0, atol=1e-9)
    q = points / [0.3, 0.1, 0.05]
    inside = (q * q).sum(1) < 1
    assert ((ellipsoid(points, (0, 0, 0), (0.3, 0.1, 0.05)) < 0) == inside).all()


def test_numpy_and_torch_agree(points):
    t = torch.from_numpy(points)
    pairs = [
        (
            ellipsoid(points, (0.0, 0.1, 0.0), (0.2, 0.3, 0.1)),
            ellipsoid(t, (0.0, 0.1, 0.0), (0.2, 0.3, 0.1)),
        ),
        (
            capsule(points, (0, -0.2, 0), (0, 0.2, 0.1), 0.05),
            capsule(t, (0, -0.2, 0), (0, 0.2, 0.1), 0.05),
        ),
        (sphere(points, (0.1, 0, 0), 0.2), sphere(t, (0.1, 0, 0), 0.2)),
        (mirror_x(points), mirror_x(t)),
    ]
    a, b = points[:, 0], points[:, 1]
    for k in (0.0, 0.05):
        pairs.append((smooth_min(a, b, k), smooth_min(t[:, 0], t[:, 1], k)))
        pairs.append((smooth_max(a, b, k), smooth_max(t[:, 0], t[:, 1], k)))
    for head in (template_head(), synthetic_head(1.05, 0.97, 1.1, 0.6)):
        parts_np, parts_t = head.parts(points), head.parts(t)
        assert parts_np.keys() == parts_t.keys()
        pairs += [(parts_np[k], parts_t[k]) for k in parts_np]
        pairs.append((head.sdf(points), head.sdf(t)))
    for n, th in pairs:
        assert isinstance(n, np.ndarray) and isinstance(th, torch.Tensor)
        np.testing.assert_allclose(n, th.numpy(), rtol=0, atol=1e-12)
    # float32 in, float32 out (the constants take the points' dtype)
    assert ellipsoid(points.astype(np.float32), (0, 0, 0), (0.1, 0.2, 0.3)).dtype == np.float32
    assert ellipsoid(t.float(), (0, 0, 0), (0.1, 0.2, 0.3)).dtype == torch.float32


def test_smooth_min_and_max():
    a = np.linspace(-1, 1, 201)
    b = np.zeros_like(a)
    k = 0.1
    u = smooth_min(a, b, k)
    assert (u <= np.minimum(a, b) + 1e-15).all()
    far = np.abs(a - b) >= k  # beyond the blend radius: the plain minimum
    np.testing.assert_array_equal(u[far], np.minimum(a, b)[far])
    assert np.min(u - np.minimum(a, b)) >= -k / 4 - 1e-15  # the largest dent: k / 4 at a == b
    np.testing.assert_array_equal(smooth_min(a, b, 0), np.minimum(a, b))
    np.testing.assert_array_equal(smooth_max(a, b, 0), np.maximum(a, b))
    np.testing.assert_allclose(smooth_max(a, b, k), -smooth_min(-a, -b, k))


def test_capsule_and_mirror():
    p = np.array([[0.0, 0.0, 0.0], [0.3, 0.5, 0.0], [0.0, -0.7, 0.0], [-0.2, 0.1, 0.0]])
    np.testing.assert_allclose(
        capsule(p, (0, 0, 0), (0, 0.5, 0), 0.1), [-0.1, 0.2, 0.6, 0.1], atol=1e-12
    )
    np.testing.assert_array_equal(mirror_x(p)[:, 0], np.abs(p[:, 0]))
    np.testing.assert_array_equal(mirror_x(p)[:, 1:], p[:, 1:])


def _rays(backend: str):
    ys = np.linspace(-0.6, 0.6, 13)
    origins = np.stack([np.zeros_like(ys), ys, np.full_like(ys, 2.0)], 1)
    dirs = np.tile([0.0, 0.0, -1.0], (len(ys), 1))
    if backend == "torch":
        return torch.from_numpy(origins), torch.from_numpy(dirs), ys
    return origins, dirs, ys


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_bounds_and_sphere_trace_find_a_sphere(backend):
    origins, dirs, ys = _rays(backend)
    # no ray grazes a boundary: ys are multiples of 0.1
    near, far, valid = ray_sphere_bounds(origins, dirs, (0, 0, 0), 0.52)
    crosses = np.abs(ys) < 0.52
    assert [bool(v) for v in valid] == list(crosses)
    np.testing.assert_allclose(np.asarray(near)[crosses], 2 - np.sqrt(0.52**2 - ys[crosses] ** 2))
    np.testing.assert_allclose(np.asarray(far)[crosses], 2 + np.sqrt(0.52**2 - ys[crosses] ** 2))
    box_near, box_far, box_valid = ray_aabb_bounds(
        origins, dirs, (-0.5, -0.47, -0.5), (0.5, 0.47, 0.5)
    )
    in_box = np.abs(ys) < 0.47
    assert [bool(v) for v in box_valid] == list(in_box)
    np.testing.assert_allclose(np.asarray(box_near)[in_box], 1.5)
    np.testing.assert_allclose(np.asarray(box_far)[in_box], 2.5)

    def ball(p):
        return sphere(p, (0, 0, 0), 0.33)

    inside = np.abs(ys) < 0.33
    for two_sided in (True, False):
        hit, t = sphere_trace(ball, origins, dirs, near, far, valid, 64, 1e-6, two_sided)
        assert type(hit) is type(origins)
        assert [bool(v) for v in hit] == list(inside)
        np.testing.assert_allclose(
            np.asarray(t)[inside], 2 - np.sqrt(0.33**2 - ys[inside] ** 2), atol=1e-5
        )
    # from inside the surface: one-sided tracing calls it a hit, two-sided steps back out
    start = origins + dirs * 2.0  # (0, y, 0): inside the ball where |y| < 0.33
    hit1, t1 = sphere_trace(ball, start, dirs, near * 0, far, valid, 1, 1e-6, two_sided=False)
    hit2, t2 = sphere_trace(ball, start, dirs, near * 0, far, valid, 1, 1e-6)
    assert [bool(v) for v in hit1] == list(inside) and not any(bool(v) for v in hit2)
    v = np.asarray(valid)
    np.testing.assert_allclose(np.asarray(t1)[v], np.abs(ys[v]) - 0.33)
    np.testing.assert_array_equal(np.asarray(t1), np.asarray(t2))


def test_synthetic_jaw_drops_the_chin_and_template_parts():
    below_chin = np.array([[0.0, -0.245, 0.12]])
    closed = synthetic_head(1.0, 1.0, 1.0, 0.0).sdf(below_chin)
    opened = synthetic_head(1.0, 1.0, 1.0, 1.0).sdf(below_chin)
    assert opened[0] < closed[0]
    head = template_head()
    assert isinstance(head, SdfHead)
    parts = head.parts(torch.zeros(4, 3))
    assert sorted(parts) == ["eyes", "hair", "lips", "skin"]
    assert sorted(synthetic_head(1.0, 1.0, 1.0, 0.0).parts(below_chin)) == ["hair", "skin"]
