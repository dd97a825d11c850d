"""`nofa render`: one image (and optionally its depth) of an avatar from a chosen view."""

from __future__ import annotations

import argparse

from ._common import (
    add_backend,
    add_render_quality,
    backend,
    finite_float,
    image_path,
    load_avatar_arg,
    pitch_degrees,
    positive_float,
    radians,
)

NAME = "render"
HELP = "render an avatar file from a yaw/pitch view to a PNG (optionally its depth map)"
DESCRIPTION = """Render AVATAR (.nofa-avatar: from `nofa demo` or nofa.io.save_avatar) with EG3D's
              FFHQ
camera (radius 2.7, focal 4.2647, looking at (0, 0, 0.2)), placed for --yaw/--pitch exactly as
EG3D's
LookAtPoseSampler (pitch is not the elevation angle: see docs/cameras.md). yaw > 0 turns the camera
towards the subject's left, pitch > 0 looks from below. Example:
  nofa render outputs/demo/avatar.nofa-avatar --yaw 25 --pitch -5 --out side.png \\
      --depth-out side_depth.png"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("avatar", metavar="AVATAR", help="volume avatar file (.nofa-avatar)")
    p.add_argument(
        "--yaw", type=finite_float, default=0.0, help="degrees left/right of frontal (default 0)"
    )
    p.add_argument(
        "--pitch",
        type=pitch_degrees,
        default=0.0,
        help=(
            "degrees in [-90, 90], EG3D's pitch convention (docs/cameras.md); > 0 views from "
            "below (default 0)"
        ),
    )
    p.add_argument(
        "--radius",
        type=positive_float,
        default=2.7,
        help="camera distance from the origin, > 0 (default 2.7)",
    )
    p.add_argument(
        "--out",
        type=image_path,
        default="render.png",
        help="output image (.png/.jpg, default render.png)",
    )
    p.add_argument(
        "--depth-out",
        type=image_path,
        default=None,
        help="also write the depth map as an image here",
    )
    p.add_argument("--white-back", action="store_true", help="white background instead of black")
    add_render_quality(p, 256, 48)
    add_backend(p)


def view_label(args: argparse.Namespace):
    """The camera label [25] for --yaw/--pitch (degrees) and --radius: EG3D's LookAtPoseSampler
    camera."""
    from nofa.render import default_label

    return default_label(radians(args.yaw), radians(args.pitch), radius=args.radius)


def run(args: argparse.Namespace) -> int:
    import time

    import torch

    from nofa.io import depth_to_rgb, save_image

    avatar = load_avatar_arg(args)
    renderer = avatar.renderer(
        deterministic=True,
        coarse_samples=args.samples,
        importance_samples=args.samples,
        white_back=args.white_back or avatar.options.white_back,
    ).to(args.device)
    label = view_label(args)[None].to(args.device)
    t = time.perf_counter()
    with torch.no_grad(), backend(args):
        out = renderer(avatar.planes, label, args.resolution)
    save_image(args.out, out.rgb[0])
    print(
        f"wrote {args.out} ({args.resolution}x{args.resolution}, {time.perf_counter() - t:.2f} s)"
    )
    if args.depth_out:
        save_image(args.depth_out, depth_to_rgb(out.depth[0], out.weight[0]))
        print(f"wrote {args.depth_out} (depth: near = bright)")
    return 0
