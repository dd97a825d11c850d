"""`nofa export-mesh`: marching cubes on an avatar's density -> .ply/.obj/.glb."""

from __future__ import annotations

import argparse

from ._common import (
    add_backend,
    backend,
    fail,
    finite_float,
    fraction,
    load_avatar_arg,
    mesh_path,
    number_in,
    positive_int,
)

NAME = "export-mesh"
HELP = "extract a (vertex-coloured) mesh from an avatar with marching cubes: .ply, .obj or .glb"
DESCRIPTION = """Sample AVATAR's raw density on a RESOLUTION^3 grid over its tri-plane box (in
              chunks),
run marching cubes at --level (EG3D uses 10), colour vertices from the volume and write the mesh
in world units (y up, face towards +z). Memory: about RESOLUTION^3 * 4 bytes for the grid (512 MiB
at 512) plus one chunk and the mesh. Example:
  nofa export-mesh outputs/demo/avatar.nofa-avatar --resolution 256 --out head.ply"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("avatar", metavar="AVATAR", help="volume avatar file (.nofa-avatar)")
    p.add_argument(
        "--out",
        type=mesh_path,
        default="head.ply",
        help="output mesh: .ply (keeps colours), .obj or .glb (default head.ply)",
    )
    p.add_argument(
        "--resolution",
        type=number_in(int, 2),
        default=256,
        help="grid samples per axis (default 256, max sensible 512)",
    )
    p.add_argument(
        "--level",
        type=finite_float,
        default=10.0,
        help="raw density iso-level (default 10, as EG3D)",
    )
    p.add_argument("--no-colors", action="store_true", help="skip vertex colours")
    p.add_argument(
        "--min-fraction",
        type=fraction,
        default=0.05,
        help="drop connected pieces with fewer faces than this fraction of the largest piece "
        "(floaters; in [0, 1], default 0.05, 0 keeps everything)",
    )
    p.add_argument(
        "--chunk",
        type=positive_int,
        default=1 << 18,
        help="points per density query chunk (default 262144)",
    )
    add_backend(p)


def run(args: argparse.Namespace) -> int:
    import time

    from nofa.pipelines.mesh import export_mesh, mesh_from_avatar

    avatar = load_avatar_arg(args)
    t = time.perf_counter()
    try:
        with backend(args):
            mesh = mesh_from_avatar(
                avatar,
                args.resolution,
                args.level,
                not args.no_colors,
                args.chunk,
                args.device,
                args.min_fraction,
            )
        export_mesh(mesh, args.out)
    except ValueError as e:  # e.g. a --level the density never crosses, an unknown --out suffix
        fail(args, str(e))
    print(
        f"wrote {args.out}: {len(mesh.vertices)} vertices, {len(mesh.faces)} faces "
        f"({args.resolution}^3 grid, {time.perf_counter() - t:.1f} s)"
    )
    return 0
