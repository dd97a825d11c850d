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
expression sequence (.npy/.npz/.mat, 25 fps), a folder of driving frames with their
coefficient files (same name, beside them or in coeffs/), or a raw video of a face
(.mp4/.mov/.avi/.mkv/.webm, or a folder of frames without coefficient files): it is read at
25 fps and the face tracked as `nofa prepare VIDEO` does (dlib landmarks, smoothed over time).
With --deep3d-weights, Deep3DFaceRecon's regressor gives every frame's expression and head
pose; without it the video gives the head pose only (neutral expression), and the camera
follows the driving head unless --camera says otherwise.
--out NAME.mp4 streams frames to an H.264 MP4 (imageio-ffmpeg); any other --out is a folder
of PNG frames. Examples:
  nofa animate outputs/demo/avatar.nofa-avatar --drive speech_exp.npy --audio speech.wav \\
      --out talk.mp4
  nofa animate me.png --aligned --model nofa.nofa-model --drive coeffs/ --camera driving \\
      --out talk.mp4
  nofa animate avatar.nofa-anim --drive someone_talking.mp4 --deep3d-weights epoch_20.pth \\
      --out talk.mp4"""


class _CameraAction(argparse.Action):
    """Stores --camera and notes that it was given (a raw driving video without the
    regressor switches the default to 'driving', but never an explicit choice)."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        setattr(namespace, self.dest, values)
        namespace.camera_given = True


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", metavar="SOURCE", help="avatar file, or portrait image (with --model)")
    p.add_argument(
        "--drive",
        required=True,
        metavar="DRIVING",
        help="driving coefficients (file or folder), or a raw video of a face (file or folder "
        "of frames)",
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
        action=_CameraAction,
        help="source: the source's camera (default; 'driving' for a raw driving video without "
        "--deep3d-weights); driving: the driving head pose; fixed: frontal or --yaw/--pitch; "
        "orbit: a sweep of +-orbit-yaw degrees",
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
    from .prepare import add_deep3d_weights

    add_deep3d_weights(
        p,
        "raw driving video: Deep3DFaceRecon's checkpoint (its epoch_20.pth, which you download "
        "yourself) to regress every frame's expression and head pose; without it the video "
        "drives the head pose only",
    )
    p.add_argument(
        "--detector",
        choices=["hog", "cnn"],
        default="hog",
        help="raw driving video: dlib face detector, 'hog' (default) or 'cnn'",
    )
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


def _track_driving_video(args: argparse.Namespace):
    """A raw driving video -> (Coeffs, notes, head pose only?): the face tracked as `nofa
    prepare VIDEO` does, expressions and pose from Deep3DFaceRecon's regressor with
    --deep3d-weights, else the landmark head pose with neutral expressions. Exits with a
    message naming --drive (or --deep3d-weights) when the video cannot be used."""
    from nofa.faces import FaceDependencyError, NoFaceError
    from nofa.faces.deep3d_net import Deep3DWeightsError
    from nofa.faces.video import VideoFrames, track_video

    from ._common import fail
    from .prepare import load_regressor

    try:
        net = load_regressor(args)
    except Deep3DWeightsError as e:
        fail(args, f"--deep3d-weights: {e}")
    try:
        frames = VideoFrames(args.drive, max_frames=args.max_frames)
        track = track_video(frames, net, detector=args.detector, progress=not args.no_progress)
    except FaceDependencyError:
        raise
    except (NoFaceError, ValueError, OSError, ImportError) as e:
        fail(args, f"--drive: {e}")
    source = "Deep3DFaceRecon coefficients" if net is not None else "landmark head pose"
    notes = [f"driving video {args.drive}: {len(track)} frames at {track.fps:g} fps, {source}"]
    return track.to_coeffs(), notes + [f"driving video: {n}" for n in track.notes], net is None


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
        driving, drive_notes, camera = args.drive, [], args.camera
        from nofa.faces.video import is_raw_video

        if is_raw_video(args.drive):
            driving, drive_notes, pose_only = _track_driving_video(args)
            if pose_only:
                # head pose only: the source's camera would show a still face
                camera = camera if getattr(args, "camera_given", False) else "driving"
                drive_notes.append(
                    "driving video without --deep3d-weights: HEAD POSE ONLY, the expression "
                    "stays neutral (Deep3DFaceRecon's regressor, --deep3d-weights epoch_20.pth, "
                    f"gives expressions); camera: {camera}"
                )
        elif args.deep3d_weights:
            drive_notes.append(
                "--deep3d-weights is for raw driving videos; the driving coefficients are used "
                "as they are"
            )
        options = AnimateOptions(
            camera=camera,
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
        anim = animate(src, driving, options)
        for note in dict.fromkeys(drive_notes + notes + anim.notes):
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
