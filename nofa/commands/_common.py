"""Options shared by the rendering commands (not a command itself: no NAME)."""
from __future__ import annotations

import argparse
import contextlib
import math
from typing import Iterator

BACKEND_HELP = ("op implementation: 'auto' (compiled kernels where available, else pure PyTorch), "
                "'kernels' (fail if not compiled) or 'torch' (default: $NOFA_BACKEND or auto)")


def add_backend(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", choices=["auto", "kernels", "torch"], default=None, help=BACKEND_HELP)
    p.add_argument("--device", default="cpu", help="torch device to render on, e.g. cpu or cuda (default: cpu)")


def add_render_quality(p: argparse.ArgumentParser, resolution: int, samples: int) -> None:
    p.add_argument("--resolution", type=int, default=resolution,
                   help=f"image side in pixels (neural rendering resolution, default {resolution})")
    p.add_argument("--samples", type=int, default=samples,
                   help=f"coarse samples per ray; as many importance samples are added (default {samples})")


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
