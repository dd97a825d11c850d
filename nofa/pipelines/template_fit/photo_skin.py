"""The template head wearing a photo's face: ground-truth renders that look like a photo.

dlib's landmark predictor was trained on photos. On the template head's procedural albedo
its points lag behind the turn (the camera fit read a camera 20° above the face as 13° at
most, docs/faces.md "Accuracy"), and a landmark model calibrated on such renders
over-corrects real photos. With a real face's skin on the same geometry dlib follows the
turn as it does on photos, so calibration and accuracy renders use this head.

The skin: the photo is aligned (nofa.faces.prepare_face) and warped piecewise-affinely so
that its 68 landmarks land on dlib's landmarks of the template's frontal render; the result,
a texture in the frontal render's pixels, is averaged with its mirror image (the head is
left-right symmetric, so a symmetric face keeps the mirror pairs of poses mirror images).
A surface point takes the colour at its projection through the frontal camera: a projection
along z, so sides the front view sees at a grazing angle are stretched, as in any
single-photo texture. The default photo is scikit-image's astronaut (NASA, public domain),
the demo's built-in portrait.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from ...render.cameras import default_label
from .template import TemplateHead, trace_template

__all__ = ["PhotoSkinHead", "render_uint8"]

FOCAL, PRINCIPAL = 4.2647, 0.5


def render_uint8(label: torch.Tensor, resolution: int, head=None) -> np.ndarray:
    """trace_template's rgb as an 8-bit image [R, R, 3] (white background)."""
    rgb, _, _ = trace_template(label, resolution, head=head)
    return ((rgb.permute(1, 2, 0).numpy() + 1) * 127.5).clip(0, 255).astype(np.uint8)


def _frontal_landmarks(resolution: int) -> np.ndarray:
    """dlib's 68 landmarks [68, 2] of the template's frontal render, in its pixels."""
    from ...faces import prepare_face

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        face = prepare_face(render_uint8(default_label(), resolution))
    m = face.aligned.crop_to_photo
    return face.aligned.landmarks @ m[:2, :2].T + m[:2, 2]


class PhotoSkinHead:
    """TemplateHead's geometry with a photo's face as its colour. Same interface as
    TemplateHead (sdf, density, hair_weight, density_and_colour, __call__); colour is
    unshaded (the photo's own light)."""

    def __init__(self, texture: np.ndarray, head: TemplateHead | None = None) -> None:
        """texture: [R, R, 3] float in 0..1, in the pixels of the template's frontal render."""
        tex = np.asarray(texture, np.float32)
        if tex.ndim != 3 or tex.shape[0] != tex.shape[1] or tex.shape[2] != 3:
            raise ValueError(f"texture must be [R, R, 3], got shape {list(tex.shape)}")
        self.texture = torch.from_numpy(tex).permute(2, 0, 1)[None].contiguous()  # [1, 3, R, R]
        self.head = head or TemplateHead()
        w2c = torch.linalg.inv(default_label()[:16].double().reshape(4, 4))
        self._w2c = w2c[:3].float()

    @classmethod
    def from_photo(
        cls, photo: np.ndarray | None = None, resolution: int = 512, symmetric: bool = True
    ) -> PhotoSkinHead:
        """photo: an RGB(A)/grey image of any size with one face (default: the astronaut)."""
        from scipy.ndimage import map_coordinates
        from skimage.transform import PiecewiseAffineTransform, SimilarityTransform

        from ...faces import prepare_face

        if photo is None:
            from skimage import data

            photo = data.astronaut()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            face = prepare_face(photo, size=resolution, name="photo")
        crop = face.aligned.image.astype(np.float64) / 255.0
        src = _frontal_landmarks(resolution)
        dst = face.aligned.landmarks
        # Points along the border, moved by the best similarity, keep the warp defined
        # (and smooth) outside the landmarks' hull.
        sim = SimilarityTransform.from_estimate(src, dst)
        t = np.linspace(0, resolution, 9)
        edge = np.array(
            [[x, y] for x in t for y in (0, resolution)]
            + [[x, y] for y in t[1:-1] for x in (0, resolution)]
        )
        warp = PiecewiseAffineTransform.from_estimate(
            np.concatenate([src, edge]), np.concatenate([dst, sim(edge)])
        )
        yy, xx = np.mgrid[0:resolution, 0:resolution] + 0.5
        grid = np.stack([xx.ravel(), yy.ravel()], 1)
        q = warp(grid)
        bad = ~np.isfinite(q).all(1) | (q < 0).any(1)
        q[bad] = sim(grid[bad])
        tex = np.stack(
            [
                map_coordinates(
                    crop[..., c], [q[:, 1] - 0.5, q[:, 0] - 0.5], order=1, mode="nearest"
                )
                for c in range(3)
            ],
            1,
        ).reshape(resolution, resolution, 3)
        if symmetric:
            tex = 0.5 * (tex + tex[:, ::-1])
        return cls(tex)

    def sdf(self, p: torch.Tensor) -> torch.Tensor:
        return self.head.sdf(p)

    def density(self, p: torch.Tensor) -> torch.Tensor:
        return self.head.density(p)

    def hair_weight(self, p: torch.Tensor) -> torch.Tensor:
        return self.head.hair_weight(p)

    def density_and_colour(self, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.head.density_and_colour(p)

    def colour(self, p: torch.Tensor) -> torch.Tensor:
        """Points [M, 3] -> rgb [M, 3] in 0..1: the texture at their frontal projection."""
        cam = p.float() @ self._w2c[:, :3].T + self._w2c[:, 3]
        uv = FOCAL * cam[:, :2] / cam[:, 2:].clamp_min(1e-3) + PRINCIPAL  # 0..1 across the image
        g = (uv * 2 - 1).reshape(1, -1, 1, 2)  # align_corners=False: pixel centres at +0.5
        col = torch.nn.functional.grid_sample(
            self.texture, g, mode="bilinear", padding_mode="border", align_corners=False
        )
        return col[0, :, :, 0].T.clamp(0, 1)

    def __call__(self, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.head.density(p), self.colour(p)
