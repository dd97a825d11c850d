"""Geometry out of a volume: density grid (in chunks) -> marching cubes -> coloured trimesh.

The grid holds R samples per axis at x_i = lo + i * (hi - lo) / (R - 1) (both ends
included), stored as a float32 array indexed [ix, iy, iz], so marching-cubes vertex
columns are (x, y, z) and a vertex v maps to world lo + v * spacing. Density is queried in
chunks of `chunk_points` points, so the peak memory is the float32 grid (R^3 * 4 bytes:
512 MiB at R = 512) plus one chunk of decoder activations plus the mesh itself.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "Bounds",
    "avatar_color_fn",
    "avatar_density_fn",
    "density_grid",
    "export_mesh",
    "extract_mesh",
    "grid_axes",
    "mesh_from_avatar",
]

# points [M, 3] -> values [M] or [M, K]
PointFn = Callable[[torch.Tensor], torch.Tensor]
Bounds = float | tuple[Sequence[float], Sequence[float]]


def _bounds(bounds: Bounds) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(bounds, (int, float)):
        lo, hi = np.full(3, -float(bounds)), np.full(3, float(bounds))
    else:
        lo, hi = (np.asarray(b, dtype=np.float64).reshape(3) for b in bounds)
    if not np.all(hi > lo):
        raise ValueError(
            f"bounds must have hi > lo on every axis, got lo={lo.tolist()} hi={hi.tolist()}"
        )
    return lo, hi


def grid_axes(resolution: int, bounds: Bounds = 0.5) -> list[np.ndarray]:
    """The sample positions along x, y, z: R values from lo to hi inclusive (float64)."""
    lo, hi = _bounds(bounds)
    return [np.linspace(lo[a], hi[a], resolution) for a in range(3)]


@torch.no_grad()
def density_grid(
    density_fn: PointFn,
    resolution: int,
    bounds: Bounds = 0.5,
    chunk_points: int = 1 << 18,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """Evaluate `density_fn` (points [M, 3] -> [M] or [M, 1]) on an R^3 grid -> float32 [R, R, R].

    bounds: half side of a centred cube, or (lo[3], hi[3]). Indexed [ix, iy, iz].
    """
    if resolution < 2:
        raise ValueError(f"resolution must be >= 2, got {resolution}")
    R = resolution
    xs, ys, zs = (torch.tensor(a, dtype=torch.float32, device=device) for a in grid_axes(R, bounds))
    grid = np.empty((R, R, R), dtype=np.float32)
    slab = max(1, chunk_points // (R * R))
    yz = torch.stack(torch.meshgrid(ys, zs, indexing="ij"), -1).reshape(-1, 2)  # [R*R, 2]
    rows = max(1, min(chunk_points, R * R))
    for i0 in range(0, R, slab):
        i1 = min(R, i0 + slab)
        for j0 in range(0, R * R, rows):  # a slab of one x plane may still be too big
            part = yz[j0 : j0 + rows]
            pts = torch.cat(
                [
                    xs[i0:i1, None, None].expand(-1, part.shape[0], 1),
                    part[None].expand(i1 - i0, -1, -1),
                ],
                -1,
            ).reshape(-1, 3)
            vals = density_fn(pts).reshape(-1).float().cpu().numpy()
            grid[i0:i1].reshape(i1 - i0, R * R)[:, j0 : j0 + part.shape[0]] = vals.reshape(
                i1 - i0, -1
            )
    return grid


def extract_mesh(
    density_fn: PointFn,
    resolution: int = 256,
    level: float = 10.0,
    bounds: Bounds = 0.5,
    color_fn: PointFn | None = None,
    chunk_points: int = 1 << 18,
    device: torch.device | str = "cpu",
    min_component_fraction: float = 0.0,
):
    """Marching cubes on the density grid -> `trimesh.Trimesh` in world units.

    Faces are wound so normals point out of the dense region. `color_fn` (points [M, 3] ->
    RGB [M, 3] in 0..1) colours the vertices. Connected pieces with fewer faces than
    `min_component_fraction` x the largest piece's are dropped (floaters). Raises ValueError
    when `level` is not crossed.
    """
    import trimesh
    from skimage.measure import marching_cubes

    grid = density_grid(density_fn, resolution, bounds, chunk_points, device)
    lo, hi = _bounds(bounds)
    spacing = (hi - lo) / (resolution - 1)
    gmin, gmax = float(grid.min()), float(grid.max())
    if not gmin < level < gmax:
        raise ValueError(
            f"density level {level} is not crossed inside the box (density range "
            f"[{gmin:.3g}, {gmax:.3g}]): pick a level inside it"
        )
    # 'ascent': the dense side is inside, so faces come out wound with outward normals.
    verts, faces, _, _ = marching_cubes(
        grid, level=level, spacing=tuple(spacing), gradient_direction="ascent"
    )
    del grid
    verts = verts.astype(np.float64) + lo
    if min_component_fraction > 0:
        verts, faces = _drop_small_components(verts, faces, min_component_fraction)
    colors = None
    if color_fn is not None:
        colors = np.empty((len(verts), 4), dtype=np.uint8)
        colors[:, 3] = 255
        v = torch.tensor(verts, dtype=torch.float32, device=device)
        with torch.no_grad():
            for s in range(0, len(v), chunk_points):
                c = color_fn(v[s : s + chunk_points]).float().clamp(0, 1).cpu().numpy()
                colors[s : s + chunk_points, :3] = np.round(c * 255).astype(np.uint8)
    return trimesh.Trimesh(vertices=verts, faces=faces, vertex_colors=colors, process=False)


def _drop_small_components(verts: np.ndarray, faces: np.ndarray, fraction: float):
    import trimesh

    labels = trimesh.graph.connected_component_labels(
        trimesh.graph.face_adjacency(faces), node_count=len(faces)
    )
    counts = np.bincount(labels)
    faces = faces[counts[labels] >= fraction * counts.max()]
    used = np.unique(faces)
    remap = np.full(len(verts), -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    return verts[used], remap[faces]


def avatar_density_fn(avatar, device: torch.device | str = "cpu") -> PointFn:
    """Raw density of an avatar's first volume as a points [M, 3] -> [M] function."""
    renderer = avatar.renderer().to(device).eval()
    planes = avatar.planes[:1].to(device)
    return lambda p: renderer.density(planes, p[None])[0, :, 0]


def avatar_color_fn(avatar, device: torch.device | str = "cpu") -> PointFn:
    """Raw RGB (decoder feature channels 0..2, in 0..1) of an avatar's first volume."""
    renderer = avatar.renderer().to(device).eval()
    planes = avatar.planes[:1].to(device)
    return lambda p: renderer.query(planes, p[None])[1][0, :, :3]


def mesh_from_avatar(
    avatar,
    resolution: int = 256,
    level: float = 10.0,
    colors: bool = True,
    chunk_points: int = 1 << 18,
    device: torch.device | str = "cpu",
    min_component_fraction: float = 0.05,
):
    """Mesh the avatar's density over its tri-plane box (raw density `level`, EG3D uses 10).

    Pieces with fewer than `min_component_fraction` x the largest piece's faces are dropped:
    specks and sheets of density a tri-plane leaves in empty space (0 keeps everything).
    """
    half = avatar.options.box_warp / 2
    return extract_mesh(
        avatar_density_fn(avatar, device),
        resolution,
        level,
        half,
        avatar_color_fn(avatar, device) if colors else None,
        chunk_points,
        device,
        min_component_fraction,
    )


def export_mesh(mesh, path: str | os.PathLike) -> Path:
    """Write a trimesh to .ply, .obj or .glb (by suffix)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".ply", ".obj", ".glb"):
        raise ValueError(f"mesh format must be .ply, .obj or .glb, got {suffix!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    mesh.export(path)
    return path
