"""The demo's photo -> template colouring (visible surface, mirror fill, background matte) and
the template cache."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from nofa.faces import LANDMARKS_3D
from nofa.pipelines.template_fit.template import SKIN, TemplateHead, trace_template
from nofa.pipelines.template_fit.texture import TextureConfig, face_polygon_mask, photo_colour_field
from nofa.render.cameras import default_label


def _landmarks(label: torch.Tensor, size: int) -> np.ndarray:
    lab = label.double().numpy()
    w2c = np.linalg.inv(lab[:16].reshape(4, 4))
    cam = LANDMARKS_3D @ w2c[:3, :3].T + w2c[:3, 3]
    return (4.2647 * cam[:, :2] / cam[:, 2:] + 0.5) * size


def test_colour_goes_on_the_visible_surface_only():
    size = 64
    label = default_label(math.radians(30), 0.0)  # the camera sees the subject's left (+x) side
    _, depth, hit = trace_template(label, size, steps=40)
    # A photo whose left half (image) is red and right half blue, white background corners.
    photo = torch.full((3, size, size), 1.0)
    photo[:, :, : size // 2] = torch.tensor([1.0, -1.0, -1.0])[:, None, None]
    photo[:, :, size // 2 :] = torch.tensor([-1.0, -1.0, 1.0])[:, None, None]
    lm = _landmarks(label, size)
    field, colours = photo_colour_field(photo, label, lm, depth, cfg=TextureConfig())
    head = TemplateHead()

    # Surface points: march inward along +-x from outside the cheeks at mouth height.
    def surface(x_sign: float) -> torch.Tensor:
        xs = torch.linspace(0.3, 0.0, 600) * x_sign
        p = torch.stack([xs, torch.full_like(xs, -0.06), torch.full_like(xs, 0.1)], 1)
        return p[(head.sdf(p) < 0).nonzero()[0]]

    left, right = surface(1.0), surface(-1.0)  # subject's left cheek (seen), right cheek (hidden)
    c_left, c_right = field(left)[0], field(right)[0]
    seen = torch.tensor(face_polygon_mask(lm, size)).any()
    assert seen
    # The seen cheek projects onto the image's right half (blue), the hidden one takes its
    # mirror image's colour (the seen cheek's) instead of the red it would project onto.
    assert c_left[2] > 0.9 and c_left[0] < 0.1
    assert c_right[2] > 0.9 and c_right[0] < 0.1
    # The back of the head is not seen, nor is its mirror: filled from the photo's colours.
    back = torch.tensor([[0.0, 0.05, -0.25]])
    while head.sdf(back)[0] > 0:
        back[0, 2] += 0.002
    fill = field(back)[0]
    _, tmpl = head(back)
    assert torch.allclose(
        fill, (tmpl[0] * colours.hair / torch.tensor((0.22, 0.15, 0.10))).clamp(0, 1), atol=0.05
    ) or torch.allclose(fill, (tmpl[0] * colours.skin / torch.tensor(SKIN)).clamp(0, 1), atol=0.05)


def test_background_is_matted_out():
    size = 64
    label = default_label()
    _, depth, _ = trace_template(label, size, steps=40)
    photo = torch.full((3, size, size), 1.0)  # white everywhere: all background except the face
    lm = _landmarks(label, size)
    face = torch.from_numpy(face_polygon_mask(lm, size))
    photo[:, face] = torch.tensor([0.2, -0.2, -0.4])[:, None]
    field, colours = photo_colour_field(photo, label, lm, depth, cfg=TextureConfig())
    assert torch.allclose(colours.background, torch.ones(3))
    # A visible point of the hair cap, projecting onto white background: not painted white.
    p = torch.tensor([[0.0, 0.28, 0.3]])
    head = TemplateHead()
    while head.sdf(p)[0] > 0:
        p[0, 2] -= 0.002
    assert field(p)[0].min() < 0.6


def test_template_cache(tmp_path):
    pytest.importorskip("dlib", reason="dlib-bin is not installed")
    from nofa.pipelines.template_fit.adapt import AdaptConfig
    from nofa.pipelines.template_fit.demo import DemoConfig, run_demo, template_cache_path

    def cfg(out):
        return DemoConfig(
            out_dir=str(tmp_path / out),
            cache_dir=str(tmp_path / "cache"),
            plane_resolution=32,
            channels=8,
            bake_steps=5,
            bake_pool=1 << 12,
            bake_batch=1 << 10,
            adapt=AdaptConfig(steps=0),
            texture=TextureConfig(steps=2, pool=1 << 12, batch=1 << 10, depth_resolution=24),
            view_resolution=24,
            view_samples=8,
            frames=2,
            mesh_resolution=24,
            progress=False,
        )

    logs: list[str] = []
    first = run_demo(cfg("a"), log=logs.append)
    path = template_cache_path(cfg("a"))
    assert path.is_file() and path.parent == tmp_path / "cache"
    second = run_demo(cfg("b"), log=logs.append)
    assert any("cached bake" in line for line in logs)
    assert "textured" in __import__("nofa").io.load_avatar(second["files"]["avatar"]).metadata
    assert template_cache_path(DemoConfig(cache_dir="c", bake_steps=6)) != template_cache_path(
        DemoConfig(cache_dir="c", bake_steps=5)
    )
    assert np.isfinite(first["face_psnr"])
    # The geometry fit (on by default) moved the template's landmarks onto the photo's.
    geo = first["geometry"]
    assert geo["rms_px_after"] < 0.5 * geo["rms_px_before"]
    assert __import__("nofa").io.load_avatar(first["files"]["avatar"]).metadata["geometry_warped"]
    off = run_demo(dataclasses.replace(cfg("c"), geometry_fit=False), log=logs.append)
    assert (
        off["geometry"] is None
        and "geometry_warped"
        not in __import__("nofa").io.load_avatar(off["files"]["avatar"]).metadata
    )
