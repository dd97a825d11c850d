"""The demo's geometry fit: landmark back-projection, the landmark warp and the warped head."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nofa.faces import LANDMARKS_3D
from nofa.pipelines.template_fit.template import TemplateHead
from nofa.pipelines.template_fit.warp import (
    LandmarkWarp,
    WarpConfig,
    WarpedHead,
    backproject_landmarks,
    fit_head_to_landmarks,
    invert_warp,
    project_points,
    symmetrise,
)
from nofa.render.cameras import default_label


def _person(seed: int = 0) -> np.ndarray:
    """A different face: the template's landmarks scaled, with a wider mouth and eyes further
    apart."""
    rng = np.random.default_rng(seed)
    p = LANDMARKS_3D * np.array([1.08, 1.12, 1.1])
    p[48:68, 0] *= 1.15
    p[36:48, 0] *= 1.06
    return p + rng.normal(0, 0.002, p.shape) * np.array([1, 1, 0])


def test_warp_maps_landmarks_onto_targets():
    src, dst = LANDMARKS_3D, _person()
    exact = LandmarkWarp(src, dst, smoothing=1e-8, max_gradient=None)
    assert np.abs(exact(src) - dst).max() < 1e-4  # 0.02 px at 512
    smooth = LandmarkWarp(src, dst)  # the demo's regularised warp: close, not exact
    err = np.linalg.norm(smooth(src) - dst, axis=1)
    before = np.linalg.norm(src - dst, axis=1)
    assert err.mean() < 0.15 * before.mean() and err.max() < 0.01
    # The inverse by fixed-point iteration recovers the source points.
    assert np.abs(invert_warp(smooth, smooth(src)) - src).max() < 1e-6


def test_warp_is_identity_when_targets_equal_template():
    warp = LandmarkWarp(LANDMARKS_3D, LANDMARKS_3D)
    p = torch.rand(500, 3, dtype=torch.float64) - 0.5
    assert torch.allclose(warp(p), p, atol=1e-12)
    label = default_label(math.radians(20), 0.1).double().numpy()
    lm = project_points(LANDMARKS_3D, label, 512)
    head, info = fit_head_to_landmarks(lm, label, 512, WarpConfig(symmetry=0.0))
    assert info["rms_px_before"] < 1e-6 and info["rms_px_after"] < 1e-6
    q = torch.rand(500, 3) * 0.5 - 0.25
    assert torch.allclose(head.sdf(q), TemplateHead().sdf(q), atol=1e-5)


def test_backprojected_landmarks_lie_on_the_photo_rays():
    label = default_label(math.radians(-15), -0.1).double().numpy()
    lm = project_points(_person(), label, 512)
    targets = backproject_landmarks(lm, label, 512)
    assert np.abs(project_points(targets, label, 512) - lm).max() < 1e-6
    # Same camera depth as the template's landmarks: the fit moves them across the view only.
    w2c = np.linalg.inv(label[:16].reshape(4, 4))
    depth = lambda p: (p @ w2c[:3, :3].T + w2c[:3, 3])[:, 2]  # noqa: E731
    assert np.abs(depth(targets) - depth(LANDMARKS_3D)).max() < 1e-9
    with pytest.raises(ValueError, match="landmarks"):
        backproject_landmarks(lm[:10], label, 512)


def test_fit_moves_the_head_onto_the_photo_landmarks():
    label = default_label(math.radians(10), 0.05).double().numpy()
    lm = project_points(_person(), label, 512)
    head, info = fit_head_to_landmarks(lm, label, 512)
    assert info["rms_px_before"] > 8 and info["rms_px_after"] < 0.3 * info["rms_px_before"]
    assert info["scale"][0] > 1.03 and info["scale"][1] > 1.05  # the person's face is larger
    sym = symmetrise(info["targets"])
    assert np.allclose(sym, info["targets"], atol=1e-12)  # symmetry=1: targets already symmetric
    # The warped surface passes through the moved landmarks as the template's does through its own.
    t = torch.from_numpy(info["landmarks"][27:31]).float()  # nose bridge
    assert torch.allclose(
        head.sdf(t),
        TemplateHead().sdf(torch.tensor(LANDMARKS_3D[27:31], dtype=torch.float32)),
        atol=2e-3,
    )


def test_bad_warp_input_is_named():
    with pytest.raises(ValueError, match="src and dst"):
        LandmarkWarp(np.zeros((5, 3)), np.zeros((4, 3)))
    with pytest.raises(ValueError, match="weights"):
        LandmarkWarp(LANDMARKS_3D, LANDMARKS_3D, weights=np.zeros(68))


def test_warm_started_bake_takes_the_warped_geometry():
    """The demo's per-photo geometry: bake_field(warped head, init=template) moves the baked
    density towards the warped head's, keeping the template's decoder and options."""
    from nofa.pipelines.template_fit.bake import bake_field

    head = TemplateHead()
    template = bake_field(
        head, plane_resolution=32, channels=8, steps=150, batch=1 << 11, pool=1 << 13, lr=0.05
    )
    person = LANDMARKS_3D * np.array([1.1, 1.1, 1.0]) + np.array([0.0, 0.02, 0.0])
    warped = WarpedHead(LandmarkWarp(person, LANDMARKS_3D, max_gradient=None), head)
    shaped = bake_field(warped, steps=60, batch=1 << 11, pool=1 << 13, lr=0.02, init=template)
    assert shaped.planes.shape == template.planes.shape and shaped.options == template.options
    g = torch.Generator().manual_seed(1)
    p = torch.rand(4000, 3, generator=g) * torch.tensor([0.5, 0.8, 0.55]) - torch.tensor(
        [0.25, 0.45, 0.28]
    )

    def err(av, field) -> float:
        with torch.no_grad():
            d = av.renderer(deterministic=True).density(av.planes, p[None])[0, :, 0]
        return float((torch.tanh(d / 20) - torch.tanh(field.density(p) / 20)).abs().mean())

    # The template is nearer its own shape, the re-baked avatar nearer the warped one.
    assert err(template, head) < 0.85 * err(template, warped)
    assert err(shaped, warped) < 0.85 * err(shaped, head)
    assert err(shaped, warped) < err(template, warped)


def test_cli_geometry_fit_option():
    from nofa.cli import build_parser
    from nofa.commands.demo import config_from_args

    parser = build_parser()
    assert config_from_args(parser.parse_args(["demo"])).geometry_fit
    assert not config_from_args(parser.parse_args(["demo", "--no-geometry-fit"])).geometry_fit
