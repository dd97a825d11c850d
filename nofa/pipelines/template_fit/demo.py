"""The built-in demo: one portrait -> a 3D head you can turn, mesh and save.

Pipeline: procedural template head -> baked into a tri-plane avatar (nofa.pipelines.template_fit.bake) -> fast
adaptation of the tri-plane to the portrait's front view (nofa.pipelines.template_fit.adapt, paper eq. 14) ->
turntable GIF, contact sheet PNG, avatar file, coloured mesh.

Without trained NOFA++ weights there is no learned one-shot encoder here: the geometry is
the template's, and the portrait's appearance is fitted per image.
"""
from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

import numpy as np
import torch

from .. import mesh as mesh_mod
from .adapt import AdaptConfig, fast_adapt
from .bake import bake_field
from ...io import depth_to_rgb, load_avatar, load_image, save_animation, save_avatar, save_image, to_uint8
from ...render.cameras import default_label, orbit_labels
from .template import TemplateHead

__all__ = ["DemoConfig", "astronaut_portrait", "run_demo"]

# Face box in skimage's astronaut photo (512 x 512): eyes at about (195, 100) and (245, 100),
# cropped so the eyes land where the template's eyes project (FFHQ-like alignment).
ASTRONAUT_BOX = (112, 0, 328, 216)


@dataclasses.dataclass
class DemoConfig:
    out_dir: str = "outputs/demo"
    image: str | None = None  # None: the built-in astronaut portrait
    template: str | None = None  # a saved template avatar instead of baking one
    plane_resolution: int = 128
    channels: int = 32
    bake_steps: int = 500
    bake_pool: int = 1 << 17
    bake_batch: int = 1 << 15
    adapt: AdaptConfig = dataclasses.field(default_factory=lambda: AdaptConfig(planes="xy"))
    view_resolution: int = 128
    view_samples: int = 32
    frames: int = 20
    yaw_range_deg: float = 35.0
    mesh_resolution: int = 256
    mesh_level: float = 10.0
    seed: int = 0
    progress: bool = True


def astronaut_portrait() -> torch.Tensor:
    """scikit-image's astronaut photo (shipped with the package), cropped to the face: [3, 216, 216]."""
    from skimage import data

    img = torch.from_numpy(data.astronaut().copy()).permute(2, 0, 1).float() / 127.5 - 1
    x0, y0, x1, y1 = ASTRONAUT_BOX
    return img[:, y0:y1, x0:x1].contiguous()


def _views(avatar, labels: torch.Tensor, res: int, samples: int):
    renderer = avatar.renderer(deterministic=True, coarse_samples=samples, importance_samples=samples)
    outs = []
    with torch.no_grad():
        for lab in labels:
            outs.append(renderer(avatar.planes, lab[None], res))
    return outs


def _contact_sheet(tiles: list[np.ndarray], labels: list[str]) -> np.ndarray:
    from PIL import Image, ImageDraw

    h, w = tiles[0].shape[:2]
    pad = 18
    sheet = Image.new("RGB", (w * len(tiles), h + pad), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for i, (tile, text) in enumerate(zip(tiles, labels)):
        sheet.paste(Image.fromarray(tile), (i * w, pad))
        draw.text((i * w + 4, 3), text, fill=(0, 0, 0))
    return np.asarray(sheet)


def run_demo(cfg: DemoConfig, log=print) -> dict:
    """Run the whole pipeline; returns {"files": {...}, "timings": {...}} (seconds)."""
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    t_all = time.perf_counter()

    if cfg.image:
        portrait = load_image(cfg.image)
        source = str(cfg.image)
    else:
        portrait = astronaut_portrait()
        source = "skimage.data.astronaut (face crop)"

    t = time.perf_counter()
    template_path = None
    if cfg.template:
        template = load_avatar(cfg.template)
        log(f"template avatar: {cfg.template}")
    else:
        log(f"baking the procedural template head into a {cfg.plane_resolution}^2 x {cfg.channels} tri-plane ...")
        template = bake_field(TemplateHead(), cfg.plane_resolution, cfg.channels, cfg.bake_steps,
                              batch=cfg.bake_batch, pool=cfg.bake_pool, seed=cfg.seed, progress=cfg.progress,
                              metadata={"template": "nofa.pipelines.template_fit.TemplateHead"})
        template_path = save_avatar(out / "template.nofa", template)
    timings["template"] = time.perf_counter() - t

    front = default_label()
    adapt_cfg = dataclasses.replace(cfg.adapt, progress=cfg.progress)
    result = fast_adapt(template, portrait, front, adapt_cfg)
    avatar = result.avatar
    avatar.metadata.update({"portrait": source, "note": "template + per-image fast adaptation (no trained NOFA++ weights)"})
    timings["fast_adaptation"] = result.seconds
    files = {"avatar": save_avatar(out / "avatar.nofa", avatar)}
    if template_path is not None:
        files["template"] = template_path

    t = time.perf_counter()
    yaw = math.radians(cfg.yaw_range_deg)
    novel = torch.stack([default_label(-yaw, 0.0), default_label(-yaw / 2, -0.15),
                         default_label(yaw / 2, 0.15), default_label(yaw, 0.0)])
    res = cfg.view_resolution
    front_out = _views(avatar, front[None], res, cfg.view_samples)[0]
    novel_outs = _views(avatar, novel, res, cfg.view_samples)
    tmpl_out = _views(template, front[None], res, cfg.view_samples)[0]
    size = (res, res)
    tiles = [to_uint8(torch.nn.functional.interpolate(portrait[None], size=size, mode="area")[0]),
             to_uint8(tmpl_out.rgb[0]), to_uint8(front_out.rgb[0])]
    tiles += [to_uint8(o.rgb[0]) for o in novel_outs]
    tiles.append(depth_to_rgb(front_out.depth[0], front_out.weight[0]))
    names = ["input", "template", "fitted front", f"yaw -{cfg.yaw_range_deg:g}", "yaw -/2 pitch",
             "yaw +/2 pitch", f"yaw +{cfg.yaw_range_deg:g}", "depth"]
    files["contact_sheet"] = save_image(out / "contact_sheet.png", _contact_sheet(tiles, names))
    timings["views"] = time.perf_counter() - t

    t = time.perf_counter()
    frames = _views(avatar, orbit_labels(cfg.frames, yaw), res, cfg.view_samples)
    files["turntable"] = save_animation(out / "turntable.gif", [to_uint8(f.rgb[0]) for f in frames], fps=12)
    timings["turntable"] = time.perf_counter() - t

    t = time.perf_counter()
    try:
        mesh = mesh_mod.mesh_from_avatar(avatar, resolution=cfg.mesh_resolution, level=cfg.mesh_level)
    except ValueError as e:  # an under-trained (e.g. --quick) template may never reach the level
        grid = mesh_mod.density_grid(mesh_mod.avatar_density_fn(avatar), 16, avatar.options.box_warp / 2)
        level = float(grid.min() + grid.max()) / 2
        log(f"mesh: {e}; using level {level:.3g} instead")
        mesh = mesh_mod.mesh_from_avatar(avatar, resolution=cfg.mesh_resolution, level=level)
    files["mesh"] = mesh_mod.export_mesh(mesh, out / "head.ply")
    timings["mesh"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t_all
    return {"files": {k: str(v) for k, v in files.items()}, "timings": timings,
            "adapt_loss": (result.losses[0], result.losses[-1]) if result.losses else None,
            "mesh_vertices": len(mesh.vertices)}
