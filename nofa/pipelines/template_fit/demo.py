"""The built-in demo: one photo -> a 3D head you can turn, mesh and save.

Pipeline: any photo -> face, 68 landmarks, EG3D-aligned crop and camera (nofa.faces) ->
procedural template head baked into a tri-plane avatar (nofa.pipelines.template_fit.bake; cached
under outputs/cache keyed by its settings) -> the photo's colours put on the template's surface
(visible surface from the photo, hidden parts from their mirror image or the photo's skin and
hair colour, background matted out; nofa.pipelines.template_fit.texture), on the template's
geometry warped so that its landmarks land on the photo's (nofa.pipelines.template_fit.warp; per
photo, re-baked from the cached template in a few warm-started steps) -> optionally a few
steps of fast adaptation to the front view (paper eq. 14) -> turntable GIF, contact sheet PNG,
avatar file, coloured mesh.

Without trained NOFA++ weights there is no learned one-shot encoder here: the geometry is
the template's, and the portrait's appearance is transferred per image.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from ...io import depth_to_rgb, load_avatar, save_animation, save_avatar, save_image, to_uint8
from ...io.atomic import atomic_write_text
from ...render.cameras import default_label, orbit_labels
from .. import mesh as mesh_mod
from .adapt import AdaptConfig, fast_adapt
from .bake import bake_field
from .template import TemplateHead
from .texture import TextureConfig, face_polygon_mask, texture_avatar
from .warp import WarpConfig, fit_head_to_landmarks

__all__ = [
    "DemoConfig",
    "Portrait",
    "astronaut_portrait",
    "face_psnr",
    "identity_distances",
    "load_portrait",
    "run_demo",
    "template_cache_path",
]

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
    adapt: AdaptConfig = dataclasses.field(
        default_factory=lambda: AdaptConfig(
            planes="xy", steps=60, resolution=128, coarse_samples=16, importance_samples=16
        )
    )
    texture: TextureConfig = dataclasses.field(default_factory=TextureConfig)
    geometry_fit: bool = (
        True  # warp the template to the photo's 3D landmarks before colouring (warp.py)
    )
    warp: WarpConfig = dataclasses.field(default_factory=WarpConfig)
    geometry_steps: int = (
        150  # bake steps of the warped head, warm-started from the cached template
    )
    geometry_lr: float = 0.02
    cache_dir: str | None = (
        "outputs/cache"  # baked templates, keyed by their settings; None: no cache
    )
    crop_size: int = 512
    view_resolution: int = 128
    view_samples: int = 32
    frames: int = 20
    yaw_range_deg: float = 35.0
    mesh_resolution: int = 256
    mesh_level: float = 10.0
    animation_frames: int = 48  # animation.mp4/.gif: built-in expressions + camera sweep; 0: none
    # Held-out identity check (metrics.json, identity_views.png): dlib face-recogniser distance
    # between the aligned input and renders at these yaws (degrees, pitch 0), rendered at
    # identity_resolution (dlib's detector needs faces of ~40 px and more); () : none.
    identity_yaws_deg: tuple[float, ...] = (-35.0, -20.0, 0.0, 20.0, 35.0)
    identity_resolution: int = 256
    seed: int = 0
    progress: bool = True


def astronaut_portrait() -> torch.Tensor:
    """scikit-image's astronaut photo (shipped with the package), cropped to the face with a fixed
    box: [3, 216, 216]. The demo aligns the photo with nofa.faces instead when dlib is installed."""
    from skimage import data

    img = torch.from_numpy(data.astronaut().copy()).permute(2, 0, 1).float() / 127.5 - 1
    x0, y0, x1, y1 = ASTRONAUT_BOX
    return img[:, y0:y1, x0:x1].contiguous()


@dataclasses.dataclass
class Portrait:
    image: torch.Tensor  # [3, S, S] in [-1, 1], the aligned crop
    label: torch.Tensor  # [25] its camera
    landmarks: np.ndarray | None  # [68, 2] in crop pixels (None: unknown)
    source: str
    yaw: float = 0.0
    pitch: float = 0.0


def load_portrait(image: str | None, size: int = 512, log=print) -> Portrait:
    """Photo path (or None: the astronaut) -> aligned crop, estimated camera and landmarks.

    Without dlib the built-in photo falls back to a fixed face box and the frontal camera
    (with a note); a given photo then needs dlib (FaceDependencyError says what to install)."""
    from ...faces import FaceDependencyError, load_photo, prepare_face

    if image is None:
        from skimage import data

        photo, source = data.astronaut(), "skimage.data.astronaut"
    else:
        photo, source = load_photo(image), str(image)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            face = prepare_face(photo, size, name=source)
        for w in caught:
            log(f"note: {w.message}")
    except FaceDependencyError as e:
        if image is not None:
            raise
        log(f"note: {e}; using a fixed crop of the astronaut and the frontal camera")
        return Portrait(astronaut_portrait(), default_label(), None, source + " (fixed crop)")
    img = torch.from_numpy(face.aligned.image.copy()).permute(2, 0, 1).float() / 127.5 - 1
    return Portrait(
        img,
        torch.from_numpy(face.camera.label).float(),
        face.aligned.landmarks,
        source,
        face.camera.yaw,
        face.camera.pitch,
    )


def template_cache_path(cfg: DemoConfig) -> Path | None:
    """outputs/cache/template-<key>.nofa-avatar: the key hashes the bake settings and the template's
    source."""
    if not cfg.cache_dir:
        return None
    from . import template as template_mod

    settings = {
        "plane_resolution": cfg.plane_resolution,
        "channels": cfg.channels,
        "bake_steps": cfg.bake_steps,
        "bake_pool": cfg.bake_pool,
        "bake_batch": cfg.bake_batch,
        "seed": cfg.seed,
        "template_source": hashlib.sha1(Path(template_mod.__file__).read_bytes()).hexdigest(),
    }
    key = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    return Path(cfg.cache_dir) / f"template-{key}.nofa-avatar"


def face_psnr(
    rendered: torch.Tensor, target: torch.Tensor, landmarks: np.ndarray | None, crop_size: int
) -> float:
    """PSNR (dB, images in [-1, 1] mapped to 0..1) inside the face polygon (jaw + raised brows) of
    the landmarks; rendered/target [3, R, R]; landmarks in crop pixels (None: whole image)."""
    r = rendered.shape[-1]
    if landmarks is None:
        mask = torch.ones(r, r, dtype=torch.bool)
    else:
        mask = torch.from_numpy(face_polygon_mask(np.asarray(landmarks) * (r / crop_size), r))
    diff = ((rendered.float() - target.float()) / 2)[:, mask]
    mse = float((diff**2).mean())
    return 10 * math.log10(1.0 / max(mse, 1e-12))


def _views(avatar, labels: torch.Tensor, res: int, samples: int):
    renderer = avatar.renderer(
        deterministic=True, coarse_samples=samples, importance_samples=samples
    )
    outs = []
    with torch.no_grad():
        for lab in labels:
            outs.append(renderer(avatar.planes, lab[None], res))
    return outs


NO_FACE = "no face found in the render"


def identity_distances(
    avatar,
    portrait: torch.Tensor,
    fitted_label: torch.Tensor,
    yaws_deg: tuple[float, ...],
    resolution: int,
    samples: int,
) -> dict:
    """Held-out identity check: dlib's face-recogniser distance (Euclidean, `face_distance`;
    dlib calls two faces the same person below 0.6) between the aligned input `portrait`
    [3, S, S] and renders of `avatar` at each yaw of `yaws_deg` (degrees, pitch 0, the frontal
    camera's orbit), plus the fitted view (`fitted_label`, the one fast adaptation fitted: not
    held out, for comparison). A view where dlib finds no face has distance None and `note`
    NO_FACE. Returns {"embedder", "threshold", "resolution", "input_face_found", "views":
    [{"view", "yaw_deg", "pitch_deg", "face_found", "distance", "note"}], "fitted_view": {...}}
    and the rendered images under "images" (uint8 [R, R, 3], in views order)."""
    from ...metrics.identity import DLIB_SAME_PERSON_DISTANCE, IdentityMetric, face_distance

    metric = IdentityMetric()  # dlib + face_recognition_models (RuntimeError says what's missing)
    ref = metric.embed_face(to_uint8(portrait))
    labels = torch.stack(
        [default_label(math.radians(y), 0.0) for y in yaws_deg] + [fitted_label.float()]
    )
    renders = _views(avatar, labels, resolution, samples)
    images = [to_uint8(o.rgb[0]) for o in renders]
    entries = []
    for i, img in enumerate(images):
        emb = metric.embed_face(img)
        fitted = i == len(yaws_deg)
        entry = {
            "view": "fitted view" if fitted else f"yaw {yaws_deg[i]:+g}".replace("+0", "0"),
            "yaw_deg": None if fitted else float(yaws_deg[i]),
            "pitch_deg": None if fitted else 0.0,
            "face_found": emb is not None,
            "distance": None if emb is None or ref is None else face_distance(ref, emb),
            "note": None,
        }
        if emb is None:
            entry["note"] = NO_FACE
        elif ref is None:
            entry["note"] = "no face found in the input"
        entries.append(entry)
    return {
        "embedder": metric.name,
        "threshold": DLIB_SAME_PERSON_DISTANCE,
        "resolution": resolution,
        "input_face_found": ref is not None,
        "views": entries[:-1],
        "fitted_view": entries[-1],
        "images": images,
    }


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

    t = time.perf_counter()
    port = load_portrait(cfg.image, cfg.crop_size, log)
    portrait, front, source = port.image, port.label, port.source
    timings["face"] = time.perf_counter() - t
    log(f"photo: {source}; estimated camera yaw {port.yaw:+.1f} deg, pitch {port.pitch:+.1f} deg")

    t = time.perf_counter()
    cache = template_cache_path(cfg)
    if cfg.template:
        template = load_avatar(cfg.template)
        log(f"template avatar: {cfg.template}")
    elif cache is not None and cache.is_file():
        template = load_avatar(cache)
        log(f"template: cached bake {cache}")
    else:
        log(
            f"baking the procedural template head into a {cfg.plane_resolution}^2 x {cfg.channels} "
            "tri-plane ..."
        )
        template = bake_field(
            TemplateHead(),
            cfg.plane_resolution,
            cfg.channels,
            cfg.bake_steps,
            batch=cfg.bake_batch,
            pool=cfg.bake_pool,
            seed=cfg.seed,
            progress=cfg.progress,
            metadata={"template": "nofa.pipelines.template_fit.TemplateHead"},
        )
        if cache is not None:
            save_avatar(cache, template)
    template_path = save_avatar(out / "template.nofa-avatar", template)
    timings["template"] = time.perf_counter() - t

    avatar = template
    texture_info = None
    geometry = None
    shaped = template
    if port.landmarks is not None and cfg.texture.steps > 0:
        head = TemplateHead()
        if cfg.geometry_fit and cfg.template:
            log("note: no geometry fit for a given --template (it is not the procedural head)")
        elif cfg.geometry_fit:
            # Per photo: the warped head re-baked from the cached template (warm start, few steps).
            t = time.perf_counter()
            head, geometry = fit_head_to_landmarks(
                port.landmarks, front.double().numpy(), portrait.shape[-1], cfg.warp
            )
            log(
                f"geometry fit: template landmarks reproject {geometry['rms_px_before']:.1f} px "
                "RMS "
                f"-> {geometry['rms_px_after']:.1f} px (at {portrait.shape[-1]}), face scale "
                + " ".join(f"{v:.3f}" for v in geometry["scale"])
            )
            shaped = bake_field(
                head,
                steps=cfg.geometry_steps,
                batch=cfg.bake_batch,
                pool=cfg.bake_pool,
                lr=cfg.geometry_lr,
                seed=cfg.seed,
                progress=cfg.progress,
                init=template,
                metadata={
                    "template": "nofa.pipelines.template_fit.TemplateHead",
                    "geometry_warped": True,
                },
            )
            timings["geometry_fit"] = time.perf_counter() - t
        avatar, texture_info = texture_avatar(
            shaped,
            portrait,
            front,
            port.landmarks,
            dataclasses.replace(cfg.texture, progress=cfg.progress),
            head,
        )
        timings["colour"] = texture_info["seconds"]
    adapt_cfg = dataclasses.replace(cfg.adapt, progress=cfg.progress)
    result = None
    if adapt_cfg.steps > 0 or texture_info is None:
        result = fast_adapt(avatar, portrait, front, adapt_cfg)
        avatar = result.avatar
        timings["fast_adaptation"] = result.seconds
    avatar.metadata.update(
        {
            "portrait": source,
            "camera_label": [float(v) for v in front],
            "note": "template + photo colours on its surface (no trained NOFA++ weights)",
        }
    )
    files = {"avatar": save_avatar(out / "avatar.nofa-avatar", avatar), "template": template_path}

    t = time.perf_counter()
    yaw = math.radians(cfg.yaw_range_deg)
    novel = torch.stack(
        [
            default_label(-yaw, 0.0),
            default_label(-yaw / 2, -0.15),
            default_label(yaw / 2, 0.15),
            default_label(yaw, 0.0),
        ]
    )
    res = cfg.view_resolution
    front_out = _views(avatar, front[None], res, cfg.view_samples)[0]
    novel_outs = _views(avatar, novel, res, cfg.view_samples)
    tmpl_out = _views(shaped, front[None], res, cfg.view_samples)[0]
    size = (res, res)
    tiles = [
        to_uint8(torch.nn.functional.interpolate(portrait[None], size=size, mode="area")[0]),
        to_uint8(tmpl_out.rgb[0]),
        to_uint8(front_out.rgb[0]),
    ]
    tiles += [to_uint8(o.rgb[0]) for o in novel_outs]
    tiles.append(depth_to_rgb(front_out.depth[0], front_out.weight[0]))
    psnr = face_psnr(
        front_out.rgb[0],
        torch.nn.functional.interpolate(portrait[None], size=size, mode="area")[0],
        port.landmarks,
        portrait.shape[-1],
    )
    names = [
        "input (aligned)",
        "template" + (" (fitted)" if geometry else ""),
        f"fitted view {psnr:.1f} dB",
        f"yaw -{cfg.yaw_range_deg:g}",
        "yaw -/2 pitch",
        "yaw +/2 pitch",
        f"yaw +{cfg.yaw_range_deg:g}",
        "depth",
    ]
    files["contact_sheet"] = save_image(out / "contact_sheet.png", _contact_sheet(tiles, names))
    timings["views"] = time.perf_counter() - t

    # Held-out measures: the PSNR above is on the view fast adaptation fitted.
    identity = None
    if cfg.identity_yaws_deg:
        t = time.perf_counter()
        try:
            identity = identity_distances(
                avatar,
                portrait,
                front,
                tuple(cfg.identity_yaws_deg),
                cfg.identity_resolution,
                cfg.view_samples,
            )
        except RuntimeError as e:  # dlib or face_recognition_models missing
            log(f"note: no identity check: {e}")
            identity = {"error": str(e), "views": [], "fitted_view": None}
        images = identity.pop("images", [])
        if images:
            r = cfg.identity_resolution
            small = torch.nn.functional.interpolate(portrait[None], size=(r, r), mode="area")
            id_tiles = [to_uint8(small[0])] + images
            id_names = ["input (aligned)"] + [
                f"{v['view']}: "
                + (f"{v['distance']:.3f}" if v["distance"] is not None else "no face")
                for v in identity["views"] + [identity["fitted_view"]]
            ]
            files["identity_views"] = save_image(
                out / "identity_views.png", _contact_sheet(id_tiles, id_names)
            )
        timings["identity"] = time.perf_counter() - t
    metrics = {
        "fitted_view_psnr_db": psnr,
        "fitted_view_psnr_note": (
            "face region of the view fast adaptation fitted (the photo's own camera): "
            "not a held-out measure"
        ),
        "camera": {"yaw": port.yaw, "pitch": port.pitch},
        "identity": identity,
    }
    files["metrics"] = atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")

    t = time.perf_counter()
    frames = _views(avatar, orbit_labels(cfg.frames, yaw), res, cfg.view_samples)
    files["turntable"] = save_animation(
        out / "turntable.gif", [to_uint8(f.rgb[0]) for f in frames], fps=12
    )
    timings["turntable"] = time.perf_counter() - t

    t = time.perf_counter()
    try:
        mesh = mesh_mod.mesh_from_avatar(
            avatar, resolution=cfg.mesh_resolution, level=cfg.mesh_level
        )
    except ValueError as e:  # an under-trained (e.g. --quick) template may never reach the level
        grid = mesh_mod.density_grid(
            mesh_mod.avatar_density_fn(avatar), 16, avatar.options.box_warp / 2
        )
        level = float(grid.min() + grid.max()) / 2
        log(f"mesh: {e}; using level {level:.3g} instead")
        mesh = mesh_mod.mesh_from_avatar(avatar, resolution=cfg.mesh_resolution, level=level)
    files["mesh"] = mesh_mod.export_mesh(mesh, out / "head.ply")
    timings["mesh"] = time.perf_counter() - t

    if cfg.animation_frames > 0:
        # The demo moving: driven by a built-in expression sequence while the camera sweeps.
        # A template-fit avatar has no deformation model, so it animates with the identity
        # deformation, and the frames say so.
        from ..animate import write_demo_animation

        t = time.perf_counter()
        anim = write_demo_animation(
            files["avatar"],
            out,
            frames=cfg.animation_frames,
            resolution=res,
            samples=cfg.view_samples,
            yaw_range=cfg.yaw_range_deg,
            progress=cfg.progress,
        )
        files["animation"], files["animation_gif"] = anim["mp4"], anim["gif"]
        for note in anim["notes"]:
            log(f"animation: {note}")
        timings["animation"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t_all
    return {
        "files": {k: str(v) for k, v in files.items()},
        "timings": timings,
        "adapt_loss": (result.losses[0], result.losses[-1])
        if result is not None and result.losses
        else None,
        "mesh_vertices": len(mesh.vertices),
        "face_psnr": psnr,
        "identity": identity,
        "camera": {"yaw": port.yaw, "pitch": port.pitch},
        "texture": texture_info and {k: v for k, v in texture_info.items() if k != "losses"},
        "geometry": geometry
        and {k: geometry[k] for k in ("rms_px_before", "rms_px_after", "scale")},
    }
