"""Cameras with EG3D conventions.

A camera *label* is 25 numbers: the 4x4 cam2world matrix (row-major, OpenCV axes: x right,
y down, z forward) followed by the 3x3 intrinsics normalised by the image size (focal 4.2647
and principal point 0.5 for FFHQ). World space has y up; a face looks along +z.

Angles follow EG3D's `LookAtPoseSampler` as called by its `gen_samples.py` and
`gen_videos.py` with (h, v) = (pi/2 + yaw, pi/2 + pitch): the camera sits on a sphere of
`radius` around the world origin at azimuth theta = pi/2 + yaw and polar angle (from +y)
phi = arccos(1 - 2 v / pi), v clamped to (1e-5, pi - 1e-5), and looks at `look_at`.
So pitch is *not* the geometric elevation: pitch -0.2 puts the camera at phi = 82.7 deg,
not 90 - 11.5 = 78.5 deg (see docs/cameras.md). `pitch_to_polar` gives phi,
`sphere_origin` places a camera at a plain polar angle. yaw > 0 moves the camera towards
+x (the subject's left); pitch > 0 moves it towards -y (below the face, looking up).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

FFHQ_FOCAL = 4.2647
FFHQ_PRINCIPAL = 0.5
FFHQ_RADIUS = 2.7
FFHQ_LOOK_AT = (0.0, 0.0, 0.2)

__all__ = [
    "FFHQ_FOCAL",
    "FFHQ_LOOK_AT",
    "FFHQ_PRINCIPAL",
    "FFHQ_RADIUS",
    "camera_label",
    "default_label",
    "intrinsics_matrix",
    "look_at_cam2world",
    "orbit_labels",
    "orbit_origin",
    "parse_label",
    "pitch_to_polar",
    "sphere_origin",
]

# EG3D's LookAtPoseSampler clamps v = pi/2 + pitch to this open interval before arccos.
_V_EPS = 1e-5


def intrinsics_matrix(
    focal: float = FFHQ_FOCAL, principal: float = FFHQ_PRINCIPAL, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Normalised 3x3 intrinsics [[f, 0, c], [0, f, c], [0, 0, 1]] (units of image size)."""
    return torch.tensor(
        [[focal, 0.0, principal], [0.0, focal, principal], [0.0, 0.0, 1.0]], dtype=dtype
    )


def look_at_cam2world(
    origin: torch.Tensor, target: torch.Tensor, up: Sequence[float] = (0.0, 1.0, 0.0)
) -> torch.Tensor:
    """OpenCV cam2world matrices for cameras at `origin` [..., 3] looking at `target` [..., 3].

    Columns are the camera's x (right), y (down), z (forward) axes in world space and the
    origin; world `up` maps to -y in the image. Returns [..., 4, 4].
    """
    origin, target = torch.broadcast_tensors(origin, target)
    forward = torch.nn.functional.normalize(target - origin, dim=-1)
    up_t = torch.tensor(up, dtype=origin.dtype, device=origin.device).expand_as(forward)
    right = -torch.nn.functional.normalize(torch.linalg.cross(up_t, forward, dim=-1), dim=-1)
    down = torch.nn.functional.normalize(torch.linalg.cross(forward, right, dim=-1), dim=-1)
    m = torch.zeros(*origin.shape[:-1], 4, 4, dtype=origin.dtype, device=origin.device)
    m[..., :3, 0] = right
    m[..., :3, 1] = down
    m[..., :3, 2] = forward
    m[..., :3, 3] = origin
    m[..., 3, 3] = 1.0
    return m


def pitch_to_polar(pitch: torch.Tensor | float) -> torch.Tensor:
    """EG3D's polar angle phi (radians from world +y) for a pitch in radians (0 = frontal).

    phi = arccos(1 - 2 v / pi) with v = clamp(pi/2 + pitch, 1e-5, pi - 1e-5), as EG3D's
    `LookAtPoseSampler`; equals pi/2 + pitch only at pitch 0 (and at the clamp ends).
    Same shape as `pitch` (float32 for Python numbers).
    """
    pitch = torch.as_tensor(pitch, dtype=torch.float32)
    v = (math.pi / 2 + pitch).clamp(_V_EPS, math.pi - _V_EPS)
    return torch.arccos(1 - 2 * v / math.pi)


def sphere_origin(
    yaw: torch.Tensor | float, polar: torch.Tensor | float, radius: float = FFHQ_RADIUS
) -> torch.Tensor:
    """Camera position at azimuth pi/2 + yaw and plain polar angle `polar` (radians from +y).

    `polar` = pi/2 is level with the origin; no EG3D pitch remapping. Returns [..., 3].
    """
    yaw = torch.as_tensor(yaw, dtype=torch.float32)
    phi = torch.as_tensor(polar, dtype=torch.float32)
    theta = math.pi / 2 + yaw
    x = radius * torch.sin(phi) * torch.cos(math.pi - theta)
    y = radius * torch.cos(phi)
    z = radius * torch.sin(phi) * torch.sin(math.pi - theta)
    return torch.stack(torch.broadcast_tensors(x, y, z), -1)


def orbit_origin(
    yaw: torch.Tensor | float, pitch: torch.Tensor | float, radius: float = FFHQ_RADIUS
) -> torch.Tensor:
    """Camera position for EG3D yaw/pitch (radians, 0 = frontal) on a sphere around the origin.
    [..., 3].

    The pitch goes through EG3D's mapping (`pitch_to_polar`), so the camera is where EG3D's
    `LookAtPoseSampler.sample(pi/2 + yaw, pi/2 + pitch, ...)` puts it.
    """
    return sphere_origin(yaw, pitch_to_polar(pitch), radius)


def camera_label(cam2world: torch.Tensor, intrinsics: torch.Tensor) -> torch.Tensor:
    """Pack cam2world [..., 4, 4] and intrinsics [..., 3, 3] into labels [..., 25]."""
    if cam2world.shape[-2:] != (4, 4) or intrinsics.shape[-2:] != (3, 3):
        raise ValueError(
            "cam2world must be [..., 4, 4] and intrinsics [..., 3, 3], got "
            f"{list(cam2world.shape)} "
            f"and {list(intrinsics.shape)}"
        )
    cam2world, intrinsics = cam2world.flatten(-2), intrinsics.flatten(-2)
    lead = torch.broadcast_shapes(cam2world.shape[:-1], intrinsics.shape[:-1])
    return torch.cat([cam2world.expand(*lead, 16), intrinsics.to(cam2world).expand(*lead, 9)], -1)


def parse_label(label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Split labels [..., 25] into cam2world [..., 4, 4] and normalised intrinsics [..., 3, 3]."""
    label = torch.as_tensor(label)
    if label.shape[-1] != 25:
        raise ValueError(
            f"camera label must have 25 numbers in its last dim (16 cam2world + 9 intrinsics), "
            f"got shape {list(label.shape)}"
        )
    return label[..., :16].unflatten(-1, (4, 4)), label[..., 16:].unflatten(-1, (3, 3))


def default_label(
    yaw: float | torch.Tensor = 0.0,
    pitch: float | torch.Tensor = 0.0,
    radius: float = FFHQ_RADIUS,
    look_at: Sequence[float] = FFHQ_LOOK_AT,
    focal: float = FFHQ_FOCAL,
    principal: float = FFHQ_PRINCIPAL,
) -> torch.Tensor:
    """Camera label(s) for EG3D yaw/pitch in radians (scalars -> [25], tensors [F] -> [F, 25]).

    The same camera as EG3D's `LookAtPoseSampler.sample(pi/2 + yaw, pi/2 + pitch, look_at,
    radius=radius)` with these intrinsics (pitch uses EG3D's arccos mapping, see module doc).
    """
    origin = orbit_origin(yaw, pitch, radius)
    target = torch.tensor(look_at, dtype=origin.dtype)
    return camera_label(look_at_cam2world(origin, target), intrinsics_matrix(focal, principal))


def orbit_labels(
    n_frames: int,
    yaw_range: float = math.radians(35.0),
    pitch_range: float = 0.0,
    **camera: float,
) -> torch.Tensor:
    """A looping turntable path: yaw sweeps +-yaw_range (sine), pitch bobs +-pitch_range.

    Returns [n_frames, 25]; the first frame is frontal, the path returns to it.
    """
    if n_frames < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    t = torch.arange(n_frames, dtype=torch.float32) / n_frames * (2 * math.pi)
    return default_label(yaw_range * torch.sin(t), pitch_range * torch.sin(2 * t), **camera)
