"""`nofa demo`: one portrait -> a 3D head (turntable, contact sheet, avatar file, mesh)."""

from __future__ import annotations

import argparse
import sys

from ._common import (
    add_backend,
    nonnegative_float,
    nonnegative_int,
    number_in,
    positive_float,
    positive_int,
)

NAME = "demo"
HELP = (
    "one portrait -> 3D head: turntable GIF, contact sheet, avatar file and coloured mesh in "
    "outputs/demo/"
)
DESCRIPTION = """Reconstruct a head from one portrait and write to --out (default outputs/demo/):
  turntable.gif         yaw sweep +-35 degrees
  contact_sheet.png     aligned input | template | fitted view (face PSNR) | 4 novel views | depth
  identity_views.png    aligned input | renders at yaw -35, -20, 0, +20, +35 and the fitted view,
                        each with its identity distance to the input
  metrics.json          fitted-view PSNR and the identity distances
  avatar.nofa-avatar    the fitted avatar (render it with `nofa render`, `nofa turntable`)
  template.nofa-avatar  the baked template it started from
  head.ply              vertex-coloured marching-cubes mesh
The photo is scikit-image's astronaut unless --image is given: any photo with a face (dlib finds
it, aligns an EG3D crop and estimates the camera, as `nofa prepare` does).

What it does: a procedural template head is baked into an EG3D tri-plane + decoder (cached in
outputs/cache/, keyed by the bake settings), then the photo's colours are put on the template's
surface (warped to the photo's landmarks): what the photo's camera sees takes the photo's colour,
hidden parts their mirror
image's or the photo's skin/hair colour, the background is matted out (docs/faces.md).
Optionally --steps of fast adaptation (NOFA++ eq. 14) refine the front view (the photo's own
camera: the "fitted view", whose PSNR is therefore not a held-out measure). Held out: dlib's
face-recogniser distance between the input and renders at yaw 0, +-20 and +-35 degrees
(dlib calls two faces the same person below 0.6). nofa ships no
trained NOFA++ weights, so this is NOT the learned one-shot encoder: geometry is the template's,
warped (--geometry-fit) so that its landmarks land on the photo's.
--quick is a smoke test."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--image",
        default=None,
        help="photo with a face (any size; aligned here); default: the astronaut",
    )
    p.add_argument("--out", default="outputs/demo", help="output folder (default outputs/demo)")
    p.add_argument(
        "--template",
        default=None,
        help="start from this avatar file instead of baking the template",
    )
    p.add_argument(
        "--steps",
        type=nonnegative_int,
        default=60,
        help="fast-adaptation steps on the front view after colouring (default 60)",
    )
    p.add_argument(
        "--colour-steps",
        type=nonnegative_int,
        default=120,
        help="steps fitting the photo's surface colours into the tri-plane (default 120)",
    )
    p.add_argument(
        "--geometry-fit",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="warp the template so its 3D landmarks land on the photo's before colouring "
        "(default on; --no-geometry-fit: the template's own shape)",
    )
    p.add_argument(
        "--no-cache", action="store_true", help="bake the template even if outputs/cache has it"
    )
    p.add_argument(
        "--fit-resolution",
        type=positive_int,
        default=128,
        help="render size during fitting (default 128, the size of the output views)",
    )
    p.add_argument(
        "--fit-samples",
        type=positive_int,
        default=16,
        help="coarse (= importance) samples while fitting (default 16)",
    )
    p.add_argument(
        "--lr",
        type=positive_float,
        default=0.02,
        help="fast-adaptation learning rate (default 0.02)",
    )
    p.add_argument(
        "--adapt-planes",
        choices=["xy", "all"],
        default="xy",
        help="which planes fast adaptation updates: 'xy' (default; the plane facing the camera, "
        "no streaks in side views) or 'all' (the paper's choice; streaky from one view)",
    )
    p.add_argument(
        "--depth-weight",
        type=nonnegative_float,
        default=1.0,
        help="lambda_reg of eq. 14 (default 1)",
    )
    p.add_argument(
        "--plane-resolution",
        type=number_in(int, 2),
        default=128,
        help="tri-plane side (default 128; EG3D uses 256)",
    )
    p.add_argument(
        "--bake-steps",
        type=nonnegative_int,
        default=500,
        help="template baking steps (default 500)",
    )
    p.add_argument(
        "--resolution",
        type=positive_int,
        default=128,
        help="size of the output views and turntable (default 128)",
    )
    p.add_argument(
        "--samples",
        type=positive_int,
        default=32,
        help="coarse (= importance) samples for the outputs (default 32)",
    )
    p.add_argument("--frames", type=positive_int, default=20, help="turntable frames (default 20)")
    p.add_argument(
        "--animation-frames",
        type=nonnegative_int,
        default=48,
        help=(
            "frames of animation.mp4/.gif: built-in expressions while the camera sweeps (default "
            "48; 0: none)"
        ),
    )
    p.add_argument(
        "--mesh-resolution",
        type=number_in(int, 2),
        default=256,
        help="marching-cubes grid (default 256)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes: a seconds-long smoke test, not a nice result",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        help=(
            "CPU threads for torch (default: torch's choice); on a busy machine 1 can be much "
            "faster"
        ),
    )
    add_backend(p)


def config_from_args(args: argparse.Namespace):
    from nofa.pipelines.template_fit.adapt import AdaptConfig
    from nofa.pipelines.template_fit.demo import DemoConfig

    adapt = AdaptConfig(
        steps=args.steps,
        resolution=args.fit_resolution,
        lr=args.lr,
        lambda_reg=args.depth_weight,
        coarse_samples=args.fit_samples,
        importance_samples=args.fit_samples,
        planes=args.adapt_planes,
    )
    from nofa.pipelines.template_fit.texture import TextureConfig

    cfg = DemoConfig(
        out_dir=args.out,
        texture=TextureConfig(steps=args.colour_steps),
        geometry_fit=args.geometry_fit,
        cache_dir=None if args.no_cache else "outputs/cache",
        image=args.image,
        template=args.template,
        plane_resolution=args.plane_resolution,
        bake_steps=args.bake_steps,
        adapt=adapt,
        view_resolution=args.resolution,
        view_samples=args.samples,
        frames=args.frames,
        mesh_resolution=args.mesh_resolution,
        animation_frames=args.animation_frames,
        progress=not args.no_progress,
    )
    if args.quick:
        cfg.plane_resolution, cfg.channels, cfg.bake_steps, cfg.bake_pool, cfg.bake_batch = (
            32,
            8,
            20,
            1 << 13,
            1 << 11,
        )
        cfg.texture.steps, cfg.texture.pool, cfg.texture.batch, cfg.texture.depth_resolution = (
            3,
            1 << 12,
            1 << 10,
            24,
        )
        cfg.cache_dir = None
        cfg.geometry_steps = 3
        (
            cfg.adapt.steps,
            cfg.adapt.resolution,
            cfg.adapt.coarse_samples,
            cfg.adapt.importance_samples,
        ) = 3, 16, 8, 8
        cfg.view_resolution, cfg.view_samples, cfg.frames, cfg.mesh_resolution = 24, 8, 3, 32
        cfg.animation_frames = min(cfg.animation_frames, 4)
        cfg.identity_resolution = 64
    return cfg


def _print_identity(identity: dict | None) -> None:
    """The held-out identity distances, one line per view (metrics.json has the same)."""
    if not identity:
        return
    if identity.get("error"):
        print(f"identity distance: not measured ({identity['error']})")
        return
    print(
        f"identity distance to the input photo ({identity['embedder']}, renders at "
        f"{identity['resolution']} px; dlib calls two faces the same person below "
        f"{identity['threshold']:g}; lower is closer):"
    )
    if not identity["input_face_found"]:
        print("  no face found in the input photo: no distances")
    for v in identity["views"] + [identity["fitted_view"]]:
        value = f"{v['distance']:.3f}" if v["distance"] is not None else v["note"]
        extra = " (not held out)" if v["yaw_deg"] is None else ""
        print(f"  {v['view']:12s} {value}{extra}")


def run(args: argparse.Namespace) -> int:
    import time
    import warnings

    from nofa import ops
    from nofa.io import AvatarFileError, ImageFileError
    from nofa.pipelines.template_fit.demo import run_demo

    from ._common import backend, fail

    cfg = config_from_args(args)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    for op in ("sample_triplane", "composite_rays"):
        if not ops.kernels_available(args.device, op):
            print(
                f"note: no compiled {op} kernel for {args.device}: that op runs the slower "
                "pure-PyTorch reference"
            )
    t = time.perf_counter()
    from nofa.faces import FaceDependencyError, NoFaceError, PhotoTooSmallError

    with backend(args), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # already reported above
        try:
            result = run_demo(cfg)
        except PhotoTooSmallError as e:  # e.g. a 1x1 --image: no face can fit
            fail(args, f"--image: {e}")
        except NoFaceError as e:  # --image without a usable face
            print(f"nofa demo: error: --image: {e}", file=sys.stderr)
            return 2
        except FaceDependencyError as e:
            print(f"nofa demo: error: {e}", file=sys.stderr)
            return 2
        except ImageFileError as e:
            fail(args, f"--image: {e}")
        except (AvatarFileError, FileNotFoundError) as e:  # --template, or a missing --image
            image = args.image is not None and str(args.image) in str(e)
            fail(args, f"{'--image' if image else '--template'}: {e}")
    print(
        f"\nnofa demo finished in {time.perf_counter() - t:.1f} s "
        f"(backend {args.backend or ops.get_backend()}); files:"
    )
    for name, path in result["files"].items():
        print(f"  {name:14s} {path}")
    print("timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in result["timings"].items()))
    if result.get("face_psnr") is not None:
        print(
            f"fitted view (the photo's camera, which fast adaptation fitted) vs aligned input, "
            f"face region: PSNR {result['face_psnr']:.2f} dB; camera yaw "
            f"{result['camera']['yaw']:+.1f} pitch {result['camera']['pitch']:+.1f} deg"
        )
    _print_identity(result.get("identity"))
    if result["adapt_loss"]:
        print(
            f"fast adaptation loss: {result['adapt_loss'][0]:.4f} -> {result['adapt_loss'][1]:.4f}"
        )
    print(
        "note: template + the photo's colours on its surface (+ fast adaptation); no trained "
        "NOFA++ weights are used."
    )
    return 0
