"""`nofa animate`: SOURCE + DRIVING -> talking-head MP4 (with audio) or PNG frames."""

from __future__ import annotations

import argparse

from nofa.pipelines.animate_options import CAMERA_MODES

from ._common import add_backend

NAME = "animate"
HELP = (
    "drive an avatar (or a portrait + --model) with 3DMM coefficients -> MP4 with audio, or PNG "
    "frames"
)
DESCRIPTION = """Animate SOURCE with the driving sequence DRIVING and write --out.

SOURCE: an avatar file (an animatable avatar, or a `nofa demo` avatar: those have no
deformation model and animate with the identity deformation, which is said), or a portrait
with --model MODEL (an FFHQ/EG3D-aligned crop with --aligned; an unaligned photo needs nofa's
face package). --save-avatar keeps the encoded portrait for later drives.
DRIVING: a folder of Deep3DFaceRecon .mat files, a [T, 257] .npy/.npz, a [T, 64] or [T, 70]
expression sequence (.npy/.npz/.mat, 25 fps), or a folder of driving frames with their
coefficient files (same name, beside them or in coeffs/).
--out NAME.mp4 streams frames to an H.264 MP4 (imageio-ffmpeg); any other --out is a folder
of PNG frames. Examples:
  nofa animate outputs/demo/avatar.nofa-avatar --drive speech_exp.npy --audio speech.wav \\
      --out talk.mp4
  nofa animate me.png --aligned --model nofa.nofa-model --drive coeffs/ --camera driving \\
      --out talk.mp4"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", metavar="SOURCE", help="avatar file, or portrait image (with --model)")
    p.add_argument(
        "--drive", required=True, metavar="DRIVING", help="driving coefficients (file or folder)"
    )
    p.add_argument(
        "--out",
        default="talk.mp4",
        help="output .mp4, or a folder for PNG frames (default talk.mp4)",
    )
    p.add_argument("--model", default=None, help="model file, to encode a portrait SOURCE")
    p.add_argument(
        "--aligned",
        action="store_true",
        help="the portrait SOURCE is already an FFHQ/EG3D-aligned crop",
    )
    p.add_argument(
        "--source-camera",
        default=None,
        help="camera label of an aligned portrait: 25 comma-separated numbers (default frontal)",
    )
    p.add_argument(
        "--source-coeffs",
        default=None,
        help="Deep3DFaceRecon coefficients of the portrait (its identity)",
    )
    p.add_argument(
        "--save-avatar", default=None, help="also write the encoded portrait as an avatar file"
    )
    p.add_argument(
        "--camera",
        choices=CAMERA_MODES,
        default="source",
        help="source: the source's camera (default); driving: the driving head pose; fixed: "
        "frontal or --yaw/--pitch; orbit: a sweep of +-orbit-yaw degrees",
    )
    p.add_argument("--yaw", type=float, default=0.0, help="fixed camera yaw in degrees")
    p.add_argument("--pitch", type=float, default=0.0, help="fixed camera pitch in degrees")
    p.add_argument(
        "--orbit-yaw",
        type=float,
        default=25.0,
        help="orbit sweep in degrees either side (default 25)",
    )
    p.add_argument(
        "--fps", type=float, default=None, help="frame rate (default: the driving format's, 25)"
    )
    p.add_argument(
        "--smooth",
        type=int,
        default=0,
        metavar="WINDOW",
        help="centred moving average of the driving coefficients over WINDOW (odd) frames; 0 = off",
    )
    p.add_argument(
        "--audio", default=None, help="audio file muxed into the MP4 (cut to the video's length)"
    )
    p.add_argument("--batch", type=int, default=4, help="frames rendered per batch (default 4)")
    p.add_argument(
        "--resolution",
        type=int,
        default=None,
        help="neural rendering size for avatars without SR (demo avatars; default 128)",
    )
    p.add_argument(
        "--samples",
        type=int,
        default=None,
        help="coarse (= importance) samples per ray (default: the avatar's)",
    )
    p.add_argument("--max-frames", type=int, default=None, help="only the first N driving frames")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_backend(p)


def _camera(text: str | None):
    if text is None:
        return None
    vals = [float(v) for v in text.replace(",", " ").split()]
    if len(vals) != 25:
        raise SystemExit(
            f"--source-camera takes 25 numbers (16 cam2world + 9 intrinsics), got {len(vals)}"
        )
    return vals


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from nofa.faces import NoFaceError
    from nofa.io import ImageFileError
    from nofa.pipelines.animate import (
        AnimateOptions,
        PortraitError,
        animate,
        load_source,
        summary_line,
        write_png_frames,
        write_video,
    )

    from ._common import backend, fail

    video = Path(args.out).suffix.lower() in (".mp4", ".mov", ".mkv")
    if args.audio and not video:
        raise SystemExit(f"--audio needs a video --out (.mp4), got {args.out}")
    with backend(args):
        try:
            src, notes = load_source(
                args.source,
                args.model,
                source_camera=_camera(args.source_camera),
                source_coeffs=args.source_coeffs,
                aligned=args.aligned,
                device=args.device,
                resolution=args.resolution,
                save_to=args.save_avatar,
            )
        except (ImageFileError, NoFaceError, PortraitError, FileNotFoundError) as e:
            # a portrait SOURCE that is unreadable, has no face (too small to hold one), or is
            # not a square --aligned crop: one line naming it, exit 1
            message = str(e)
            if str(args.source) in message and not message.startswith("SOURCE"):
                message = f"SOURCE: {message}"
            fail(args, message)
        options = AnimateOptions(
            camera=args.camera,
            yaw=args.yaw,
            pitch=args.pitch,
            orbit_yaw=args.orbit_yaw,
            fps=args.fps,
            smoothing=args.smooth,
            batch=args.batch,
            max_frames=args.max_frames,
            device=args.device,
            resolution=args.resolution,
            samples=args.samples,
        )
        anim = animate(src, args.drive, options)
        for note in dict.fromkeys(notes + anim.notes):
            print(f"note: {note}")
        if video:
            s = write_video(anim, args.out, audio=args.audio, progress=not args.no_progress)
        else:
            s = write_png_frames(anim, args.out, progress=not args.no_progress)
    print(summary_line(s))
    t = anim.timings
    if t.get("total"):
        n = max(s["frames"], 1)
        print(
            "per frame (ms): "
            + ", ".join(
                f"{k} {1000 * t[k] / n:.1f}" for k in ("deformation", "render", "sr") if k in t
            )
        )
    return 0
