"""Images and animations: tensors in [-1, 1] <-> uint8 files, depth maps as pictures."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "ImageFileError",
    "check_animation_path",
    "depth_to_rgb",
    "load_image",
    "save_animation",
    "save_image",
    "to_uint8",
]


class ImageFileError(ValueError):
    """A file that is not an image nofa can read."""


# Greyscale modes PIL gives 16-bit (and 32-bit integer) pictures; `convert("RGB")` clips
# them to 255 instead of scaling, which turns a 16-bit grey PNG near-white.
_WIDE_GREY = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def load_image(path: str | os.PathLike, size: int | None = None) -> torch.Tensor:
    """Read an image file as [3, H, W] float32 in [-1, 1] (resized to size x size if given).

    8-bit files map 0..255 to [-1, 1]; 16-bit greyscale files (PIL modes I;16 / I) map
    0..65535 to [-1, 1], so the same picture gives the same tensor at either bit depth (up to
    8-bit rounding). Greyscale is repeated over the three channels; alpha is dropped.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image not found: {path}")
    if size is not None and (not isinstance(size, int) or size < 1):
        raise ValueError(f"size must be a positive int or None, got {size!r}")
    try:
        img = Image.open(path)
        img.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ImageFileError(
            f"{path} is not an image file nofa can read ({type(e).__name__}: {e})"
        ) from e
    if img.mode in _WIDE_GREY:
        # Work in float ("F", 0..255 scale) so resizing keeps the 16-bit precision.
        grey = np.asarray(img, dtype=np.float64)
        grey = np.clip(grey, 0, 65535) * (255.0 / 65535.0)
        img = Image.fromarray(grey.astype(np.float32))  # mode "F"
        if size is not None:
            img = img.resize((size, size), Image.LANCZOS)
        arr = np.repeat(np.asarray(img, dtype=np.float32)[..., None], 3, axis=-1)
    else:
        img = img.convert("RGB")
        if size is not None:
            img = img.resize((size, size), Image.LANCZOS)
        arr = np.asarray(img).astype(np.float32)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous() / 127.5 - 1


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """[3, H, W] (or [1, H, W]) in [-1, 1] -> uint8 [H, W, 3]."""
    image = image.detach().float().cpu()
    if image.shape[0] == 1:
        image = image.expand(3, -1, -1)
    return ((image.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()


def save_image(path: str | os.PathLike, image: torch.Tensor | np.ndarray) -> Path:
    """Save [3, H, W] in [-1, 1] or uint8 [H, W, 3] as PNG/JPEG (by suffix)."""
    from PIL import Image

    arr = image if isinstance(image, np.ndarray) else to_uint8(image)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def depth_to_rgb(
    depth: torch.Tensor, weight: torch.Tensor | None = None, threshold: float = 0.5
) -> np.ndarray:
    """Depth [1, H, W] -> uint8 [H, W, 3]: near is bright, background (weight < threshold) black."""
    d = depth.detach().float().cpu()[0]
    mask = torch.isfinite(d)
    if weight is not None:
        mask &= weight.detach().float().cpu()[0] >= threshold
    out = torch.zeros_like(d)
    if mask.any():
        lo, hi = d[mask].min(), d[mask].max()
        out[mask] = 1 - (d[mask] - lo) / (hi - lo).clamp_min(1e-6) * 0.8
    return (out * 255).round().to(torch.uint8)[..., None].expand(-1, -1, 3).numpy().copy()


def check_animation_path(path: str | os.PathLike) -> None:
    """Raise before any rendering if `path` cannot be written (unknown suffix, no ffmpeg)."""
    suffix = Path(path).suffix.lower()
    if suffix == ".gif":
        return
    if suffix in (".mp4", ".mov", ".mkv", ".webm"):
        try:
            import imageio_ffmpeg  # noqa: F401
        except ImportError as e:
            raise RuntimeError(
                f"writing {suffix} needs the imageio-ffmpeg package (pip install imageio-ffmpeg); "
                "or write a .gif instead"
            ) from e
        return
    raise ValueError(f"unsupported animation format {suffix!r}: use .gif or .mp4")


def save_animation(
    path: str | os.PathLike, frames: Sequence[np.ndarray], fps: float = 20.0
) -> Path:
    """Write uint8 [H, W, 3] frames as a looping GIF, or an MP4 when imageio-ffmpeg is installed."""
    import imageio.v2 as imageio

    if not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a finite number > 0, got {fps!r}")
    check_animation_path(path)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".gif":
        imageio.mimsave(path, list(frames), duration=1000.0 / fps, loop=0)
    else:
        imageio.mimsave(path, list(frames), fps=fps, macro_block_size=1)
    return path
