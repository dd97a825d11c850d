"""Image reading: bit depths and colour modes give the same tensor for the same picture."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from nofa.io import ImageFileError, load_image, save_animation


def _gradient16() -> np.ndarray:
    """A 16-bit greyscale picture [24, 32] covering the whole range (dark to bright)."""
    y, x = np.mgrid[0:24, 0:32]
    return np.round((x * 24 + y) / (32 * 24 - 1) * 65535).astype(np.uint16)


def test_16bit_grey_png_matches_8bit(tmp_path):
    g16 = _gradient16()
    g8 = np.round(g16 / 257).astype(np.uint8)  # the same picture in 8 bit (65535 / 255 = 257)
    Image.fromarray(g16).save(tmp_path / "g16.png")
    Image.fromarray(g8).save(tmp_path / "g8.png")
    Image.fromarray(np.repeat(g8[..., None], 3, -1)).save(tmp_path / "rgb8.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")  # really a 16-bit grey file
    a, b, c = (load_image(tmp_path / n) for n in ("g16.png", "g8.png", "rgb8.png"))
    assert a.shape == b.shape == (3, 24, 32) and a.dtype == torch.float32
    assert torch.equal(b, c)
    # Only 8-bit rounding apart: half a level of 255 in [-1, 1] units is 1 / 255.
    assert (a - b).abs().max() <= 1 / 255 + 1e-6
    assert a.min() == -1 and a.max() == 1
    ra, rb = load_image(tmp_path / "g16.png", size=16), load_image(tmp_path / "g8.png", size=16)
    assert ra.shape == (3, 16, 16) and (ra - rb).abs().max() < 0.02


def test_not_an_image_is_a_clear_error(tmp_path):
    path = tmp_path / "face.png"
    path.write_text("not a picture")
    with pytest.raises(ImageFileError, match="not an image file"):
        load_image(path)
    with pytest.raises(FileNotFoundError, match="image not found"):
        load_image(tmp_path / "missing.png")


@pytest.mark.parametrize("fps", [0, -5, float("nan"), float("inf")])
def test_animation_fps_must_be_positive(tmp_path, fps):
    frame = np.zeros((4, 4, 3), np.uint8)
    with pytest.raises(ValueError, match="fps"):
        save_animation(tmp_path / "a.gif", [frame, frame], fps=fps)
