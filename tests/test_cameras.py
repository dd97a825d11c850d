"""Cameras (EG3D conventions), rays and depth sampling."""
from __future__ import annotations

import math

import pytest
import torch

from nofa.render import (
    FFHQ_FOCAL,
    FFHQ_LOOK_AT,
    FFHQ_RADIUS,
    camera_label,
    default_label,
    generate_rays,
    importance_depths,
    intrinsics_matrix,
    look_at_cam2world,
    orbit_labels,
    parse_label,
    ray_box_bounds,
    sample_pdf,
    stratified_depths,
)


def test_label_round_trip():
    yaw, pitch = torch.rand(5) - 0.5, torch.rand(5) * 0.4 - 0.2
    labels = default_label(yaw, pitch)
    assert labels.shape == (5, 25)
    c2w, K = parse_label(labels)
    assert torch.equal(camera_label(c2w, K), labels)
    assert torch.allclose(K[0], intrinsics_matrix())
    # Rotation part is orthonormal with det +1; bottom row is [0, 0, 0, 1].
    R = c2w[:, :3, :3]
    assert torch.allclose(R.transpose(1, 2) @ R, torch.eye(3).expand(5, 3, 3), atol=1e-6)
    assert torch.allclose(torch.linalg.det(R), torch.ones(5), atol=1e-6)
    assert torch.equal(c2w[:, 3], torch.tensor([0.0, 0, 0, 1]).expand(5, 4))
    # Camera origins lie on the sphere of radius 2.7 around the world origin (EG3D).
    assert torch.allclose(c2w[:, :3, 3].norm(dim=-1), torch.full((5,), FFHQ_RADIUS), atol=1e-5)


def test_frontal_camera_is_eg3d_default():
    c2w, K = parse_label(default_label())
    # Camera on +z looking down -z; OpenCV: x right = world +x, y down = world -y.
    assert torch.allclose(c2w[:3, 3], torch.tensor([0.0, 0.0, FFHQ_RADIUS]), atol=1e-6)
    assert torch.allclose(c2w[:3, 0], torch.tensor([1.0, 0, 0]), atol=1e-6)
    assert torch.allclose(c2w[:3, 1], torch.tensor([0.0, -1, 0]), atol=1e-6)
    assert torch.allclose(c2w[:3, 2], torch.tensor([0.0, 0, -1]), atol=1e-6)
    assert K[0, 0] == pytest.approx(FFHQ_FOCAL) and K[0, 2] == pytest.approx(0.5)
    # yaw > 0 moves the camera to +x, pitch > 0 moves it to -y.
    assert parse_label(default_label(0.3))[0][0, 3] > 0
    assert parse_label(default_label(0.0, 0.3))[0][1, 3] < 0


@pytest.mark.parametrize("yaw,pitch", [(0.0, 0.0), (0.5, -0.2), (-0.6, 0.3)])
def test_centre_ray_passes_through_look_at(yaw, pitch):
    # Odd resolution: the middle pixel centre is exactly the principal point.
    res = 9
    o, d = generate_rays(default_label(yaw, pitch)[None], res)
    o, d = o[0, (res // 2) * res + res // 2], d[0, (res // 2) * res + res // 2]
    target = torch.tensor(FFHQ_LOOK_AT)
    t = torch.dot(target - o, d)
    assert torch.allclose(o + t * d, target, atol=1e-5)


def test_rays_through_pixel_centres_and_look_at_matrix():
    target = torch.tensor([0.1, -0.2, 0.3])
    origin = torch.tensor([1.0, 0.5, 2.0])
    c2w = look_at_cam2world(origin, target)
    K = intrinsics_matrix(focal=2.0, principal=0.5)
    o, d = generate_rays(camera_label(c2w, K)[None], 4)
    assert o.shape == d.shape == (1, 16, 3)
    assert torch.allclose(d.norm(dim=-1), torch.ones(1, 16), atol=1e-6)
    # Project each ray's point back through K: it must land on its pixel centre.
    cam = (d[0] @ c2w[:3, :3])  # world -> camera rotation (c2w^T applied to a direction)
    uv = (cam[:, :2] / cam[:, 2:]) * 2.0 + 0.5
    rows, cols = torch.meshgrid(torch.arange(4.0), torch.arange(4.0), indexing="ij")
    want = torch.stack([(cols.reshape(-1) + 0.5) / 4, (rows.reshape(-1) + 0.5) / 4], -1)
    assert torch.allclose(uv, want, atol=1e-6)


def test_orbit_labels_sweep_yaw():
    labels = orbit_labels(8, yaw_range=math.radians(35))
    x = parse_label(labels)[0][:, 0, 3]
    assert labels.shape == (8, 25)
    assert torch.allclose(labels[0], default_label(), atol=1e-6)
    assert x.max() == pytest.approx(FFHQ_RADIUS * math.sin(math.radians(35)), rel=1e-4)
    assert x.min() == pytest.approx(-FFHQ_RADIUS * math.sin(math.radians(35)), rel=1e-4)


def test_bad_labels_raise():
    with pytest.raises(ValueError, match="25"):
        parse_label(torch.zeros(3, 24))
    with pytest.raises(ValueError, match=r"\[N, 25\]"):
        generate_rays(torch.zeros(25), 4)


def test_ray_box_bounds():
    o = torch.tensor([[0.0, 0.0, 2.7], [0.0, 2.0, 2.7]])
    d = torch.tensor([[0.0, 0.0, -1.0], [0.0, 0.0, -1.0]])
    near, far, hit = ray_box_bounds(o, d, 1.0)
    assert hit[:, 0].tolist() == [True, False]
    assert near[0].item() == pytest.approx(2.2) and far[0].item() == pytest.approx(3.2)


def test_stratified_deterministic_and_jittered():
    near, far = torch.full((2, 3, 1), 2.0), torch.full((2, 3, 1), 3.0)
    det = stratified_depths(near, far, 5, deterministic=True)
    assert torch.allclose(det[0, 0, :, 0], torch.linspace(2, 3, 5))
    jit = stratified_depths(near, far, 5, generator=torch.Generator().manual_seed(1))
    step = 0.25
    assert ((jit - det) >= 0).all() and ((jit - det) <= step).all() and not torch.equal(jit, det)


def test_importance_sampling_follows_weights_and_is_reproducible():
    depths = torch.linspace(2, 3, 32).view(1, 1, 32, 1).expand(1, 2, 32, 1).contiguous()
    w = torch.zeros(1, 2, 31, 1)
    w[0, 0, 10] = 1.0  # all mass around depth 2.32
    w[0, 1, 25] = 1.0
    a = importance_depths(depths, w, 16, deterministic=True)
    b = importance_depths(depths, w, 16, deterministic=True)
    assert torch.equal(a, b)
    # Most samples concentrate near the peak (the + 0.01 floor spreads a few).
    for ray, peak in ((0, depths[0, 0, 10:12].mean()), (1, depths[0, 0, 25:27].mean())):
        close = ((a[0, ray, :, 0] - peak).abs() < 0.08).float().mean()
        assert close > 0.6, (ray, a[0, ray, :, 0])
    assert (a >= 2).all() and (a <= 3).all()


def test_sample_pdf_uniform_is_linear():
    bins = torch.linspace(0, 1, 11)[None]
    s = sample_pdf(bins, torch.ones(1, 10), 5, deterministic=True)
    assert torch.allclose(s, torch.linspace(0, 1, 5)[None], atol=1e-5)
