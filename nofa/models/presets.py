"""Model size presets for :class:`nofa.models.NOFAAvatar`.

`paper`: the paper's sizes (EG3D FFHQ 512 generator: 14 W codes, 256^2 tri-plane with
32 channels, neural rendering at 128 px, 48 + 48 samples, SR 128 -> 512).
`tiny`: the same graph with small widths and resolutions (64 px images), for CPU tests
and demos. `superres.conv_clamp` is the SR blocks' own clamp (EG3D builds them with 256
when its SR runs in fp16, whatever the generator's `conv_clamp`). A config is a plain
nested dict of numbers, strings and lists, so it can be stored in a weights-only checkpoint.
The `render` section is :class:`nofa.render.RenderOptions`' defaults (EG3D FFHQ's) plus the
neural rendering `resolution`; a preset states only what differs.
"""

from __future__ import annotations

import copy

from ..render import RenderOptions


def _render(resolution: int, **changes) -> dict:
    """The `render` section: RenderOptions' defaults with `changes`, after `resolution`."""
    return {"resolution": resolution, **RenderOptions(**changes).to_dict()}


PAPER: dict = {
    "image_size": 512,
    "generator": {
        "z_dim": 512,
        "c_dim": 25,
        "w_dim": 512,
        "plane_resolution": 256,
        "plane_channels": 32,
        "channel_base": 32768,
        "channel_max": 512,
        "mapping_layers": 2,
        "head_resolution": 64,
        "conv_clamp": None,
        "c_scale": 1.0,
        "c_gen_conditioning_zero": False,
    },
    "decoder": {"hidden": 64, "out_features": 32, "lr_multiplier": 1.0},
    "superres": {
        "input_resolution": 128,
        "block_channels": [256, 128],
        "antialias": True,
        "conv_clamp": None,
    },
    "render": _render(128),
    "encoder": {"patch_size": 16, "dim": 384, "depth": 6, "heads": 6, "mlp_ratio": 4.0},
    "detail": {"base_channels": 32, "max_channels": 128, "out_channels": 128},
    "fusion": {"hidden": 128},
    "deformation": {
        "n_freqs": 6,
        "id_dim": 80,
        "exp_dim": 64,
        "d_hidden": 128,
        "d_layers": 4,
        "w_hidden": 64,
        "w_layers": 3,
    },
}

TINY: dict = {
    "image_size": 64,
    "generator": {
        "z_dim": 32,
        "c_dim": 25,
        "w_dim": 32,
        "plane_resolution": 32,
        "plane_channels": 8,
        "channel_base": 512,
        "channel_max": 32,
        "mapping_layers": 2,
        "head_resolution": 8,
        "conv_clamp": None,
        "c_scale": 1.0,
        "c_gen_conditioning_zero": False,
    },
    "decoder": {"hidden": 16, "out_features": 8, "lr_multiplier": 1.0},
    "superres": {
        "input_resolution": 16,
        "block_channels": [16, 8],
        "antialias": True,
        "conv_clamp": None,
    },
    "render": _render(16, coarse_samples=8, importance_samples=8),
    "encoder": {"patch_size": 8, "dim": 32, "depth": 2, "heads": 2, "mlp_ratio": 2.0},
    "detail": {"base_channels": 8, "max_channels": 16, "out_channels": 16},
    "fusion": {"hidden": 16},
    "deformation": {
        "n_freqs": 6,
        "id_dim": 80,
        "exp_dim": 64,
        "d_hidden": 32,
        "d_layers": 2,
        "w_hidden": 16,
        "w_layers": 2,
    },
}

PRESETS = {"paper": PAPER, "tiny": TINY}


def get_config(preset: str = "paper", **overrides: dict) -> dict:
    """A deep copy of preset `preset`, with `overrides` merged per section, e.g.
    get_config("paper", render={"resolution": 64})."""
    if preset not in PRESETS:
        raise ValueError(f"unknown model preset {preset!r}; choose one of {sorted(PRESETS)}")
    cfg = copy.deepcopy(PRESETS[preset])
    return merge_config(cfg, overrides)


def merge_config(cfg: dict, overrides: dict) -> dict:
    """Merge `overrides` into `cfg` in place (one level of sections), refusing unknown keys."""
    for section, value in overrides.items():
        if section not in cfg:
            raise ValueError(f"unknown config section {section!r}; sections: {sorted(cfg)}")
        if isinstance(cfg[section], dict):
            if not isinstance(value, dict):
                raise ValueError(
                    f"config section {section!r} takes a dict, got {type(value).__name__}"
                )
            unknown = set(value) - set(cfg[section])
            if unknown:
                raise ValueError(
                    f"unknown keys {sorted(unknown)} in config section {section!r}; "
                    f"known: {sorted(cfg[section])}"
                )
            cfg[section].update(copy.deepcopy(value))
        else:
            cfg[section] = value
    return cfg
