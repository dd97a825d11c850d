"""`nofa dataset`: check a face-video training dataset, or write a synthetic one."""

from __future__ import annotations

import argparse
import sys

NAME = "dataset"
HELP = (
    "face-video training datasets: validate one (check) or write procedural talking heads (synth)"
)
DESCRIPTION = """Face-video datasets for the deformation, hybrid and audio training stages
(layout: docs/datasets.md).

  nofa dataset check ROOT      validate every clip: frames vs coefficient rows, coefficient
                               width, NaN, label count, landmark / audio shapes, unreadable or
                               non-square images. Prints one row per clip and every problem;
                               exit status 0 when clean, 1 when there are problems, 2 when ROOT
                               is not a folder.
  nofa dataset synth OUT       write procedural talking-head clips in the same layout (frames,
                               coeffs.npy, dataset.json, landmarks.npy, audio_exp.npy).

Examples:
  nofa dataset check data/videos --audio
  nofa dataset synth data/synthetic --clips 24 --frames 32 --size 64 --seed 0 --heldout 4"""

_MAX_ROWS = 40  # clips listed in full; beyond that only clips with problems get a row


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ._common import nonnegative_int, positive_int

    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    c = sub.add_parser(
        "check",
        help="validate a dataset and print a summary (exit 1 on problems)",
        description="Validate every clip of a face-video dataset (docs/datasets.md).",
    )
    c.add_argument("root", metavar="ROOT", help="dataset folder (ROOT/<clip>/frames/*.png ...)")
    c.add_argument(
        "--audio", action="store_true", help="require audio_exp.npy in every clip (the audio stage)"
    )
    c.add_argument(
        "--heldout-clips",
        type=nonnegative_int,
        default=1,
        help="held-out clips when ROOT/heldout.txt is absent (the last ones; default 1)",
    )
    c.add_argument("--no-images", action="store_true", help="do not open the frame images (faster)")
    c.add_argument("--no-progress", action="store_true", help="no progress bar")
    s = sub.add_parser(
        "synth",
        help="write procedural talking-head clips in the dataset layout",
        description="Write synthetic talking-head clips (nofa.train.procedural_heads) in the "
        "dataset layout of docs/datasets.md.",
    )
    s.add_argument(
        "out", metavar="OUT", help="output folder (created; must not already hold clips)"
    )
    s.add_argument("--clips", type=positive_int, default=24, help="number of clips (default 24)")
    s.add_argument(
        "--frames", type=number_at_least(2), default=32, help="frames per clip (default 32, >= 2)"
    )
    s.add_argument(
        "--size", type=number_at_least(8), default=64, help="frame side in pixels (default 64)"
    )
    s.add_argument("--seed", type=nonnegative_int, default=0, help="random seed (default 0)")
    s.add_argument(
        "--heldout",
        type=nonnegative_int,
        default=0,
        help="write heldout.txt naming the last N clips (default 0: no file)",
    )
    s.add_argument(
        "--supersample", type=positive_int, default=2, help="anti-aliasing factor (default 2)"
    )
    s.add_argument("--no-audio", action="store_true", help="no audio_exp.npy")
    s.add_argument(
        "--depth", action="store_true", help="also write depth/*.npy (distance along each ray)"
    )
    s.add_argument(
        "--mat", action="store_true", help="per-frame coeffs/*.mat instead of coeffs.npy"
    )
    s.add_argument(
        "--preview",
        metavar="PNG",
        help="also write a contact sheet of the first 4 clips "
        "(8 frames each, landmarks drawn) to this image file",
    )
    s.add_argument(
        "--force", action="store_true", help="write into OUT even if it already holds clips"
    )
    s.add_argument("--no-progress", action="store_true", help="no progress bar")


def number_at_least(low: int):
    from ._common import number_in

    return number_in(int, low)


def run(args: argparse.Namespace) -> int:
    return _check(args) if args.action == "check" else _synth(args)


def _table(rows: list[dict], columns: list[str]) -> str:
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns)]
    lines += ["  ".join(str(r[c]).ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def _check(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tqdm import tqdm

    from nofa.train.video_data import DatasetProblem, check_clip, clip_info, list_clips

    root = Path(args.root)
    if not root.is_dir():
        print(f"error: ROOT must be a dataset folder, {root} is not a folder", file=sys.stderr)
        return 2
    clips = list_clips(root)
    problems: list[DatasetProblem] = []
    if not clips:
        problems.append(
            DatasetProblem("(dataset)", None, root, "no clips: expected ROOT/<clip>/frames/*.png")
        )
    heldout: set[str] = set()
    listed = root / "heldout.txt"
    if listed.is_file():
        names = [
            ln.strip()
            for ln in listed.read_text().splitlines()
            if ln.strip() and not ln.startswith("#")
        ]
        unknown = [n for n in names if n not in clips]
        if unknown:
            problems.append(
                DatasetProblem(
                    "(dataset)",
                    None,
                    listed,
                    f"names {len(unknown)} clip(s) that do not exist, first {unknown[0]!r}",
                )
            )
        heldout = set(names) & set(clips)
    elif clips:
        heldout = (
            set(clips[len(clips) - min(args.heldout_clips, len(clips) - 1) :])
            if args.heldout_clips
            else set()
        )
    rows = []
    for clip in tqdm(
        clips,
        desc="checking",
        unit="clip",
        disable=args.no_progress or len(clips) < 2,
        file=sys.stderr,
    ):
        found = check_clip(root / clip, clip, audio=args.audio, images=not args.no_images)
        problems += found
        row = clip_info(root / clip, clip, "heldout" if clip in heldout else "train")
        row["problems"] = len(found)
        rows.append(row)
    columns = ["clip", "split", "frames", "coeffs", "labels", "landmarks", "audio", "problems"]
    shown = rows if len(rows) <= _MAX_ROWS else [r for r in rows if r["problems"]]
    if shown:
        print(_table(shown, columns))
    if len(shown) < len(rows):
        print(f"... and {len(rows) - len(shown)} more clips without problems")
    frames = sum(int(r["frames"]) for r in rows)
    bad = sum(1 for r in rows if r["problems"])
    print(
        f"\n{root}: {len(clips)} clips ({len(clips) - len(heldout)} train, {len(heldout)} held "
        "out), "
        f"{frames} frames; {len(problems)} problem(s) in {bad} clip(s)"
    )
    if problems:
        print("\nproblems:")
        for p in problems:
            print(f"  {p}")
        return 1
    return 0


def _synth(args: argparse.Namespace) -> int:
    from pathlib import Path

    from nofa.train.procedural_heads import write_synthetic_video_dataset
    from nofa.train.video_data import list_clips

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        print(f"error: OUT must be a folder, {out} is a file", file=sys.stderr)
        return 2
    if out.is_dir() and list_clips(out) and not args.force:
        print(
            f"error: {out} already holds clips; pick another OUT or pass --force", file=sys.stderr
        )
        return 2
    if args.heldout >= args.clips:
        print(
            f"error: --heldout must be smaller than --clips ({args.clips}), got {args.heldout}",
            file=sys.stderr,
        )
        return 2
    write_synthetic_video_dataset(
        out,
        clips=args.clips,
        frames=args.frames,
        size=args.size,
        seed=args.seed,
        audio=not args.no_audio,
        depth=args.depth,
        mat=args.mat,
        heldout=args.heldout,
        supersample=args.supersample,
        progress=not args.no_progress,
    )
    print(f"wrote {args.clips} clips x {args.frames} frames ({args.size} px) to {out}")
    if args.preview:
        contact_sheet(out, args.preview)
        print(f"wrote the contact sheet {args.preview}")
    return 0


def contact_sheet(
    root, path, clips: int = 4, frames: int = 8, cell: int | None = None, landmarks: bool = True
) -> None:
    """A PNG grid: one row per clip (the first `clips`), `frames` frames evenly spaced, with
    the clip's landmarks drawn as green dots (`landmarks`); cells of `cell` px (default: the
    frames' size)."""
    from pathlib import Path

    import numpy as np
    from PIL import Image, ImageDraw

    from nofa.io.atomic import atomic_write
    from nofa.train.video_data import VideoDataset

    if cell is None:
        first = VideoDataset(root, 8, split="all", heldout_clips=0)
        with Image.open(first.frame_files(first.clips[0])[0]) as im:
            cell = im.width
    ds = VideoDataset(root, cell, split="all", heldout_clips=0, landmarks="require")
    rows = []
    for clip in ds.clips[:clips]:
        T = ds.num_frames(clip)
        row = []
        for i in np.linspace(0, T - 1, min(frames, T)).round().astype(int):
            item = ds.load_frame(clip, int(i))
            im = Image.fromarray(
                ((item["image"].permute(1, 2, 0).numpy() + 1) * 127.5).round().astype(np.uint8)
            )
            draw = ImageDraw.Draw(im)
            for x, y in item["landmarks"].numpy() if landmarks else []:
                draw.point((float(x), float(y)), fill=(0, 255, 0))
            row.append(np.asarray(im))
        row += [np.zeros_like(row[0])] * (frames - len(row))
        rows.append(np.concatenate(row, 1))
    sheet = np.concatenate(rows, 0)
    path = Path(path)
    atomic_write(path, lambda t: Image.fromarray(sheet).save(t, format="PNG"))
