"""The procedural template head and the baker that turns a field into a tri-plane avatar."""

from __future__ import annotations

import warnings

import torch

from nofa.pipelines.template_fit.bake import bake_field, sample_pool
from nofa.pipelines.template_fit.template import TemplateHead, head_sdf
from nofa.render import default_label


def test_template_head_layout():
    # Nose tip is the front-most point (+z), skull top near y = 0.28, mirror symmetric.
    pts = torch.rand(20000, 3) - 0.5
    d = head_sdf(pts)
    mirrored = head_sdf(pts * torch.tensor([-1.0, 1, 1]))
    torch.testing.assert_close(d, mirrored)
    assert (d < 0).sum() > 500
    ys, zs = torch.meshgrid(
        torch.linspace(-0.25, 0.25, 126), torch.linspace(0.1, 0.35, 126), indexing="ij"
    )
    plane = torch.stack([torch.zeros_like(ys), ys, zs], -1).reshape(-1, 3)
    inside = plane[head_sdf(plane) < 0]
    front = inside[inside[:, 2].argmax()]
    assert -0.1 < front[1] < -0.04 and front[2] > 0.24  # nose tip, below the eyes
    assert (
        head_sdf(torch.tensor([[0.0, 0.27, -0.02]]))
        < 0
        < head_sdf(torch.tensor([[0.0, 0.31, -0.02]]))
    )
    density, rgb = TemplateHead()(torch.tensor([[0.0, 0.0, 0.0], [0.45, 0.45, 0.45]]))
    assert density[0] > 40 and density[1] < -7
    assert rgb.shape == (2, 3) and (rgb >= 0).all() and (rgb <= 1).all()


def _sphere(p: torch.Tensor):
    sdf = p.norm(dim=-1) - 0.25
    rgb = torch.stack([(p[:, 0] > 0).float(), torch.full_like(sdf, 0.5), torch.zeros_like(sdf)], -1)
    return 60 * torch.sigmoid(-sdf / 0.01) - 8, rgb


def test_sample_pool_mixes_surface_and_outside_points():
    pts, dens, rgb = sample_pool(_sphere, 4000, generator=torch.Generator().manual_seed(0))
    assert pts.shape == (4000, 3) and dens.shape == (4000,) and rgb.shape == (4000, 3)
    r = pts.norm(dim=-1)
    assert ((r - 0.25).abs() < 0.03).float().mean() > 0.3  # near-surface points
    outside = (pts.abs() > 0.5).any(-1)
    assert outside.sum() >= 400 and (dens[outside] == dens.min()).all()  # taught to be empty


def test_bake_sphere_renders_a_disc():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        av = bake_field(
            _sphere, plane_resolution=24, channels=8, steps=80, batch=2048, pool=1 << 13, lr=0.05
        )
        out = av.renderer(deterministic=True, coarse_samples=16, importance_samples=16)(
            av.planes, default_label()[None], 16
        )
    w = out.weight[0, 0]
    assert w[6:10, 6:10].mean() > 0.8  # the sphere's centre is opaque ...
    assert w[[0, 0, -1, -1], [0, -1, 0, -1]].max() < 0.2  # ... the corners are empty
    rgb = out.rgb[0]
    assert rgb[0, 8, 11] > rgb[0, 8, 4]  # red on the +x half (image right from the front)
