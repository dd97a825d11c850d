"""The EG3D camera label of an aligned face crop from its 68 landmarks.

Robust pose fitting: the rotation and translation of the 3D landmark model
(:mod:`nofa.faces.landmarks3d`, in EG3D world units; by default LANDMARK_VIEW_MODEL, whose
points move with the view direction as dlib's do) that best project onto the detected
inner landmarks (weighted, LANDMARK_WEIGHTS) through the crop's fixed normalised intrinsics
(focal 4.2647, principal point 0.5), by scipy's least squares with a soft-L1 (robust) loss, started
from a few yaw
guesses. The camera is then the inverse pose (the head stays at the world origin, as in
EG3D), its position rescaled to radius 2.7 as EG3D's FFHQ labels are.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from .landmarks3d import INNER, LANDMARK_VIEW_MODEL, LANDMARK_WEIGHTS, landmarks_seen_from

__all__ = ["CameraFit", "estimate_camera", "label_from_cam2world", "view_angles", "position_angles"]

FOCAL = 4.2647
PRINCIPAL = 0.5
RADIUS = 2.7


@dataclasses.dataclass
class CameraFit:
    label: np.ndarray  # [25] EG3D label: cam2world (16, row-major, OpenCV axes) + intrinsics (9)
    yaw: float  # degrees, view_angles() of the camera
    pitch: float  # degrees
    rms_px: float  # reprojection error of the fitted points before the radius rescale, pixels
    inliers: int  # fitted points with a residual under 3 % of the image side

    @property
    def cam2world(self) -> np.ndarray:
        return self.label[:16].reshape(4, 4)


def _rotvec_to_matrix(r: np.ndarray) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.from_rotvec(r).as_matrix()


def label_from_cam2world(
    cam2world: np.ndarray, focal: float = FOCAL, principal: float = PRINCIPAL
) -> np.ndarray:
    """[4, 4] cam2world -> [25] label with normalised intrinsics."""
    k = np.array([[focal, 0, principal], [0, focal, principal], [0, 0, 1]], dtype=np.float64)
    return np.concatenate([np.asarray(cam2world, np.float64).reshape(16), k.reshape(9)])


def view_angles(cam2world: np.ndarray) -> tuple[float, float]:
    """Yaw and pitch (degrees) of a camera's viewing direction: yaw > 0 when the camera sits
    towards +x (the subject's left) looking back at the face, pitch > 0 when it sits below the
    face looking up (EG3D LookAtPoseSampler signs). Rotation only: translation plays no part."""
    f = np.asarray(cam2world, np.float64)[:3, 2]
    f = f / np.linalg.norm(f)
    return math.degrees(math.atan2(-f[0], -f[2])), math.degrees(math.asin(np.clip(f[1], -1, 1)))


def position_angles(cam2world: np.ndarray) -> tuple[float, float]:
    """Yaw and pitch (degrees) of the camera position around the world origin (the angles EG3D's
    LookAtPoseSampler takes), same signs as :func:`view_angles`."""
    p = np.asarray(cam2world, np.float64)[:3, 3]
    r = np.linalg.norm(p)
    return math.degrees(math.atan2(p[0], p[2])), math.degrees(math.asin(np.clip(-p[1] / r, -1, 1)))


def _frontal_world2cam(yaw: float) -> np.ndarray:
    """World -> camera [3, 4] for a camera at radius 2.7, yaw (radians), looking at the origin."""
    pos = RADIUS * np.array([math.sin(yaw), 0.0, math.cos(yaw)])
    fwd = -pos / np.linalg.norm(pos)
    right = -np.cross([0.0, 1.0, 0.0], fwd)
    right /= np.linalg.norm(right)
    down = np.cross(fwd, right)
    r = np.stack([right, down, fwd])  # rows: camera axes in world
    return np.concatenate([r, (-r @ pos)[:, None]], 1)


def estimate_camera(
    landmarks: np.ndarray,
    image_size: int | tuple[int, int],
    focal: float = FOCAL,
    principal: float = PRINCIPAL,
    points: np.ndarray = INNER,
    template: np.ndarray = LANDMARK_VIEW_MODEL,
    radius: float | None = RADIUS,
    weights: np.ndarray = LANDMARK_WEIGHTS,
    loss: str = "soft_l1",
    robust_scale: float = 0.004,
) -> CameraFit:
    """EG3D label of an image from its 68 landmarks [68, 2] (pixels, centres at +0.5).

    image_size: side (or (height, width)) of the image the landmarks are in; the intrinsics
    are normalised by it. template: the landmark model, [68, 3] rigid points or [3, 68, 3]
    view-dependent (LANDMARK_VIEW_MODEL, docs/faces.md "Camera estimation"). radius: rescale the
    camera position to this distance from the
    world origin (None: keep the fitted one). weights [68]: each landmark's weight in the fit
    (LANDMARK_WEIGHTS: 1 for the points that keep their place across expressions, 0.3 for
    brows, lids and lips, docs/faces.md). loss, robust_scale: scipy least_squares' robust loss
    and its scale as a fraction of the image side.
    """
    from scipy.optimize import least_squares
    from scipy.spatial.transform import Rotation

    lm = np.asarray(landmarks, np.float64)
    if lm.shape != (68, 2) or not np.isfinite(lm).all():
        raise ValueError(
            f"landmarks must be 68 finite (x, y) points [68, 2], got shape {list(lm.shape)}"
        )
    h, w = (image_size, image_size) if np.isscalar(image_size) else image_size
    obs = lm[points] / np.array([w, h], np.float64)
    model = np.asarray(template, np.float64)
    landmarks_seen_from(model, 0.0, 0.0)  # checks the shape
    view_dependent = model.ndim == 3
    X = landmarks_seen_from(model, 0.0, 0.0)[points]
    wts = np.asarray(weights, np.float64)
    if (
        wts.shape != (68,)
        or not np.isfinite(wts).all()
        or (wts < 0).any()
        or not (wts[points] > 0).any()
    ):
        raise ValueError(
            f"weights must be 68 finite non-negative numbers [68], some of the fitted points' "
            f"positive, got shape {list(wts.shape)}"
        )
    wt = np.repeat(wts[points], 2)
    scale_px = max(h, w)

    def reprojection(params: np.ndarray) -> np.ndarray:
        rot = _rotvec_to_matrix(params[:3])
        pts = X
        if view_dependent:
            f = rot[2]  # the camera's viewing direction in world axes (view_angles' convention)
            pts = landmarks_seen_from(
                model, math.atan2(-f[0], -f[2]), math.asin(min(1.0, max(-1.0, f[1])))
            )[points]
        cam = pts @ rot.T + params[3:]
        z = np.maximum(cam[:, 2], 1e-3)
        return (
            np.stack([focal * cam[:, 0] / z, focal * cam[:, 1] / z], 1) + principal - obs
        ).ravel()

    def residual(params: np.ndarray) -> np.ndarray:
        return reprojection(params) * wt

    best = None
    for yaw0 in (0.0, -0.6, 0.6):
        m = _frontal_world2cam(yaw0)
        x0 = np.concatenate([Rotation.from_matrix(m[:, :3]).as_rotvec(), m[:, 3]])
        sol = least_squares(residual, x0, loss=loss, f_scale=robust_scale, x_scale="jac")
        if best is None or sol.cost < best.cost:
            best = sol
    rot = _rotvec_to_matrix(best.x[:3])
    c2w = np.eye(4)
    c2w[:3, :3] = rot.T
    c2w[:3, 3] = -rot.T @ best.x[3:]
    if radius is not None:
        c2w[:3, 3] *= radius / np.linalg.norm(c2w[:3, 3])
    res = reprojection(best.x).reshape(-1, 2) * scale_px
    err = np.hypot(res[:, 0], res[:, 1])
    yaw, pitch = view_angles(c2w)
    return CameraFit(
        label=label_from_cam2world(c2w, focal, principal),
        yaw=yaw,
        pitch=pitch,
        rms_px=float(np.sqrt((err**2).mean())),
        inliers=int((err < 0.03 * scale_px).sum()),
    )
