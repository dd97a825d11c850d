"""The aligned face crop of a photo (EG3D's in-the-wild crop) and pasting results back.

:func:`align_face` is :func:`nofa.faces.eg3d_crop.eg3d_crop` (Deep3DFaceRecon's five-point
alignment against the BFM mean face, rescale 300, 1024 square, centre 700 resized to the crop
size with Lanczos) wrapped with the landmarks and the transform both ways, so results can be
pasted back (:func:`paste_back`). docs/faces.md, "Crop".
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .eg3d_crop import eg3d_crop
from .photo import as_rgb8, warp_affine

__all__ = ["AlignedFace", "align_face", "paste_back"]


@dataclasses.dataclass
class AlignedFace:
    image: np.ndarray  # uint8 [S, S, 3]
    crop_to_photo: np.ndarray  # [3, 3] axis-aligned scale + shift: crop pixels (x, y) -> photo
    landmarks: np.ndarray  # [68, 2] in crop pixels (pixel centres at +0.5)
    photo_landmarks: np.ndarray  # [68, 2] in photo pixels

    @property
    def size(self) -> int:
        return self.image.shape[0]

    @property
    def photo_to_crop(self) -> np.ndarray:
        """[3, 3]: photo pixels -> crop pixels (the affine eg3d_crop returns, as 3x3)."""
        return np.linalg.inv(self.crop_to_photo)

    @property
    def quad(self) -> np.ndarray:
        """Corners of the crop in the photo [4, 2]: top-left, bottom-left, bottom-right,
        top-right."""
        s = self.size
        pts = np.array([[0, 0, 1], [0, s, 1], [s, s, 1], [s, 0, 1]], float)
        return (pts @ self.crop_to_photo.T)[:, :2]


def align_face(image, landmarks: np.ndarray, size: int = 512, padding: str = "fade") -> AlignedFace:
    """EG3D's aligned crop [size, size, 3] of `image` for its 68 `landmarks` [68, 2] (photo
    pixels, x right, y down, centres at +0.5).

    padding: how pixels outside the photo are filled, "fade" (mirrored, blurred, faded to the
    photo's median colour; the default) or "black" (EG3D's own), see nofa.faces.eg3d_crop.
    The returned `crop_to_photo` pastes results back (:func:`paste_back`).
    """
    img = as_rgb8(image)
    crop, photo_to_crop = eg3d_crop(img, landmarks, size, padding=padding)
    lm = np.asarray(landmarks, np.float64)
    m = np.eye(3)
    m[:2] = photo_to_crop
    return AlignedFace(
        crop, np.linalg.inv(m), lm @ photo_to_crop[:, :2].T + photo_to_crop[:, 2], lm
    )


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
