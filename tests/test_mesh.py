"""Mesh extraction: analytic densities land at the right world positions and axes; files
reload through trimesh; avatars mesh with vertex colours."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import trimesh

from nofa.io import Avatar
from nofa.pipelines.mesh import density_grid, export_mesh, extract_mesh, grid_axes, mesh_from_avatar
from nofa.render import OSGDecoder, RenderOptions


def test_sphere_radius_within_one_voxel():
    R, radius = 48, 0.3
    mesh = extract_mesh(lambda p: radius - p.norm(dim=-1), R, level=0.0, bounds=0.5)
    voxel = 1.0 / (R - 1)
    dist = np.linalg.norm(mesh.vertices, axis=1)
    assert np.abs(dist - radius).max() < voxel
    assert abs(dist.mean() - radius) < 0.1 * voxel
    assert mesh.is_watertight and mesh.volume > 0  # closed, normals outward


def test_offcentre_anisotropic_ellipsoid_position_and_axes():
    # Catches axis-order (x/z swaps) and half-voxel offsets: distinct centre and radii per axis,
    # and an asymmetric box so that lo != -hi.
    c = torch.tensor([0.12, -0.07, 0.2])
    r = torch.tensor([0.3, 0.12, 0.2])
    lo, hi = (-0.5, -0.4, -0.3), (0.6, 0.5, 0.55)
    R = 64

    def dens(p):
        return 1 - ((p - c) / r).norm(dim=-1)

    mesh = extract_mesh(dens, R, level=0.0, bounds=(lo, hi))
    voxel = (np.array(hi) - np.array(lo)) / (R - 1)
    v = mesh.vertices
    assert np.all(np.abs(v.min(0) - (c - r).numpy()) < voxel)
    assert np.all(np.abs(v.max(0) - (c + r).numpy()) < voxel)
    assert np.all(np.abs((v.min(0) + v.max(0)) / 2 - c.numpy()) < voxel / 2)
    # Vertices satisfy the implicit equation: |(v - c) / r| == 1 up to a voxel.
    q = np.linalg.norm((v - c.numpy()) / r.numpy(), axis=1)
    assert np.abs(q - 1).max() < voxel.max() / r.min().item()


def test_density_grid_layout_and_chunking():
    f = lambda p: p[:, 0] * 100 + p[:, 1] * 10 + p[:, 2]  # noqa: E731
    g_small = density_grid(f, 9, bounds=1.0, chunk_points=5)  # chunk smaller than one x-slab
    g_big = density_grid(f, 9, bounds=1.0, chunk_points=10**6)
    np.testing.assert_array_equal(g_small, g_big)
    xs, ys, zs = grid_axes(9, 1.0)
    assert g_big[3, 5, 7] == pytest.approx(xs[3] * 100 + ys[5] * 10 + zs[7], abs=1e-4)
    assert g_big.dtype == np.float32 and g_big.shape == (9, 9, 9)


def test_level_outside_range_raises():
    with pytest.raises(ValueError, match="not crossed"):
        extract_mesh(lambda p: torch.zeros(len(p)), 8, level=10.0)


@pytest.mark.parametrize("suffix", [".ply", ".obj", ".glb"])
def test_export_reload_with_colours(tmp_path, suffix):
    mesh = extract_mesh(
        lambda p: 0.3 - p.norm(dim=-1),
        24,
        level=0.0,
        color_fn=lambda p: torch.stack(
            [p[:, 0] + 0.5, torch.full_like(p[:, 0], 0.25), torch.zeros_like(p[:, 0])], -1
        ),
    )
    path = export_mesh(mesh, tmp_path / f"sphere{suffix}")
    back = trimesh.load(path, force="mesh", process=False)
    assert len(back.faces) == len(mesh.faces)
    np.testing.assert_allclose(
        np.sort(back.vertices[:, 0])[[0, -1]], np.sort(mesh.vertices[:, 0])[[0, -1]], atol=1e-5
    )
    if suffix == ".ply":  # PLY keeps per-vertex colours exactly
        vc = back.visual.vertex_colors
        assert vc.shape == (len(mesh.vertices), 4)
        assert vc[:, 1].min() == vc[:, 1].max() == 64  # 0.25 * 255 rounded
        red = vc[:, 0].astype(float)
        np.testing.assert_allclose(red, np.round((mesh.vertices[:, 0] + 0.5) * 255), atol=1)
    with pytest.raises(ValueError, match="ply"):
        export_mesh(mesh, tmp_path / "x.stl")


def test_mesh_from_avatar_uses_planes_box_and_colours():
    # A decoder whose density is high where the mean plane feature is high: planes that are
    # bright inside a centred square (|u|, |v| < 0.25) in every plane; at level 100 only
    # points where all three planes are bright (a cube of half side ~0.25) are inside.
    C, R = 4, 16
    dec = OSGDecoder(n_features=C, hidden=8, out_features=3)
    with torch.no_grad():
        for p in dec.parameters():
            p.zero_()
        dec.fc0.weight[0, 0] = 1.0  # hidden 0 = softplus(f0)
        dec.fc1.weight[0, 0] = 40.0  # density = 40 * softplus(f0) - 20
        dec.fc1.bias[0] = -20.0
        dec.fc1.bias[1:] = torch.tensor([3.0, -3.0, 0.0])  # constant colour ~ (0.95, 0.05, 0.5)
    planes = torch.full((1, 3, C, R, R), -4.0)
    planes[:, :, 0, 4:12, 4:12] = 4.0
    av = Avatar(planes, dec.state_dict(), dec.config(), RenderOptions(box_warp=1.0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mesh = mesh_from_avatar(av, resolution=40, level=100.0)
    assert len(mesh.vertices) > 100
    assert np.all(np.abs(mesh.vertices.mean(0)) < 0.02)
    extent = np.abs(mesh.vertices).max(0)
    assert np.all((extent > 0.2) & (extent < 0.3)), extent
    rgb = mesh.visual.vertex_colors[:, :3].astype(float) / 255
    np.testing.assert_allclose(rgb.mean(0), [0.954, 0.046, 0.5], atol=0.02)


def test_small_components_are_dropped():
    # A big sphere plus a speck: the speck goes, the sphere stays untouched.
    def dens(p):
        big = 0.3 - p.norm(dim=-1)
        speck = 0.03 - (p - torch.tensor([0.4, 0.4, 0.4])).norm(dim=-1)
        return torch.maximum(big, speck)

    full = extract_mesh(dens, 48, level=0.0)
    clean = extract_mesh(dens, 48, level=0.0, min_component_fraction=0.05)
    assert len(full.split(only_watertight=False)) == 2
    assert len(clean.split(only_watertight=False)) == 1
    assert np.linalg.norm(clean.vertices, axis=1).max() < 0.32
    assert clean.is_watertight and len(clean.faces) < len(full.faces)
