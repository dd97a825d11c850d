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
from nofa.render.cameras import orbit_origin, pitch_to_polar, sphere_origin


def _polar_deg(label: torch.Tensor) -> torch.Tensor:
    """Angle of the camera position from world +y, in degrees."""
    origin = parse_label(label)[0][..., :3, 3].double()
    return torch.rad2deg(torch.arccos(origin[..., 1] / origin.norm(dim=-1)))


def test_pitch_follows_eg3d_arccos_mapping():
    # EG3D: v = pi/2 + pitch, phi = arccos(1 - 2 v / pi) = arccos(-2 pitch / pi).
    # pitch -0.2: arccos(0.4 / pi) = arccos(0.127324) = 1.443126 rad = 82.685 deg
    # (the plain pi/2 + pitch would give 90 - 11.459 = 78.541 deg).
    assert _polar_deg(default_label(0.0, -0.2)).item() == pytest.approx(82.685, abs=1e-3)
    # pitch 0.3: arccos(-0.6 / pi) = arccos(-0.190986) = 1.762963 rad = 101.010 deg (not 107.19).
    assert _polar_deg(default_label(0.4, 0.3)).item() == pytest.approx(101.010, abs=1e-3)
    assert pitch_to_polar(-0.2).item() == pytest.approx(1.443126, abs=1e-6)
    assert pitch_to_polar(0.0).item() == pytest.approx(math.pi / 2, abs=1e-7)
    # Past +-pi/2 EG3D clamps v to (1e-5, pi - 1e-5): the camera stops just short of the pole.
    top, bottom = pitch_to_polar(torch.tensor([-3.0, 3.0]))
    assert top.item() == pytest.approx(math.acos(1 - 2e-5 / math.pi), rel=1e-3) and top > 0
    assert (
        bottom.item() == pytest.approx(math.pi - math.acos(1 - 2e-5 / math.pi), abs=1e-4)
        and bottom < math.pi
    )
    # The plain-angle helper puts the camera exactly at the polar angle it is given.
    o = sphere_origin(0.0, math.radians(78.5), 2.0)
    assert math.degrees(math.acos(o[1].item() / 2.0)) == pytest.approx(78.5, abs=1e-4)
    assert torch.allclose(orbit_origin(0.3, -0.2), sphere_origin(0.3, pitch_to_polar(-0.2)))


def _eg3d_look_at_sampler(h: float, v: float, look_at, radius: float) -> torch.Tensor:
    """EG3D LookAtPoseSampler.sample semantics (stddev 0) in float64, written from its definition:
    polar angle from +y via arccos(1 - 2 v / pi) with v clamped, OpenCV look-at with world up +y."""
    v = min(max(v, 1e-5), math.pi - 1e-5)
    theta, phi = h, math.acos(1 - 2 * v / math.pi)
    origin = torch.tensor(
        [
            radius * math.sin(phi) * math.cos(math.pi - theta),
            radius * math.cos(phi),
            radius * math.sin(phi) * math.sin(math.pi - theta),
        ],
        dtype=torch.float64,
    )
    forward = torch.tensor(look_at, dtype=torch.float64) - origin
    forward = forward / forward.norm()
    right = -torch.linalg.cross(torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64), forward)
    right = right / right.norm()
    down = torch.linalg.cross(forward, right)
    down = down / down.norm()
    m = torch.eye(4, dtype=torch.float64)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = right, down, forward, origin
    return m


@pytest.mark.parametrize(
    "yaw,pitch,radius,look_at",
    [
        (0.0, -0.2, FFHQ_RADIUS, FFHQ_LOOK_AT),
        (0.5, 0.25, FFHQ_RADIUS, FFHQ_LOOK_AT),
        (-0.7, -0.45, 3.1, (0.05, -0.1, 0.2)),
        (0.2, 1.2, 2.0, (0.0, 0.0, 0.0)),
    ],
)
def test_default_label_is_eg3d_camera(yaw, pitch, radius, look_at):
    # gen_samples.py / gen_videos.py call LookAtPoseSampler.sample(pi/2 + yaw, pi/2 + pitch, ...).
    want = _eg3d_look_at_sampler(math.pi / 2 + yaw, math.pi / 2 + pitch, look_at, radius)
    got = parse_label(default_label(yaw, pitch, radius=radius, look_at=look_at))[0]
    assert torch.allclose(got.double(), want, atol=2e-6)


def test_orbit_pitch_bob_uses_eg3d_mapping():
    n, pitch_range = 8, 0.3
    labels = orbit_labels(n, yaw_range=0.4, pitch_range=pitch_range)
    t = torch.arange(n, dtype=torch.float64) / n * (2 * math.pi)
    want = torch.rad2deg(torch.arccos(-2 * pitch_range * torch.sin(2 * t) / math.pi))
    assert torch.allclose(_polar_deg(labels), want, atol=1e-3)
    assert torch.allclose(
        labels,
        default_label(0.4 * torch.sin(t.float()), pitch_range * torch.sin(2 * t.float())),
        atol=1e-6,
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
    cam = d[0] @ c2w[:3, :3]  # world -> camera rotation (c2w^T applied to a direction)
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
