"""FFHQ/EG3D-style face alignment from the 68 landmarks.

The crop is FFHQ's alignment quad (Karras et al., `recreate_aligned_images` of the FFHQ
dataset tools) computed from the eye and mouth landmarks:

    eye_left, eye_right = mean(lm[36:42]), mean(lm[42:48]);  eye_avg = their mean
    mouth_avg = (lm[48] + lm[54]) / 2;  eye_to_eye = eye_right - eye_left
    eye_to_mouth = mouth_avg - eye_avg
    x = eye_to_eye - rot90(eye_to_mouth), normalised, times max(2 |eye_to_eye|, 1.8 |eye_to_mouth|)
    y = rot90(x);  c = eye_avg + 0.1 eye_to_mouth;  quad = c -x -y, c -x +y, c +x +y, c +x -y

rescaled to the EG3D in-the-wild crop: the square with centre c + EG3D_SHIFT * y and half side
EG3D_SCALE * |x| (along the quad's axes, so head roll is removed as in FFHQ). EG3D itself
crops with Deep3DFaceRecon's 5-point `align_img` (target 1024, rescale factor 300, centre crop
700, resize 512) which needs the BFM landmark file; nofa does not ship BFM, so the two
constants are calibrated instead so that a frontal render of nofa's template head at the
EG3D default camera (radius 2.7, focal 4.2647, looking at (0, 0, 0.2)) is its own crop:
a frontal face aligned here lands where EG3D-convention renders put it (docs/faces.md).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .photo import as_rgb8, warp_affine

__all__ = [
    "EG3D_SCALE",
    "EG3D_SHIFT",
    "AlignedFace",
    "align_face",
    "crop_square",
    "ffhq_quad",
    "paste_back",
]

EG3D_SCALE = 1.164
EG3D_SHIFT = 0.013


def _check_landmarks(landmarks: np.ndarray) -> np.ndarray:
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape != (68, 2) or not np.isfinite(lm).all():
        raise ValueError(
            f"landmarks must be 68 finite (x, y) points [68, 2], got shape {list(lm.shape)}"
        )
    return lm


def ffhq_quad(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """FFHQ's alignment frame from 68 landmarks [68, 2]: centre c [2], half-axes x [2], y [2]."""
    lm = _check_landmarks(landmarks)
    eye_left, eye_right = lm[36:42].mean(0), lm[42:48].mean(0)
    eye_avg = (eye_left + eye_right) / 2
    eye_to_eye = eye_right - eye_left
    mouth_avg = (lm[48] + lm[54]) / 2
    eye_to_mouth = mouth_avg - eye_avg
    x = eye_to_eye - np.array([-eye_to_mouth[1], eye_to_mouth[0]])
    x = x / np.hypot(*x) * max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y = np.array([-x[1], x[0]])
    c = eye_avg + eye_to_mouth * 0.1
    return c, x, y


def crop_square(
    landmarks: np.ndarray, scale: float | None = None, shift: float | None = None
) -> np.ndarray:
    """The EG3D crop as a 3x3 map from unit-square coordinates (0..1, x right, y down) to the
    photo."""
    c, x, y = ffhq_quad(landmarks)
    scale = EG3D_SCALE if scale is None else scale
    shift = EG3D_SHIFT if shift is None else shift
    centre = c + shift * y
    m = np.eye(3)
    m[:2, 0] = 2 * scale * x
    m[:2, 1] = 2 * scale * y
    m[:2, 2] = centre - scale * (x + y)
    return m


@dataclasses.dataclass
class AlignedFace:
    image: np.ndarray  # uint8 [S, S, 3]
    crop_to_photo: np.ndarray  # [3, 3] similarity: crop pixel coords (x, y) -> photo coords
    landmarks: np.ndarray  # [68, 2] in crop pixel coords (pixel centres at +0.5)
    photo_landmarks: np.ndarray  # [68, 2] in photo coords

    @property
    def size(self) -> int:
        return self.image.shape[0]

    @property
    def photo_to_crop(self) -> np.ndarray:
        return np.linalg.inv(self.crop_to_photo)

    @property
    def quad(self) -> np.ndarray:
        """Corners of the crop in the photo [4, 2]: top-left, bottom-left, bottom-right,
        top-right."""
        s = self.size
        pts = np.array([[0, 0, 1], [0, s, 1], [s, s, 1], [s, 0, 1]], float)
        return (pts @ self.crop_to_photo.T)[:, :2]


def align_face(
    image,
    landmarks: np.ndarray,
    size: int = 512,
    mode: str = "edge",
    scale: float | None = None,
    shift: float | None = None,
) -> AlignedFace:
    """The EG3D-style aligned crop [size, size, 3] of `image` for 68 `landmarks` (photo pixels).

    Pixels outside the photo repeat its border (`mode` as in skimage.transform.warp).
    The returned `crop_to_photo` pastes results back (:func:`paste_back`).
    """
    if not isinstance(size, (int, np.integer)) or size < 8:
        raise ValueError(f"size must be an integer >= 8, got {size!r}")
    img = as_rgb8(image)
    lm = _check_landmarks(landmarks)
    unit = crop_square(lm, scale, shift)
    to_unit = np.diag([1.0 / size, 1.0 / size, 1.0])
    crop_to_photo = unit @ to_unit
    crop = warp_affine(img, crop_to_photo, (size, size), order=3 if size > 256 else 1, mode=mode)
    inv = np.linalg.inv(crop_to_photo)
    return AlignedFace(crop, crop_to_photo, lm @ inv[:2, :2].T + inv[:2, 2], lm)


def paste_back(crop, photo, aligned: AlignedFace, feather: float = 0.02) -> np.ndarray:
    """Put a (processed) crop [S', S', 3] back into the photo it came from -> uint8 [H, W, 3].

    The crop may have any size (it is rescaled onto the aligned square); its border is
    feathered over `feather` of the side to hide the seam.
    """
    photo = as_rgb8(photo, "photo")
    crop = as_rgb8(crop, "crop")
    h, w = photo.shape[:2]
    s = crop.shape[0]
    m = np.diag([s / aligned.size, s / aligned.size, 1.0]) @ aligned.photo_to_crop
    warped = warp_affine(crop, m, (h, w), mode="constant").astype(np.float32)
    ramp = np.minimum(np.arange(s) + 0.5, s - np.arange(s) - 0.5) / max(feather * s, 1e-6)
    alpha = np.clip(np.minimum(ramp[:, None], ramp[None, :]), 0, 1)
    alpha = warp_affine((alpha[..., None] * 255).astype(np.uint8), m, (h, w), mode="constant")
    a = alpha.astype(np.float32) / 255
    return np.clip(np.round(photo * (1 - a) + warped * a), 0, 255).astype(np.uint8)
