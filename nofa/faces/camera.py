"""The EG3D camera label of a face from its 68 landmarks, in the frame of EG3D's own labels.

EG3D's FFHQ labels are Deep3DFaceRecon poses converted by a fixed rule
(:func:`nofa.io.eg3d_labels.deep3d_to_eg3d_label`). This module estimates that pose the way
Deep3DFaceRecon defines it, with its published camera and the Basel Face Model mean face
(:func:`nofa.faces.eg3d_crop.bfm_landmarks68`, MIT), then converts it with that rule:

- the landmarks are put on Deep3DFaceRecon's aligned 224 crop
  (:func:`nofa.faces.eg3d_crop.deep3d_landmarks`: five-point POS alignment, rescale 102;
  y up);
- a point v of the face (BFM units, row vector) goes to `v R + trans`, R =
  `compute_rotation(angle)` (:func:`nofa.io.eg3d_labels.deep3d_rotation`), seen by a
  perspective camera at z = 10 looking down -z with focal 1015 px and principal point
  (112, 112): `x = 1015 X / (10 - Z) + 112`, likewise y;
- angle [3] and trans [3] are fitted to the landmarks by robust least squares (scipy
  `least_squares`, Huber loss at 2 px of the 224 crop, dlib's own noise level, so a few
  wrong points cannot pull the pose), started from straight ahead and 35 degrees to
  either side; the best fit wins.

The 17 jaw-contour points are not fitted by default (`weights`): dlib puts them on the
visible outline of the cheek, the BFM on fixed mesh vertices up to 0.7 units behind the eyes,
and the two part as soon as the head turns (at 20 degrees of yaw the far side's contour
vertices project 4x closer to the nose than the near side's).

Each estimate carries a confidence from its residual and a 1-sigma uncertainty of yaw and
pitch from the fit's covariance, and a list of problems that make it unreliable: a turn over
50 degrees (dlib's 68 points are unreliable there: its training faces are mostly nearer
frontal and its points on the hidden side are guesses), the hidden side's landmarks
collapsed onto the nose, or a residual no face shape explains.
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np

from ..io.eg3d_labels import (
    EG3D_FOCAL,
    EG3D_PRINCIPAL,
    deep3d_rotation,
    deep3d_to_eg3d_label,
)
from .eg3d_crop import DEEP3D_SIZE, bfm_landmarks68, deep3d_landmarks

__all__ = [
    "DEEP3D_CAMERA_DISTANCE",
    "DEEP3D_FOCAL",
    "DEFAULT_WEIGHTS",
    "MAX_RELIABLE_YAW",
    "CameraFit",
    "UnreliablePoseError",
    "deep3d_project",
    "estimate_camera",
    "fit_deep3d_pose",
    "label_from_cam2world",
    "position_angles",
    "view_angles",
]

DEEP3D_FOCAL = 1015.0
DEEP3D_CAMERA_DISTANCE = 10.0
DEEP3D_CENTER = DEEP3D_SIZE / 2
# Huber threshold of the fit, pixels of the 224 crop: dlib's landmark noise on a sharp face.
ROBUST_PX = 2.0
# Beyond this view yaw (degrees) dlib's 68 points are not trusted (module docstring).
MAX_RELIABLE_YAW = 50.0
# The confidence is exp(-1/2 (sigma / _CONFIDENCE_DEG)^2), sigma the larger of the fit's 1-sigma
# yaw and pitch uncertainties: 0.61 at 3 degrees (the accuracy EG3D's labels need), 0.14 at 6.
_CONFIDENCE_DEG = 3.0
# A residual no face shape explains (224 px): the landmarks are not a face's.
_MAX_RMS = 10.0
# The hidden side has collapsed when its jaw contour lies this close to the nose line,
# relative to the visible side's (dlib: ~1 on a frontal face, ~0.05 at 48 degrees of yaw).
_MIN_JAW_RATIO = 0.02

DEFAULT_WEIGHTS = np.ones(68)
DEFAULT_WEIGHTS[:17] = 0.0  # the jaw contour: a silhouette for dlib, fixed vertices in BFM
DEFAULT_WEIGHTS.setflags(write=False)


class UnreliablePoseError(ValueError):
    """The landmarks cannot give a trustworthy camera (turned too far, or not a face's)."""


@dataclasses.dataclass
class CameraFit:
    label: np.ndarray  # [25] EG3D label: cam2world (16, row-major, OpenCV axes) + intrinsics (9)
    yaw: float  # degrees, view_angles() of the camera
    pitch: float  # degrees
    rms_px: float  # RMS reprojection error of the fitted landmarks, pixels of the 224 crop
    inliers: int  # fitted landmarks within 3 * ROBUST_PX of their projection
    angle: np.ndarray  # [3] Deep3DFaceRecon angles (radians, x, y, z)
    trans: np.ndarray  # [3] Deep3DFaceRecon translation (BFM units)
    confidence: float  # 0..1: exp(-1/2 (max(std_deg) / 3)^2), 0 when unreliable
    std_deg: np.ndarray  # [2] 1-sigma uncertainty of yaw, pitch (degrees) from the fit
    problems: tuple[str, ...] = ()  # why the estimate is unreliable; empty when it is fine

    @property
    def cam2world(self) -> np.ndarray:
        return self.label[:16].reshape(4, 4)

    @property
    def reliable(self) -> bool:
        return not self.problems


def label_from_cam2world(
    cam2world: np.ndarray, focal: float = EG3D_FOCAL, principal: float = EG3D_PRINCIPAL
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


def deep3d_project(angle, trans, points: np.ndarray | None = None) -> np.ndarray:
    """Deep3DFaceRecon's camera: face points [N, 3] (default: the BFM mean face's 68
    landmarks) posed by angle [3] (radians) and trans [3] -> [N, 2] pixels of its 224 crop,
    y up."""
    pts = bfm_landmarks68() if points is None else np.asarray(points, np.float64)
    v = pts @ deep3d_rotation(angle) + np.asarray(trans, np.float64)
    z = DEEP3D_CAMERA_DISTANCE - v[:, 2]
    return DEEP3D_FOCAL * v[:, :2] / z[:, None] + DEEP3D_CENTER


def _check_weights(weights) -> np.ndarray:
    w = np.asarray(weights, np.float64)
    if w.shape != (68,) or not np.isfinite(w).all() or (w < 0).any() or (w > 0).sum() < 6:
        raise ValueError(
            "weights must be 68 finite non-negative numbers [68], at least 6 of them positive, "
            f"got shape {list(w.shape)}"
        )
    return w


def fit_deep3d_pose(
    landmarks_224: np.ndarray, weights: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Robust fit of Deep3DFaceRecon's pose to landmarks on its aligned crop.

    landmarks_224: [68, 2] pixels of the 224 crop, y up (:func:`deep3d_landmarks`);
    weights: [68] per landmark (default DEFAULT_WEIGHTS). Returns angle [3] (radians),
    trans [3], the residuals [68, 2] (pixels) and the covariance [6, 6] of (angle, trans)
    estimated from the robust residual.
    """
    from scipy.optimize import least_squares

    obs = np.asarray(landmarks_224, np.float64)
    if obs.shape != (68, 2) or not np.isfinite(obs).all():
        raise ValueError(
            f"landmarks_224 must be 68 finite (x, y) points [68, 2], got shape {list(obs.shape)}"
        )
    w = _check_weights(DEFAULT_WEIGHTS if weights is None else weights)
    sw = np.repeat(np.sqrt(w), 2)

    def residual(p: np.ndarray) -> np.ndarray:
        return (deep3d_project(p[:3], p[3:]) - obs).ravel() * sw

    best = None
    for yaw0 in (0.0, math.radians(35), -math.radians(35)):
        sol = least_squares(
            residual, np.array([0.0, yaw0, 0.0, 0.0, 0.0, 0.0]), loss="huber", f_scale=ROBUST_PX
        )
        if best is None or sol.cost < best.cost:
            best = sol
    res = deep3d_project(best.x[:3], best.x[3:]) - obs
    # Covariance of an M-estimate: sigma^2 (J^T W J)^-1 with W the Huber weights at the
    # solution (1 inside ROBUST_PX, ROBUST_PX / |r| beyond) and sigma^2 the weighted residual
    # variance per degree of freedom; J by central differences (6 parameters).
    r = (res.ravel() * sw).reshape(-1)
    hw = np.minimum(1.0, ROBUST_PX / np.maximum(np.abs(r), 1e-12))
    jac = np.empty((r.size, 6))
    for i in range(6):
        d = np.zeros(6)
        d[i] = 1e-6
        jac[:, i] = (residual(best.x + d) - residual(best.x - d)) / 2e-6
    dof = max(1, 2 * int((w > 0).sum()) - 6)
    sigma2 = float((hw * r**2).sum()) / dof
    try:
        cov = sigma2 * np.linalg.inv(jac.T @ (hw[:, None] * jac))
    except np.linalg.LinAlgError:
        cov = np.full((6, 6), np.inf)
    return best.x[:3].copy(), best.x[3:].copy(), res, cov


def _jaw_ratio(landmarks: np.ndarray) -> float:
    """How far the jaw contour of the narrower side reaches from the nose line, relative to
    the wider side's (image landmarks [68, 2]); ~1 frontal, -> 0 as one side hides."""
    eyes = landmarks[42:48].mean(0) - landmarks[36:42].mean(0)
    ex = eyes / max(np.linalg.norm(eyes), 1e-9)  # roll removed: measure along the eye line
    x = landmarks @ ex
    nose = x[27:31].mean()
    left, right = np.median(nose - x[0:5]), np.median(x[12:17] - nose)
    wide = max(left, right)
    return float(min(left, right) / wide) if wide > 0 else 0.0


def estimate_camera(
    landmarks: np.ndarray,
    image_size: int | tuple[int, int],
    *,
    weights: np.ndarray | None = None,
    name: str = "landmarks",
    on_unreliable: str = "warn",
) -> CameraFit:
    """EG3D label of a face from its 68 landmarks [68, 2] (image pixels, x right, y down,
    centres at +0.5), in the frame of EG3D's own labels (module docstring).

    image_size: the image's (height, width) (or its side, square). The alignment normalises
    scale and position, so the landmarks of the photo and of any crop of it give the same
    camera. weights: [68] per landmark (default DEFAULT_WEIGHTS: the jaw contour 0).
    on_unreliable: "warn" (a UserWarning naming `name` and the reason), "raise"
    (:class:`UnreliablePoseError`) or "ignore"; CameraFit.problems holds the reasons either way.
    """
    if on_unreliable not in ("warn", "raise", "ignore"):
        raise ValueError(
            f"on_unreliable must be 'warn', 'raise' or 'ignore', got {on_unreliable!r}"
        )
    lm = np.asarray(landmarks, np.float64)
    if lm.shape != (68, 2) or not np.isfinite(lm).all():
        raise ValueError(
            f"{name}: landmarks must be 68 finite (x, y) points [68, 2], got shape {list(lm.shape)}"
        )
    shape = (image_size, image_size) if np.isscalar(image_size) else tuple(image_size)
    obs = deep3d_landmarks(lm, shape)
    w = _check_weights(DEFAULT_WEIGHTS if weights is None else weights)
    angle, trans, res, cov = fit_deep3d_pose(obs, w)
    label = deep3d_to_eg3d_label(angle, trans)
    yaw, pitch = view_angles(label[:16].reshape(4, 4))
    used = w > 0
    err = np.hypot(res[:, 0], res[:, 1])[used]
    rms = float(np.sqrt(np.average(err**2, weights=w[used])))
    # Deep3DFaceRecon's angle[1] turns the head about y (yaw), angle[0] about x (pitch); the
    # view angles of the label follow them one to one near frontal.
    std = np.degrees(np.sqrt(np.clip(np.diag(cov)[[1, 0]], 0, None)))
    problems = []
    if abs(yaw) > MAX_RELIABLE_YAW:
        problems.append(
            f"the head is turned {abs(yaw):.0f} degrees (over {MAX_RELIABLE_YAW:.0f}): dlib's "
            "68 landmarks are unreliable there"
        )
    ratio = _jaw_ratio(lm)
    if ratio < _MIN_JAW_RATIO:
        problems.append(
            f"one side of the face is hidden (its jaw contour reaches {max(ratio, 0):.0%} as "
            "far from the nose as the other side's): the head is turned too far for dlib's "
            "68 landmarks"
        )
    if rms > _MAX_RMS:
        problems.append(
            f"the landmarks do not fit a face (RMS {rms:.1f} px at 224, over {_MAX_RMS:.0f})"
        )
    sigma = float(np.max(std)) if np.isfinite(std).all() else math.inf
    confidence = 0.0 if problems else float(math.exp(-0.5 * (sigma / _CONFIDENCE_DEG) ** 2))
    fit = CameraFit(
        label=label,
        yaw=yaw,
        pitch=pitch,
        rms_px=rms,
        inliers=int((err < 3 * ROBUST_PX).sum()),
        angle=angle,
        trans=trans,
        confidence=confidence,
        std_deg=std,
        problems=tuple(problems),
    )
    if problems and on_unreliable != "ignore":
        msg = f"{name}: unreliable camera estimate: " + "; ".join(problems)
        if on_unreliable == "raise":
            raise UnreliablePoseError(msg)
        warnings.warn(msg, stacklevel=2)
    return fit
