"""Colour a baked template head from one aligned photo, on the surface only.

Fast adaptation from one view (adapt.py) paints colour along whole viewing rays, which shows up
as ghost copies of the face in side views. Here the colour is decided per 3D point instead and
fitted into the tri-plane in 3D (no rendering in the loop), so every view sees one surface:

  * visible surface: a point of the template surface that the photo's camera sees (depth test
    against the template's depth from that camera) takes the photo's colour where it projects;
  * symmetric fill: a point the camera cannot see takes the colour of its mirror image
    (x -> -x) when that one is visible;
  * the rest (back and top of the head, under the chin, and anything that projects onto the
    photo's background) is filled with the photo's skin or hair colour, by the template's part
    (skin or hair), shaded like the template;
  * background: the photo's background is matted out, not modelled. A pixel is taken as
    background when its colour is close to the median colour of the crop's top corners and it
    lies outside the face polygon (jaw + brows raised to the hairline); the head is rendered on
    white like the template.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import torch
import torch.nn.functional as F

from ...io.avatar import Avatar
from ...render.cameras import parse_label
from .template import HAIR, SKIN, TemplateHead

__all__ = [
    "PhotoColours",
    "TextureConfig",
    "face_polygon_mask",
    "photo_colour_field",
    "texture_avatar",
]


@dataclasses.dataclass
class TextureConfig:
    steps: int = 120
    batch: int = 1 << 14
    pool: int = 1 << 17
    lr: float = 0.03
    shell: float = 0.012  # |sdf| of the points that carry colour (world units)
    depth_resolution: int = 128  # visibility depth map of the template from the photo's camera
    visibility_margin: float = (
        0.02  # world units behind the visible surface still counted as visible
    )
    background_threshold: float = 0.2  # colour distance (0..1 RGB) to the background colour
    seed: int = 0
    progress: bool = True


@dataclasses.dataclass
class PhotoColours:
    skin: torch.Tensor  # [3] in 0..1
    hair: torch.Tensor  # [3]
    background: torch.Tensor  # [3]


def face_polygon_mask(landmarks: np.ndarray, size: int) -> np.ndarray:
    """bool [size, size]: inside the jaw line and the brows raised to about the hairline."""
    from skimage.draw import polygon

    lm = np.asarray(landmarks, np.float64)
    jaw = lm[0:17]
    brows = lm[26:16:-1].copy()
    lift = 0.3 * (lm[8, 1] - brows[:, 1].mean())
    brows[:, 1] -= lift
    poly = np.vstack([jaw, brows]) - 0.5
    rr, cc = polygon(poly[:, 1], poly[:, 0], (size, size))
    mask = np.zeros((size, size), bool)
    mask[rr, cc] = True
    return mask


def _photo_colours(
    photo01: torch.Tensor, landmarks: np.ndarray, face: np.ndarray, threshold: float
) -> PhotoColours:
    s = photo01.shape[-1]
    px = photo01.reshape(3, -1)
    skin = px[:, torch.from_numpy(face.reshape(-1))].median(1).values
    k = max(2, s // 16)
    corners = torch.cat([photo01[:, :k, :k].reshape(3, -1), photo01[:, :k, -k:].reshape(3, -1)], 1)
    background = corners.median(1).values
    # Hair: the non-background pixels of a band above the face polygon, between the outer brow
    # ends; the template's hair colour when there are too few (bald head, hair = background).
    lm = np.asarray(landmarks)
    top = int(max(0, face.any(1).argmax() - 0.02 * s))
    x0, x1 = int(max(0, lm[17, 0])), int(max(1, lm[26, 0]))
    band = photo01[:, max(0, top - int(0.08 * s)) : max(1, top), x0 : max(x0 + 1, x1)].reshape(
        3, -1
    )
    band = band[:, (band - background[:, None]).norm(dim=0) >= threshold]
    hair = band.median(1).values if band.shape[1] >= 8 else torch.tensor(HAIR)
    return PhotoColours(skin, hair, background)


def _project(points: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """points [M, 3] -> normalised image coords [M, 2] (0..1) and distance from the camera [M]."""
    c2w, k = parse_label(label.reshape(25).float())
    w2c = torch.linalg.inv(c2w)
    cam = points @ w2c[:3, :3].T + w2c[:3, 3]
    z = cam[:, 2].clamp_min(1e-4)
    uv = torch.stack([k[0, 0] * cam[:, 0] / z + k[0, 2], k[1, 1] * cam[:, 1] / z + k[1, 2]], 1)
    return uv, (points - c2w[:3, 3]).norm(dim=-1)


def _lookup(image: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """Bilinear image [C, H, W] at normalised uv [M, 2] -> [M, C] (border values outside)."""
    grid = (uv * 2 - 1)[None, None]
    return F.grid_sample(
        image[None].float(), grid, mode="bilinear", padding_mode="border", align_corners=False
    )[0, :, 0].T


def photo_colour_field(
    photo: torch.Tensor,
    label: torch.Tensor,
    landmarks: np.ndarray,
    depth: torch.Tensor,
    head: TemplateHead | None = None,
    cfg: TextureConfig | None = None,
):
    """A colour function points [M, 3] -> rgb [M, 3] (0..1) for the template surface (see module
    doc).

    photo: the aligned crop [3, S, S] in [-1, 1]; label [25] its camera; landmarks [68, 2] in
    crop pixels; depth [D, D] the template's ray depth from that camera (inf where missed).
    """
    cfg = cfg or TextureConfig()
    head = head or TemplateHead()
    photo01 = ((photo.float() + 1) / 2).clamp(0, 1)
    s = photo.shape[-1]
    face = face_polygon_mask(landmarks, s)
    colours = _photo_colours(photo01, landmarks, face, cfg.background_threshold)
    background = (photo01 - colours.background[:, None, None]).norm(
        dim=0
    ) < cfg.background_threshold
    trusted = (~background | torch.from_numpy(face)).float()
    depth = torch.where(torch.isfinite(depth), depth, torch.full_like(depth, 1e3))

    def seen(points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        uv, dist = _project(points, label)
        inside = ((uv > 0) & (uv < 1)).all(1).float()
        d = _lookup(depth[None], uv)[:, 0]
        vis = torch.sigmoid((d + cfg.visibility_margin - dist) / 0.004) * inside
        return vis * _lookup(trusted[None], uv)[:, 0], _lookup(photo01, uv)

    def colour(points: torch.Tensor) -> torch.Tensor:
        w, rgb = seen(points)
        wm, rgbm = seen(points * points.new_tensor([-1.0, 1.0, 1.0]))
        _, tmpl = head(points)
        hair = head.hair_weight(points)[:, None]
        # Shade the fill like the template: its colour relative to its own albedo.
        skin_fill = tmpl * (colours.skin / points.new_tensor(SKIN))
        hair_fill = tmpl * (colours.hair / points.new_tensor(HAIR))
        fill = (hair * hair_fill + (1 - hair) * skin_fill).clamp(0, 1)
        mirrored = wm[:, None] * rgbm + (1 - wm[:, None]) * fill
        return (w[:, None] * rgb + (1 - w[:, None]) * mirrored).clamp(0, 1)

    return colour, colours


def texture_avatar(
    template: Avatar,
    photo: torch.Tensor,
    label: torch.Tensor,
    landmarks: np.ndarray,
    cfg: TextureConfig | None = None,
    head: TemplateHead | None = None,
) -> tuple[Avatar, dict]:
    """Fit the baked template's tri-plane so its surface carries the photo's colours.

    All three planes are optimised in 3D on points near the template surface: a colour L2
    (weighted by how solid the point is) towards :func:`photo_colour_field`, and an L2 keeping
    the raw density what the template had (the decoder is fixed and shared by density and
    colour). Returns (avatar, info) with info: seconds, losses, the photo's fill colours.
    """
    from .bake import sample_pool

    cfg = cfg or TextureConfig()
    head = head or TemplateHead()
    t0 = time.perf_counter()
    g = torch.Generator().manual_seed(cfg.seed)
    renderer = template.renderer(deterministic=True)
    renderer.decoder.requires_grad_(False)
    with torch.no_grad():
        front = renderer(template.planes, label.reshape(1, 25).float(), cfg.depth_resolution)
    depth = torch.where(
        front.weight[0, 0] > 0.5,
        front.depth[0, 0],
        torch.full_like(front.depth[0, 0], float("inf")),
    )
    field, colours = photo_colour_field(photo, label, landmarks, depth, head, cfg)
    points, _, _ = sample_pool(
        head.density_and_colour, cfg.pool, template.options.box_warp, generator=g
    )
    chunks = range(0, len(points), 1 << 15)
    with torch.no_grad():
        sdf = torch.cat([head.sdf(points[i : i + (1 << 15)]) for i in chunks])
        dens_0 = torch.cat(
            [
                renderer.density(template.planes, points[None, i : i + (1 << 15)])[0, :, 0]
                for i in chunks
            ]
        )
    # Colour only on a thin shell around the surface: a deep interior point shares its plane
    # texels with the surface above it and would pull the surface towards the fill colour.
    shell = sdf.abs() < cfg.shell
    colour_points = points[shell]
    with torch.no_grad():
        rgb_t = torch.cat(
            [field(colour_points[i : i + (1 << 15)]) for i in range(0, len(colour_points), 1 << 15)]
        )
    solid = torch.sigmoid(-sdf[shell] / 0.003)[:, None]
    planes = torch.nn.Parameter(template.planes.detach().clone())
    opt = torch.optim.Adam([planes], lr=cfg.lr)
    bar = None
    if cfg.progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, desc="colour from photo", unit="step", dynamic_ncols=True)
    losses = []
    for _ in range(cfg.steps):
        idx = torch.randint(len(colour_points), (min(cfg.batch, len(colour_points)),), generator=g)
        jdx = torch.randint(len(points), (min(cfg.batch, len(points)) // 2,), generator=g)
        _, feats = renderer.query(planes, colour_points[idx][None])
        dens = renderer.density(planes, points[jdx][None])
        loss_c = ((feats[0, :, :3] - rgb_t[idx]) ** 2 * solid[idx]).mean() * 3
        loss_d = F.mse_loss(torch.tanh(dens[0, :, 0] / 20), torch.tanh(dens_0[jdx] / 20))
        loss = loss_c + loss_d
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if bar is not None:
            bar.update(1)
            bar.set_postfix(colour=f"{loss_c.item():.4f}", density=f"{loss_d.item():.2e}")
    if bar is not None:
        bar.close()
    seconds = time.perf_counter() - t0
    meta = {
        **template.metadata,
        "textured": True,
        "texture_steps": cfg.steps,
        "texture_seconds": round(seconds, 2),
    }
    info = {
        "seconds": seconds,
        "losses": losses,
        "skin": colours.skin.tolist(),
        "hair": colours.hair.tolist(),
        "background": colours.background.tolist(),
    }
    return dataclasses.replace(template, planes=planes.detach().clone(), metadata=meta), info
