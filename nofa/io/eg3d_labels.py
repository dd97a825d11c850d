"""EG3D camera labels: Deep3DFaceRecon pose -> EG3D label, and EG3D's `dataset.json`.

A label is 25 numbers: the 4x4 cam2world matrix (row-major, OpenCV camera axes) and the 3x3
intrinsics normalised by the image size. `dataset.json` holds
`{"labels": [[file name, [25 floats]], ...]}` (EG3D's / StyleGAN's dataset tool layout).

Deep3DFaceRecon -> EG3D follows the published facts of EG3D's FFHQ preprocessing ("orig"
mode; see docs/faces.md): R is the matrix Deep3DFaceRecon's `compute_rotation(angle)`
returns, which is the transpose of Rz(angle[2]) Ry(angle[1]) Rx(angle[0]); then
trans[2] -= 10; c = -R trans; c *= 0.27; c[1] += 0.006; c[2] += 0.161; cam2world =
[[R diag(1, -1, -1), c], [0, 1]]; finally the camera position is rescaled to radius 2.7.
Intrinsics: focal 2985.29 / 700 = 4.2647, principal point 0.5.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from .atomic import atomic_write_bytes

__all__ = [
    "EG3D_FOCAL",
    "EG3D_PRINCIPAL",
    "EG3D_RADIUS",
    "LabelFileError",
    "deep3d_rotation",
    "deep3d_to_eg3d_label",
    "deep3d_to_eg3d_labels",
    "eg3d_label_to_deep3d",
    "eg3d_intrinsics",
    "read_dataset_json",
    "write_dataset_json",
]

EG3D_FOCAL = 2985.29 / 700  # Deep3DFaceRecon's focal (1015 at 224 px) after EG3D's crop: 4.2647
EG3D_PRINCIPAL = 0.5
EG3D_RADIUS = 2.7
_SCALE = 0.27
_OFFSET = np.array([0.0, 0.006, 0.161])
_FLIP = np.diag([1.0, -1.0, -1.0])


class LabelFileError(ValueError):
    """A dataset.json (or a label in it) has the wrong layout."""


def eg3d_intrinsics(focal: float = EG3D_FOCAL, principal: float = EG3D_PRINCIPAL) -> np.ndarray:
    """Normalised intrinsics [3, 3]."""
    return np.array([[focal, 0.0, principal], [0.0, focal, principal], [0.0, 0.0, 1.0]])


def deep3d_rotation(angle) -> np.ndarray:
    """What Deep3DFaceRecon's `compute_rotation` returns for angles [3] (x, y, z, radians):
    (Rz Ry Rx)^T, [3, 3]."""
    x, y, z = (float(a) for a in _vec3(angle, "angle"))
    rx = np.array([[1, 0, 0], [0, math.cos(x), -math.sin(x)], [0, math.sin(x), math.cos(x)]])
    ry = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    rz = np.array([[math.cos(z), -math.sin(z), 0], [math.sin(z), math.cos(z), 0], [0, 0, 1]])
    return (rz @ ry @ rx).T


def _vec3(v, name: str) -> np.ndarray:
    a = np.asarray(v, dtype=np.float64).reshape(-1)
    if a.shape != (3,) or not np.isfinite(a).all():
        raise ValueError(
            f"{name} must be 3 finite numbers, got {np.asarray(v).shape} "
            f"{np.asarray(v).ravel()[:6]}"
        )
    return a


def deep3d_to_eg3d_label(
    angle,
    trans,
    radius: float | None = EG3D_RADIUS,
    focal: float = EG3D_FOCAL,
    principal: float = EG3D_PRINCIPAL,
) -> np.ndarray:
    """Deep3DFaceRecon pose (angle [3] radians, trans [3]) -> EG3D label [25] (float64).

    radius=None skips the final rescale of the camera position (EG3D's "orig" mode uses 2.7).
    """
    r = deep3d_rotation(angle)
    t = _vec3(trans, "trans").copy()
    t[2] -= 10.0
    c = -r @ t * _SCALE + _OFFSET
    pose = np.eye(4)
    pose[:3, :3] = r @ _FLIP
    pose[:3, 3] = c
    if radius is not None:
        pose[:3, 3] *= radius / np.linalg.norm(c)
    return np.concatenate([pose.reshape(16), eg3d_intrinsics(focal, principal).reshape(9)])


def deep3d_to_eg3d_labels(angle, trans) -> np.ndarray:
    """Deep3DFaceRecon poses (angle [T, 3] radians, trans [T, 3]) -> EG3D labels [T, 25]
    (float32): :func:`deep3d_to_eg3d_label` with its defaults (radius 2.7, focal 4.2647,
    principal point 0.5), frame by frame."""
    angle = np.asarray(angle, np.float64).reshape(-1, 3)
    trans = np.asarray(trans, np.float64).reshape(-1, 3)
    return np.stack([deep3d_to_eg3d_label(a, t) for a, t in zip(angle, trans)]).astype(np.float32)


def eg3d_label_to_deep3d(label, trans_z: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`deep3d_to_eg3d_label` -> (angle [3], trans [3]).

    The radius rescale forgets the camera distance, so one number must be given: the
    Deep3DFaceRecon depth translation `trans_z` (near 0 for its aligned crops).
    """
    lab = _check_label(label, "label")
    pose = lab[:16].reshape(4, 4)
    r = pose[:3, :3] @ _FLIP
    m = r.T  # = Rz Ry Rx
    y = math.asin(float(np.clip(-m[2, 0], -1, 1)))
    x = math.atan2(m[2, 1], m[2, 2])
    z = math.atan2(m[1, 0], m[0, 0])
    p = pose[:3, 3]
    # trans' = -R^T (lam p - offset) / 0.27 is linear in lam; pick lam so trans'_z = trans_z - 10.
    a = -(r.T @ p)[2] / _SCALE
    b = (r.T @ _OFFSET)[2] / _SCALE
    if abs(a) < 1e-12:
        raise ValueError("label: the camera position is degenerate (zero depth component)")
    lam = (trans_z - 10.0 - b) / a
    t = -r.T @ (lam * p - _OFFSET) / _SCALE
    t[2] += 10.0
    return np.array([x, y, z]), t


def _check_label(label, name: str) -> np.ndarray:
    a = np.asarray(label, dtype=np.float64)
    if a.shape != (25,):
        raise LabelFileError(
            f"{name}: an EG3D label has 25 numbers (16 cam2world + 9 intrinsics), "
            f"got shape {list(a.shape)}"
        )
    if not np.isfinite(a).all():
        raise LabelFileError(f"{name}: the label has NaN or infinite values")
    return a


def read_dataset_json(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """EG3D `dataset.json` -> {file name: label [25] float64}, in file order."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"dataset.json not found: {path}")
    try:
        data = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise LabelFileError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(data, dict) or "labels" not in data:
        raise LabelFileError(
            f"{path}: expected an object with a 'labels' key, got "
            f"{sorted(data) if isinstance(data, dict) else type(data).__name__}"
        )
    entries = data["labels"]
    if not isinstance(entries, list):
        raise LabelFileError(
            f"{path}: 'labels' must be a list of [name, [25 numbers]], got {type(entries).__name__}"
        )
    out: dict[str, np.ndarray] = {}
    for i, e in enumerate(entries):
        if not (
            isinstance(e, list) and len(e) == 2 and isinstance(e[0], str) and isinstance(e[1], list)
        ):
            raise LabelFileError(
                f"{path}: labels[{i}] must be [name, [25 numbers]], got {str(e)[:80]}"
            )
        if e[0] in out:
            raise LabelFileError(f"{path}: duplicate file name {e[0]!r} in 'labels'")
        try:
            out[e[0]] = _check_label(e[1], f"{path}: labels[{i}] ({e[0]})")
        except (TypeError, ValueError) as err:
            raise LabelFileError(
                str(err)
                if isinstance(err, LabelFileError)
                else f"{path}: labels[{i}] ({e[0]}): not numbers ({err})"
            ) from err
    return out


def write_dataset_json(
    path: str | os.PathLike, labels: Mapping[str, object] | Iterable[tuple[str, object]]
) -> Path:
    """Write {name: label [25]} (or (name, label) pairs) as EG3D's dataset.json, atomically."""
    items = list(labels.items()) if isinstance(labels, Mapping) else list(labels)
    rows, seen = [], set()
    for i, item in enumerate(items):
        if not (isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], str)):
            raise ValueError(f"labels[{i}] must be (file name, label [25]), got {str(item)[:80]}")
        name, lab = item
        if name in seen:
            raise ValueError(f"labels: duplicate file name {name!r}")
        seen.add(name)
        rows.append([name, [float(v) for v in _check_label(lab, f"labels[{i}] ({name})")]])
    return atomic_write_bytes((json.dumps({"labels": rows}, indent=1) + "\n").encode(), path)
