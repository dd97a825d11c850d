"""`nofa turntable`: a looping yaw sweep of an avatar as GIF (or MP4 with imageio-ffmpeg)."""

from __future__ import annotations

import argparse

from ._common import (
    add_backend,
    add_render_quality,
    animation_path,
    backend,
    finite_float,
    load_avatar_arg,
    pitch_degrees,
    positive_float,
    positive_int,
    radians,
)

NAME = "turntable"
HELP = (
    "render a looping left-right turntable of an avatar to .gif (or .mp4 if imageio-ffmpeg is "
    "installed)"
)
DESCRIPTION = """Render AVATAR along a sine sweep of yaw (+-yaw-range degrees, optional pitch bob),
              frontal at
the first frame. GIF always works; MP4/WebM need the optional imageio-ffmpeg package. Example:
  nofa turntable outputs/demo/avatar.nofa-avatar --out spin.gif --frames 48 --yaw-range 35"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("avatar", metavar="AVATAR", help="volume avatar file (.nofa-avatar)")
    p.add_argument(
        "--out",
        type=animation_path,
        default="turntable.gif",
        help="output animation (.gif or .mp4, default turntable.gif)",
    )
    p.add_argument("--frames", type=positive_int, default=36, help="number of frames (default 36)")
    p.add_argument(
        "--fps", type=positive_float, default=15.0, help="frames per second, > 0 (default 15)"
    )
    p.add_argument(
        "--yaw-range",
        type=finite_float,
        default=35.0,
        help="max yaw in degrees either side (default 35)",
    )
    p.add_argument(
        "--pitch-range",
        type=pitch_degrees,
        default=0.0,
        help="max pitch bob in degrees, in [-90, 90], EG3D's pitch convention (default 0)",
    )
    add_render_quality(p, 128, 48)
    add_backend(p)


def run(args: argparse.Namespace) -> int:
    import time

    import torch
    from tqdm import tqdm

    from nofa.io import save_animation, to_uint8
    from nofa.io.images import check_animation_path
    from nofa.render import orbit_labels

    check_animation_path(args.out)

    avatar = load_avatar_arg(args)
    renderer = avatar.renderer(
        deterministic=True, coarse_samples=args.samples, importance_samples=args.samples
    ).to(args.device)
    labels = orbit_labels(args.frames, radians(args.yaw_range), radians(args.pitch_range)).to(
        args.device
    )
    t = time.perf_counter()
    frames = []
    with torch.no_grad(), backend(args):
        for lab in tqdm(labels, desc="turntable", unit="frame"):
            frames.append(to_uint8(renderer(avatar.planes, lab[None], args.resolution).rgb[0]))
    save_animation(args.out, frames, fps=args.fps)
    print(
        f"wrote {args.out} ({args.frames} frames at {args.resolution}px, "
        f"{time.perf_counter() - t:.1f} s)"
    )
    return 0
