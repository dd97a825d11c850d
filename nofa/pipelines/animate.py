"""Drive an avatar with a 3DMM coefficient sequence -> frames, MP4 (with audio) or PNGs
(docs/animate.md).

    from nofa.pipelines.animate import AnimateOptions, animate, write_video
    anim = animate("avatar.nofa-anim", "driving.npy", AnimateOptions(camera="orbit"))
    for frame in anim: ...                                  # uint8 [H, W, 3], on demand
    write_video(animate(...), "talk.mp4", audio="speech.wav")

A source is encoded once (:class:`nofa.models.model_file.AnimatableAvatar`), then frames are
rendered in batches and streamed to the encoder: memory does not grow with the length of the
drive. Template-fit avatars of `nofa demo` animate with the identity deformation (no
deformation model exists for them), which `Animation.notes` says.
"""

from __future__ import annotations

import math
import os
import resource
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch

from ..io.coeffs import CoeffFileError, Coeffs, load_coeffs, load_deep3d_folder, natural_key
from ..io.eg3d_labels import deep3d_to_eg3d_labels
from ..models.animatable import AnimatableAvatar, load_animatable
from ..models.model_file import ModelFileError, load_model
from ..render import default_label, orbit_labels
from .animate_options import CAMERA_MODES, AnimateOptions

__all__ = [
    "CAMERA_MODES",
    "AnimateOptions",
    "Animation",
    "PortraitError",
    "animate",
    "builtin_expressions",
    "load_driving",
    "load_source",
    "peak_rss_mib",
    "smooth_coeffs",
    "write_demo_animation",
    "write_png_frames",
    "write_video",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
COEFF_SUFFIXES = (".mat", ".npy", ".npz")
AVATAR_SUFFIXES = (".nofa", ".nofa-anim", ".pt", ".pth")
# An --aligned portrait is an FFHQ/EG3D face crop: square, and no smaller than the smallest face
# nofa.faces can find in a photo (faces.MIN_PHOTO_SIDE).
MIN_ALIGNED_SIDE = 40


class PortraitError(ValueError):
    """A portrait SOURCE that cannot be encoded as given (e.g. an --aligned crop that is not a
    square face crop); the message names the file and what was expected."""


IDENTITY_NOTE = (
    "identity deformation: this avatar has no deformation model, so expressions do not move the "
    "face"
)


# -- driving ---------------------------------------------------------------------------------
def load_driving(path: str | os.PathLike) -> Coeffs:
    """A driving sequence: a Deep3DFaceRecon .mat folder or [T, 257] file, a [T, 64] / [T, 70]
    expression sequence, or a folder of driving frames with their coefficient files (same stem,
    next to the frames or in a `coeffs/` subfolder). Errors name the offending file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"driving sequence not found: {path}")
    if path.is_file():
        return load_coeffs(path)
    entries = sorted(path.iterdir(), key=lambda p: natural_key(p.name))
    frames = [p for p in entries if p.suffix.lower() in IMAGE_SUFFIXES]
    if not frames:
        return load_deep3d_folder(path)
    rows, names = [], []
    for f in frames:
        cands = [
            d / (f.stem + s)
            for d in (path, path / "coeffs", path / "coeff")
            for s in COEFF_SUFFIXES
        ]
        c = next((p for p in cands if p.is_file()), None)
        if c is None:
            raise CoeffFileError(
                f"{f}: driving frame without a coefficient file (looked for {f.stem}.mat/.npy/.npz "
                f"in {path} and {path / 'coeffs'})"
            )
        seq = load_coeffs(c)
        if len(seq) != 1 or seq.kind != "deep3d":
            raise CoeffFileError(
                f"{c}: a driving frame's coefficient file must hold one Deep3DFaceRecon row [1, "
                "257], "
                f"got {len(seq)} row(s) of kind {seq.kind}"
            )
        rows.append(seq.to_deep3d())
        names.append(f.stem)
    from ..io.coeffs import split_deep3d

    return split_deep3d(np.concatenate(rows), str(path), names)


def smooth_coeffs(arr: np.ndarray | None, window: int) -> np.ndarray | None:
    """Centred moving average over `window` frames (odd; edges repeat the end frames); 0/1 = off."""
    if arr is None or window <= 1:
        return arr
    if window % 2 == 0:
        raise ValueError(f"smoothing window must be odd (centred), got {window}")
    h = window // 2
    padded = np.concatenate([np.repeat(arr[:1], h, 0), arr, np.repeat(arr[-1:], h, 0)])
    c = np.cumsum(np.concatenate([np.zeros_like(arr[:1]), padded]), 0, dtype=np.float64)
    return ((c[window:] - c[:-window]) / window).astype(np.float32)


def builtin_expressions(n: int, exp_dim: int = 64, seed: int = 0) -> np.ndarray:
    """A short talking-and-smiling-like expression sequence [n, exp_dim]: smooth sines on the
    first few BFM expression coefficients (the ones that open the mouth and smile)."""
    t = np.arange(n, dtype=np.float32) / 25.0
    exp = np.zeros((n, exp_dim), np.float32)
    exp[:, 0] = 1.2 * np.abs(np.sin(2 * np.pi * 1.5 * t))  # jaw / mouth open (talking rhythm)
    exp[:, 1] = 0.8 * np.sin(2 * np.pi * 0.25 * t) ** 2  # smile, slow
    exp[:, 2] = 0.4 * np.sin(2 * np.pi * 0.6 * t + 1.0)
    exp[:, 3] = 0.3 * np.sin(2 * np.pi * 0.9 * t + 2.0)
    return exp


# -- source ---------------------------------------------------------------------------------
def load_source(
    source: str | os.PathLike,
    model: str | os.PathLike | None = None,
    *,
    source_camera: torch.Tensor | np.ndarray | None = None,
    source_coeffs: str | None = None,
    aligned: bool = False,
    device: str | torch.device = "cpu",
    resolution: int | None = None,
    save_to: str | os.PathLike | None = None,
) -> tuple[AnimatableAvatar, list[str]]:
    """SOURCE -> (AnimatableAvatar, notes). SOURCE is an avatar file (animatable, or a
    template-fit `nofa demo` avatar), or a portrait with `model` (a model file): an aligned
    crop (`aligned=True`, camera `source_camera` [25] or frontal) is encoded directly; an
    unaligned photo goes through nofa.faces (alignment + camera) when that package is present.
    `source_coeffs`: the portrait's Deep3DFaceRecon coefficients (its identity alpha; zeros
    otherwise). `save_to`: write the encoded avatar there for later drives."""
    source = Path(source)
    notes: list[str] = []
    if not source.is_file():
        raise FileNotFoundError(f"source not found: {source}")
    if source.suffix.lower() in IMAGE_SUFFIXES:
        if model is None:
            raise ValueError(
                f"SOURCE {source} is a photo: pass --model MODEL (a nofa model file) to encode it, "
                "or give an avatar file as SOURCE"
            )
        net = load_model(model, map_location=device)
        image, camera, n = _portrait(source, net.image_size, aligned, source_camera)
        notes += n
        alpha = None
        if source_coeffs:
            c = load_coeffs(source_coeffs)
            if c.id is None:
                raise CoeffFileError(
                    f"{source_coeffs}: source coefficients must be Deep3DFaceRecon (with identity)"
                )
            alpha = torch.from_numpy(c.id[:1])
        else:
            notes.append(
                "source identity coefficients not given (--source-coeffs): alpha = 0 (mean "
                "identity)"
            )
        with torch.no_grad():
            av = AnimatableAvatar.from_model(
                net,
                image.to(device),
                camera.to(device),
                alpha,
                source=str(source),
                model_file=str(model),
            )
        if save_to:
            from ..models.animatable import save_animatable

            save_animatable(save_to, av)
            notes.append(f"encoded avatar saved to {save_to}")
    else:
        if model is not None:
            notes.append(f"--model ignored: SOURCE {source} is already an avatar")
        try:
            av = load_animatable(source, map_location=device)
        except ModelFileError as e:
            raise ModelFileError(f"SOURCE {e}") from e
        if av.kind == "template-fit" and resolution:
            av.render_resolution = int(resolution)
    if av.identity_deformation:
        notes.append(IDENTITY_NOTE)
    return av.to(device).eval(), notes


def _portrait(
    path: Path, size: int, aligned: bool, camera
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    from ..io.images import load_image

    if aligned:
        img = load_image(path)
        h, w = img.shape[-2:]
        if abs(h - w) > 1 or min(h, w) < MIN_ALIGNED_SIDE:
            raise PortraitError(
                f"{path}: an aligned portrait must be a square FFHQ/EG3D face crop of at "
                f"least {MIN_ALIGNED_SIDE}x{MIN_ALIGNED_SIDE} px, got {w}x{h} px (without "
                "--aligned, nofa.faces finds and aligns the face in a photo)"
            )
        img = load_image(path, size)[None]
        cam = (
            default_label()[None]
            if camera is None
            else torch.as_tensor(camera, dtype=torch.float32).reshape(1, 25)
        )
        return (
            img,
            cam,
            []
            if camera is not None
            else ["aligned source: frontal FFHQ camera assumed (--source-camera)"],
        )
    try:
        from .. import faces
    except ImportError as e:
        raise RuntimeError(
            f"SOURCE {path} is an unaligned photo: aligning it needs nofa's face package "
            "(nofa.faces), which this installation lacks; pass an FFHQ/EG3D-aligned crop with "
            "--aligned instead"
        ) from e
    face = faces.prepare_face(faces.load_photo(path), size, name=str(path))
    crop, label = face.aligned.image, face.camera.label
    img = torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1)[None].float() / 127.5 - 1
    return (
        img,
        torch.as_tensor(np.asarray(label), dtype=torch.float32).reshape(1, 25),
        ["source aligned and its camera estimated by nofa.faces"],
    )


# -- the animation ----------------------------------------------------------------------------
class Animation:
    """An iterator of uint8 frames [H, W, 3] (rendered in batches on demand).

    n_frames, fps, size, notes (what the caller should be told), timings (seconds per
    stage, filled while iterating: deformation, render, sr, total)."""

    def __init__(
        self,
        avatar: AnimatableAvatar,
        exp: np.ndarray | None,
        cameras: torch.Tensor,
        fps: float,
        batch: int,
        notes: list[str],
        overlay: str | None = None,
    ) -> None:
        self.avatar, self.exp, self.cameras = avatar, exp, cameras
        self.fps, self.batch, self.notes, self.overlay = float(fps), int(batch), notes, overlay
        self.n_frames = int(cameras.shape[0])
        self.timings: dict[str, float] = {}
        self.size = avatar.image_size

    def __len__(self) -> int:
        return self.n_frames

    def __iter__(self) -> Iterator[np.ndarray]:
        av = self.avatar
        dev = av.planes.device
        for s in range(0, self.n_frames, self.batch):
            e = min(s + self.batch, self.n_frames)
            beta = None if self.exp is None else torch.from_numpy(self.exp[s:e]).to(dev)
            t0 = time.perf_counter()
            with torch.no_grad():
                out = av.render(beta, self.cameras[s:e].to(dev), timings=self.timings)
                frames = ((out["image"].clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
                frames = frames.permute(0, 2, 3, 1).cpu().numpy()
            self.timings["total"] = self.timings.get("total", 0.0) + time.perf_counter() - t0
            for f in frames:
                yield _overlay(f, self.overlay) if self.overlay else f


def _camera_path(
    opts: AnimateOptions, n: int, avatar: AnimatableAvatar, coeffs: Coeffs | None
) -> torch.Tensor:
    """The camera of each frame, [n, 25]."""
    mode = opts.camera
    if mode == "source":
        return avatar.camera.detach().cpu().expand(n, -1).clone()
    if mode == "fixed":
        yaw, pitch = math.radians(opts.yaw), math.radians(opts.pitch)
        return default_label(yaw, pitch)[None].expand(n, -1).clone()
    if mode == "orbit":
        return orbit_labels(n, math.radians(opts.orbit_yaw), math.radians(opts.orbit_pitch))
    if mode == "driving":
        if coeffs is None or not coeffs.has_pose:
            src = coeffs.source if coeffs is not None else "the driving sequence"
            raise ValueError(
                f"camera 'driving' needs head poses, but {src} has none ([T, 64] expressions "
                "only); "
                "use a [T, 70] or Deep3DFaceRecon sequence, or --camera source/fixed/orbit"
            )
        return torch.from_numpy(deep3d_to_eg3d_labels(coeffs.angle, coeffs.trans))
    raise ValueError(f"camera must be one of {CAMERA_MODES}, got {mode!r}")


def animate(
    source: str | os.PathLike | AnimatableAvatar,
    driving: str | os.PathLike | Coeffs | np.ndarray,
    options: AnimateOptions | None = None,
    *,
    model: str | os.PathLike | None = None,
    source_camera=None,
    source_coeffs: str | None = None,
    aligned: bool = False,
) -> Animation:
    """Drive SOURCE (avatar file, AnimatableAvatar, or portrait + `model`) with DRIVING (file,
    folder, Coeffs, or an expression array [T, 64] / [T, 70]) -> :class:`Animation` (an
    iterator of uint8 frames [H, W, 3]; nothing is rendered until it is iterated).

    options: camera path, fps, smoothing, batch, render quality (:class:`AnimateOptions`;
    None: its defaults). The keywords describe a portrait SOURCE only (see
    :func:`load_source`). Rendering is deterministic (same frames every run)."""
    opts = options if options is not None else AnimateOptions()
    notes: list[str] = []
    if isinstance(source, AnimatableAvatar):
        av = source.to(opts.device)
        if av.identity_deformation:
            notes.append(IDENTITY_NOTE)
    else:
        av, notes = load_source(
            source,
            model,
            source_camera=source_camera,
            source_coeffs=source_coeffs,
            aligned=aligned,
            device=opts.device,
            resolution=opts.resolution,
        )
    if isinstance(driving, Coeffs):
        coeffs = driving
    elif isinstance(driving, np.ndarray):
        arr = np.asarray(driving, np.float32)
        if arr.ndim != 2 or arr.shape[1] not in (64, 70) or not np.isfinite(arr).all():
            raise ValueError(
                f"driving array must be a finite [T, 64] or [T, 70] expression sequence, got "
                f"{list(arr.shape)}"
            )
        coeffs = Coeffs(
            exp=arr[:, :64],
            angle=arr[:, 64:67] if arr.shape[1] == 70 else None,
            trans=arr[:, 67:70] if arr.shape[1] == 70 else None,
            kind="expression",
            source="array",
            fps=25.0,
        )
    else:
        coeffs = load_driving(driving)
    if opts.max_frames:
        coeffs = _head(coeffs, opts.max_frames)
    n = len(coeffs)
    window = opts.smoothing
    exp = smooth_coeffs(coeffs.exp, window)
    if window > 1:
        coeffs.angle, coeffs.trans = (
            smooth_coeffs(coeffs.angle, window),
            smooth_coeffs(coeffs.trans, window),
        )
        notes.append(f"driving coefficients smoothed over {window} frames")
    if exp.shape[1] != av.exp_dim:
        raise ValueError(
            f"driving expressions have {exp.shape[1]} coefficients, the avatar's deformation field "
            f"takes {av.exp_dim}"
        )
    cams = _camera_path(opts, n, av, coeffs)
    changes = {"deterministic": True}
    if opts.samples:
        changes.update(coarse_samples=int(opts.samples), importance_samples=int(opts.samples))
    if opts.chunk_rays:
        changes["chunk_rays"] = int(opts.chunk_rays)
    av.renderer.options = av.renderer.options.replace(**changes)
    if opts.resolution and av.superres is None:
        av.render_resolution = int(opts.resolution)
    rate = float(opts.fps or coeffs.fps or 25.0)
    exp = None if av.identity_deformation else exp
    return Animation(av, exp, cams, rate, opts.batch, notes, opts.overlay)


def _head(c: Coeffs, n: int) -> Coeffs:
    import dataclasses

    cut = {k: (v[:n] if isinstance(v, np.ndarray) else v) for k, v in dataclasses.asdict(c).items()}
    cut["names"] = c.names[:n] if c.names else c.names
    return Coeffs(**cut)


def _overlay(frame: np.ndarray, text: str) -> np.ndarray:
    """`text` in a black band at the bottom, in the largest font that fits the width
    (split over two lines when one does not fit)."""
    from PIL import Image, ImageDraw, ImageFont

    img = Image.fromarray(frame)
    d = ImageDraw.Draw(img)
    w, h = img.size
    words = text.split()
    two = [" ".join(words[: (len(words) + 1) // 2]), " ".join(words[(len(words) + 1) // 2 :])]

    def font_of(size: int):
        try:
            return ImageFont.load_default(size=size)
        except TypeError:  # Pillow without FreeType sizing: the fixed bitmap font
            return ImageFont.load_default()

    fit = next(
        (
            (lines, size)
            for lines in ([text], two)
            for size in range(max(8, h // 14), 5, -1)
            if max(d.textlength(t, font=font_of(size)) for t in lines) <= w - 4
        ),
        (two, 6),
    )
    lines, size = fit
    band = (size + 2) * len(lines) + 2
    d.rectangle([0, h - band, w, h], fill=(0, 0, 0))
    for i, t in enumerate(lines):
        d.text((2, h - band + 1 + i * (size + 2)), t, fill=(255, 255, 255), font=font_of(size))
    return np.asarray(img)


# -- writers ----------------------------------------------------------------------------------
def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (MiB)."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / (1024 * 1024) if sys.platform == "darwin" else r / 1024


def ffmpeg_exe() -> str:
    try:
        import imageio_ffmpeg
    except ImportError as e:
        raise RuntimeError(
            "writing MP4 needs the imageio-ffmpeg package (pip install imageio-ffmpeg); or write "
            "PNG frames (--frames-dir)"
        ) from e
    return imageio_ffmpeg.get_ffmpeg_exe()


def write_video(
    frames: Iterable[np.ndarray],
    out: str | os.PathLike,
    fps: float | None = None,
    audio: str | os.PathLike | None = None,
    progress: bool = True,
    total: int | None = None,
    quality: float = 8.0,
    on_frame=None,
) -> dict:
    """Stream uint8 frames [H, W, 3] into an MP4 (H.264, yuv420p) through imageio-ffmpeg's
    ffmpeg, muxing `audio` (AAC; cut to the video's length) when given. Frames are written as
    they come (memory independent of length); the file appears atomically at the end.
    Returns a summary dict (frames, seconds, fps, render_fps, wall_s, peak_rss_mib)."""
    import imageio_ffmpeg  # noqa: F401  (clear error first)
    from tqdm import tqdm

    ffmpeg_exe()
    out = Path(out)
    if out.suffix.lower() not in (".mp4", ".mov", ".mkv"):
        raise ValueError(f"video output must be .mp4 (or .mov/.mkv), got {out}")
    if audio is not None and not Path(audio).is_file():
        raise FileNotFoundError(f"audio file not found: {audio}")
    fps = float(fps or getattr(frames, "fps", 25.0))
    total = total or (len(frames) if hasattr(frames, "__len__") else None)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.partial{out.suffix}")
    writer, n, t0 = None, 0, time.perf_counter()
    try:
        for frame in tqdm(frames, total=total, desc="animate", unit="frame", disable=not progress):
            frame = np.ascontiguousarray(frame)
            if writer is None:
                h, w = frame.shape[:2]
                writer = imageio_ffmpeg.write_frames(
                    str(tmp),
                    (w, h),
                    fps=fps,
                    codec="libx264",
                    quality=quality,
                    macro_block_size=1,
                    pix_fmt_out="yuv420p",
                    audio_path=str(audio) if audio else None,
                    audio_codec="aac" if audio else None,
                    output_params=["-shortest"] if audio else None,
                    ffmpeg_log_level="error",
                )
                writer.send(None)
            writer.send(frame)
            n += 1
            if on_frame is not None:
                on_frame(n)
        if writer is None:
            raise ValueError("no frames to write")
        writer.close()
        writer = None
        os.replace(tmp, out)
    finally:
        if writer is not None:
            writer.close()
        if tmp.exists():
            tmp.unlink()
    wall = time.perf_counter() - t0
    return {
        "path": str(out),
        "frames": n,
        "seconds": n / fps,
        "fps": fps,
        "wall_s": wall,
        "render_fps": n / wall if wall > 0 else float("inf"),
        "peak_rss_mib": peak_rss_mib(),
    }


def write_png_frames(
    frames: Iterable[np.ndarray],
    out_dir: str | os.PathLike,
    progress: bool = True,
    total: int | None = None,
) -> dict:
    """Write frames as out_dir/000000.png, ... (each file atomically)."""
    from PIL import Image
    from tqdm import tqdm

    from ..io.atomic import atomic_write

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fps = float(getattr(frames, "fps", 25.0))
    total = total or (len(frames) if hasattr(frames, "__len__") else None)
    n, t0 = 0, time.perf_counter()
    for frame in tqdm(frames, total=total, desc="animate", unit="frame", disable=not progress):
        atomic_write(
            out_dir / f"{n:06d}.png", lambda t, f=frame: Image.fromarray(f).save(t, format="PNG")
        )
        n += 1
    wall = time.perf_counter() - t0
    return {
        "path": str(out_dir),
        "frames": n,
        "seconds": n / fps,
        "fps": fps,
        "wall_s": wall,
        "render_fps": n / wall if wall > 0 else float("inf"),
        "peak_rss_mib": peak_rss_mib(),
    }


def summary_line(s: dict) -> str:
    return (
        f"wrote {s['path']}: {s['frames']} frames, {s['seconds']:.2f} s at {s['fps']:g} fps; "
        "rendered in "
        f"{s['wall_s']:.1f} s ({s['render_fps']:.2f} frames/s); peak memory "
        f"{s['peak_rss_mib']:.0f} MiB"
    )


def write_demo_animation(
    avatar_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    frames: int = 48,
    fps: float = 15.0,
    resolution: int = 128,
    samples: int = 24,
    yaw_range: float = 30.0,
    device: str = "cpu",
    progress: bool = True,
) -> dict:
    """The demo moving: `avatar_path` driven by a short built-in expression sequence while the
    camera sweeps +-`yaw_range` degrees -> out_dir/animation.mp4 and animation.gif. A
    template-fit avatar animates with the identity deformation, and the frames say so."""
    import imageio.v2 as imageio

    from ..io.atomic import atomic_write

    av, notes = load_source(avatar_path, device=device, resolution=resolution)
    overlay = "identity deformation (no trained model)" if av.identity_deformation else None
    opts = AnimateOptions(
        camera="orbit",
        orbit_yaw=yaw_range,
        fps=fps,
        device=device,
        resolution=resolution,
        samples=samples,
        overlay=overlay,
    )
    anim = animate(av, builtin_expressions(frames, av.exp_dim), opts)
    notes = list(dict.fromkeys(notes + anim.notes))
    out = Path(out_dir)
    gif_frames: list[np.ndarray] = []  # a short demo: the GIF keeps its (small) frames

    def keep(fr: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        for f in fr:
            gif_frames.append(f)
            yield f

    summary = write_video(
        keep(anim), out / "animation.mp4", fps=fps, progress=progress, total=len(anim)
    )
    gif = atomic_write(
        out / "animation.gif",
        lambda t: imageio.mimsave(t, gif_frames, format="GIF", duration=1000.0 / fps, loop=0),
    )
    return {"mp4": out / "animation.mp4", "gif": gif, "notes": notes, "summary": summary}
