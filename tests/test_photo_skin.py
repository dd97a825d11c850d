"""PhotoSkinHead: the template's geometry with a texture projected along the frontal camera."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nofa.pipelines.template_fit import PhotoSkinHead, TemplateHead, render_uint8
from nofa.render.cameras import default_label


def _halves(size: int = 64) -> np.ndarray:
    tex = np.zeros((size, size, 3), np.float32)
    tex[:, : size // 2] = (1.0, 0.0, 0.0)  # image left: the subject's right (-x)
    tex[:, size // 2 :] = (0.0, 0.0, 1.0)
    return tex


def test_colour_is_the_texture_at_the_frontal_projection():
    head = PhotoSkinHead(_halves())
    p = torch.tensor([[-0.1, 0.0, 0.15], [0.1, 0.0, 0.15]])
    col = head(p)[1]
    assert torch.allclose(col[0], torch.tensor([1.0, 0.0, 0.0])) and torch.allclose(
        col[1], torch.tensor([0.0, 0.0, 1.0])
    )
    # Geometry is the template's.
    assert torch.equal(head.sdf(p), TemplateHead().sdf(p)) and torch.equal(
        head(p)[0], TemplateHead().density(p)
    )


def test_side_view_shows_the_side_that_faces_the_camera():
    # Camera at yaw +35 deg sits towards +x: it sees mostly the subject's left (blue) side.
    img = render_uint8(default_label(math.radians(35), 0.0), 48, PhotoSkinHead(_halves()))
    head_px = (img < 250).any(-1)
    blue = head_px & (img[..., 2] > 200) & (img[..., 0] < 50)
    red = head_px & (img[..., 0] > 200) & (img[..., 2] < 50)
    assert blue.sum() > 2 * red.sum() > 0


def test_bad_texture_is_a_clear_error():
    with pytest.raises(ValueError, match=r"texture must be \[R, R, 3\]"):
        PhotoSkinHead(np.zeros((8, 9, 3)))
