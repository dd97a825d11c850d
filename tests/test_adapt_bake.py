"""Fast adaptation and baking: defaults and degenerate step counts."""

from __future__ import annotations

import functools
import warnings

import pytest
import torch

import nofa.pipelines.template_fit.adapt as adapt_mod
from nofa.io import Avatar, load_avatar, save_avatar
from nofa.pipelines.template_fit.adapt import AdaptConfig, fast_adapt
from nofa.pipelines.template_fit.bake import bake_field
from nofa.render import OSGDecoder, RenderOptions, default_label


def _solid_avatar(C: int = 4) -> Avatar:
    """An avatar that is opaque everywhere in its box (so every pixel is adaptable)."""
    torch.manual_seed(0)
    dec = OSGDecoder(n_features=C, hidden=8, out_features=3)
    with torch.no_grad():
        dec.fc1.bias[0] = 50.0
    opts = RenderOptions(ray_start=None, ray_end=None, deterministic=True)
    return Avatar(torch.randn(1, 3, C, 8, 8) * 0.1, dec.state_dict(), dec.config(), opts)


def _sphere(p: torch.Tensor):
    sdf = p.norm(dim=-1) - 0.25
    return 60 * torch.sigmoid(-sdf / 0.01) - 8, torch.full((len(p), 3), 0.5)


def test_fast_adapt_without_config_uses_the_defaults(monkeypatch):
    # The default AdaptConfig, shrunk so the test is quick; cfg=None must reach it.
    small = functools.partial(
        AdaptConfig, steps=2, resolution=6, coarse_samples=4, importance_samples=4, progress=False
    )
    monkeypatch.setattr(adapt_mod, "AdaptConfig", small)
    av = _solid_avatar()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = fast_adapt(av, torch.zeros(3, 12, 12), default_label())
    assert len(res.losses) == 2 and res.avatar.metadata["adapt_planes"] == "all"
    assert not torch.equal(res.avatar.planes, av.planes)


def test_fast_adapt_rejects_bad_config():
    with pytest.raises(ValueError, match="cfg.planes"):
        fast_adapt(_solid_avatar(), torch.zeros(3, 8, 8), default_label(), AdaptConfig(planes="yz"))
    with pytest.raises(ValueError, match="cfg.steps"):
        fast_adapt(_solid_avatar(), torch.zeros(3, 8, 8), default_label(), AdaptConfig(steps=-1))


def test_bake_zero_steps_returns_the_untrained_avatar(tmp_path):
    av = bake_field(
        _sphere, plane_resolution=8, channels=4, steps=0, hidden=8, batch=256, pool=1 << 11
    )
    assert av.planes.shape == (1, 3, 4, 8, 8)
    assert av.metadata["bake_steps"] == 0 and av.metadata["bake_loss_density"] is None
    back = load_avatar(save_avatar(tmp_path / "t.nofa-avatar", av))  # metadata stays JSON-writable
    assert torch.equal(back.planes, av.planes)
    with pytest.raises(ValueError, match="steps"):
        bake_field(_sphere, steps=-1)
