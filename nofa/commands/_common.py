"""Options shared by the rendering commands (not a command itself: no NAME).

The number types below are argparse `type=` callables: a bad value ends the command with
argparse's usual `error: argument --radius: ...` line and exit status 2, naming the option.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
from collections.abc import Callable, Iterator
from typing import NoReturn

BACKEND_HELP = (
    "op implementation: 'auto' (compiled kernels where available, else pure PyTorch), "
    "'kernels' (fail if not compiled) or 'torch' (default: $NOFA_BACKEND or auto)"
)


def _parse(text: str, kind: type) -> float | int:
    try:
        value = kind(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(
            f"expected {'an integer' if kind is int else 'a number'}, got {text!r}"
        ) from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def finite_float(text: str) -> float:
    """A finite float (NaN and +-inf are refused)."""
    return float(_parse(text, float))


def number_in(
    kind: type = float,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
) -> Callable[[str], float | int]:
    """An argparse type: a finite `kind` (float or int) in [low, high] ((low, high] if low_open)."""

    def check(text: str) -> float | int:
        value = _parse(text, kind)
        too_low = low is not None and (value <= low if low_open else value < low)
        too_high = high is not None and value > high
        if too_low or too_high:
            if high is None:
                want = f"{'>' if low_open else '>='} {low:g}"
            elif low is None:
                want = f"<= {high:g}"
            else:
                want = f"in {'(' if low_open else '['}{low:g}, {high:g}]"
            raise argparse.ArgumentTypeError(f"expected a value {want}, got {text}")
        return value

    check.__name__ = f"{kind.__name__}_in_range"
    return check


positive_float = number_in(float, 0.0, low_open=True)
nonnegative_float = number_in(float, 0.0)
positive_int = number_in(int, 1)
nonnegative_int = number_in(int, 0)
fraction = number_in(float, 0.0, 1.0)
# EG3D's pitch mapping clamps pi/2 + pitch to (0, pi): past +-90 degrees every value gives the
# same camera, so larger values are refused instead of silently clamped.
pitch_degrees = number_in(float, -90.0, 90.0)


def device(text: str) -> str:
    """A torch device that exists here: cpu, cuda, cuda:N (a GPU must be visible) or mps."""
    if text == "cpu":
        return text  # the default: no torch import just to parse the command line
    import torch

    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(
            f"unknown device {text!r}: expected cpu, cuda, cuda:N or mps"
        ) from None
    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise argparse.ArgumentTypeError(
                f"{text!r} needs a CUDA GPU, but this torch ({torch.__version__}) sees none: use "
                "--device cpu"
            )
        if dev.index is not None and dev.index >= n:
            raise argparse.ArgumentTypeError(
                f"{text!r}: this machine has {n} CUDA device(s) (cuda:0..cuda:{n - 1})"
            )
    elif dev.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise argparse.ArgumentTypeError(
                f"{text!r}: Apple MPS is not available here: use --device cpu"
            )
    elif dev.type != "cpu":
        raise argparse.ArgumentTypeError(
            f"unsupported device {text!r}: expected cpu, cuda, cuda:N or mps"
        )
    return text


def _suffix(text: str) -> str:
    import os

    return os.path.splitext(text)[1].lower()


def image_path(text: str) -> str:
    """An output image path whose suffix PIL can write (.png, .jpg, ...)."""
    from PIL import Image

    fmt = Image.registered_extensions().get(_suffix(text))
    if fmt is None or fmt not in Image.SAVE:
        raise argparse.ArgumentTypeError(
            f"cannot write an image to {text!r}: use a .png or .jpg name"
        )
    return text


def mesh_path(text: str) -> str:
    """An output mesh path: .ply, .obj or .glb."""
    if _suffix(text) not in (".ply", ".obj", ".glb"):
        raise argparse.ArgumentTypeError(
            f"cannot write a mesh to {text!r}: use a .ply, .obj or .glb name"
        )
    return text


def animation_path(text: str) -> str:
    """An output animation path: .gif, or .mp4/.mov/.mkv/.webm (those need imageio-ffmpeg, checked
    later)."""
    if _suffix(text) not in (".gif", ".mp4", ".mov", ".mkv", ".webm"):
        raise argparse.ArgumentTypeError(
            f"cannot write an animation to {text!r}: use a .gif or .mp4 name"
        )
    return text


def add_backend(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--backend", choices=["auto", "kernels", "torch"], default=None, help=BACKEND_HELP
    )
    p.add_argument(
        "--device",
        type=device,
        default="cpu",
        help="torch device to render on, e.g. cpu or cuda (default: cpu)",
    )


def add_render_quality(p: argparse.ArgumentParser, resolution: int, samples: int) -> None:
    p.add_argument(
        "--resolution",
        type=positive_int,
        default=resolution,
        help=f"image side in pixels (neural rendering resolution, default {resolution})",
    )
    p.add_argument(
        "--samples",
        type=positive_int,
        default=samples,
        help=f"coarse samples per ray; as many importance samples are added (default {samples})",
    )


def fail(args: argparse.Namespace, message: str, status: int = 1) -> NoReturn:
    """End a command with `nofa COMMAND: error: message` on stderr (no traceback)."""
    print(
        f"nofa {getattr(args, 'command', None) or ''}: error: {message}".replace(
            "nofa : ", "nofa: "
        ),
        file=sys.stderr,
    )
    raise SystemExit(status)


def load_avatar_arg(args: argparse.Namespace):
    """`load_avatar(args.avatar)` onto args.device; a missing or foreign file ends the command
    with one clear line (exit 1) instead of a traceback."""
    from nofa.io import AvatarFileError, load_avatar

    try:
        return load_avatar(args.avatar, map_location=args.device)
    except (AvatarFileError, FileNotFoundError, IsADirectoryError, PermissionError) as e:
        fail(args, f"AVATAR: {e}")


@contextlib.contextmanager
def backend(args: argparse.Namespace) -> Iterator[None]:
    from nofa import ops

    if args.backend is None:
        yield
    else:
        with ops.use_backend(args.backend):
            yield


def radians(deg: float) -> float:
    return math.radians(deg)
