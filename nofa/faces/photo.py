"""Reading photos of any kind into 8-bit RGB arrays for face analysis."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..io.images import ImageFileError

__all__ = ["as_rgb8", "load_photo", "warp_affine"]


def as_rgb8(image: np.ndarray, name: str = "image") -> np.ndarray:
    """Any image array -> uint8 [H, W, 3].

    Accepts [H, W] grey, [H, W, 1|3|4] (alpha is composited over white), uint8, uint16
    (16-bit: scaled by 1/257), bool, or floats in 0..1. Raises ValueError otherwise.
    """
    a = np.asarray(image)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4) or a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError(
            f"{name}: expected an image [H, W], [H, W, 1], [H, W, 3] or [H, W, 4], "
            f"got shape {list(a.shape)}"
        )
    if a.dtype == np.uint8:
        f = a.astype(np.float32) / 255
    elif a.dtype == np.uint16:
        f = a.astype(np.float32) / 65535
    elif a.dtype == bool:
        f = a.astype(np.float32)
    elif np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all():
            raise ValueError(f"{name}: the image has NaN or infinite values")
        f = np.clip(a.astype(np.float32), 0, 1)
    else:
        raise ValueError(
            f"{name}: unsupported pixel type {a.dtype} (expected uint8, uint16, bool or float)"
        )
    if f.shape[2] == 4:
        alpha = f[..., 3:]
        f = f[..., :3] * alpha + (1 - alpha)
    elif f.shape[2] == 1:
        f = np.repeat(f, 3, axis=2)
    return np.ascontiguousarray(np.round(f * 255).astype(np.uint8))


def load_photo(path: str | os.PathLike) -> np.ndarray:
    """Read a photo file as uint8 [H, W, 3]: EXIF orientation applied, grey / RGBA / 16-bit /
    palette images converted (alpha over white)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"photo not found: {path}")
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(im)
                arr = arr.astype(np.uint16) if arr.max() < 65536 else (arr >> 16).astype(np.uint16)
                if im.mode == "I" and arr.max() < 256:
                    arr = arr.astype(np.uint8)
                return as_rgb8(arr, str(path))
            if im.mode == "P" or im.mode == "LA" or im.mode == "PA":
                im = im.convert("RGBA")
            elif im.mode not in ("L", "RGB", "RGBA"):
                im = im.convert("RGB")
            return as_rgb8(np.asarray(im), str(path))
    except UnidentifiedImageError as e:
        raise ImageFileError(f"{path}: not an image file PIL can read") from e


def warp_affine(
    image: np.ndarray,
    out_to_in: np.ndarray,
    shape: tuple[int, int],
    order: int = 1,
    mode: str = "edge",
) -> np.ndarray:
    """Resample uint8 [H, W, C] through a 2x3 (or 3x3) map from output to input coordinates.

    Coordinates are continuous image-plane positions (x, y), pixel centres at integer + 0.5,
    the convention of every landmark in nofa.faces. Returns uint8 [shape[0], shape[1], C].
    """
    from skimage.transform import AffineTransform, warp

    m = np.eye(3)
    m[:2] = np.asarray(out_to_in, dtype=np.float64)[:2]
    half = np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1]])
    unhalf = np.array([[1, 0, -0.5], [0, 1, -0.5], [0, 0, 1]])
    out = warp(
        image,
        AffineTransform(matrix=unhalf @ m @ half),
        output_shape=tuple(shape),
        order=order,
        mode=mode,
        preserve_range=True,
    )
    return np.clip(np.round(out), 0, 255).astype(np.uint8)
