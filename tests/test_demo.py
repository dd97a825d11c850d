"""The demo end to end at tiny sizes (through the CLI), and the CLI commands on its avatar."""

from __future__ import annotations

import warnings

import imageio.v2 as imageio
import numpy as np
import pytest
import torch
import trimesh

from nofa.cli import build_parser, main
from nofa.io import load_avatar
from nofa.pipelines.template_fit.demo import astronaut_portrait


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert main(["demo", "--quick", "--no-progress", "--out", str(out)]) == 0
    return out


def test_demo_writes_every_promised_file(demo_dir, capsys):
    for name in ("turntable.gif", "contact_sheet.png", "avatar.nofa", "template.nofa", "head.ply"):
        assert (demo_dir / name).is_file() and (demo_dir / name).stat().st_size > 0, name
    frames = imageio.mimread(demo_dir / "turntable.gif")
    assert len(frames) == 3 and frames[0].shape[:2] == (24, 24)
    assert not all(np.array_equal(frames[0], f) for f in frames[1:])  # the camera moved
    sheet = imageio.imread(demo_dir / "contact_sheet.png")
    assert sheet.shape[1] == 8 * 24  # input, template, fitted, 4 novel views, depth
    av = load_avatar(demo_dir / "avatar.nofa")
    assert av.metadata["adapted"] and av.metadata["adapt_steps"] == 3
    tmpl = load_avatar(demo_dir / "template.nofa")
    assert not torch.equal(av.planes, tmpl.planes)  # fast adaptation changed the tri-plane
    try:
        import dlib  # noqa: F401

        assert av.metadata[
            "geometry_warped"
        ]  # --geometry-fit is on by default (needs the landmarks)
    except ImportError:
        pass
    mesh = trimesh.load(demo_dir / "head.ply", force="mesh")
    assert len(mesh.faces) > 0 and mesh.visual.vertex_colors.shape[0] == len(mesh.vertices)
    # the demo moves: animation.mp4 + .gif, 4 frames with --quick, the camera sweeping
    anim = imageio.mimread(demo_dir / "animation.gif")
    assert len(anim) == 4 and not all(np.array_equal(anim[0], f) for f in anim[1:])
    assert (demo_dir / "animation.mp4").stat().st_size > 0


def test_cli_render_turntable_export(demo_dir, tmp_path):
    av = str(demo_dir / "avatar.nofa")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert (
            main(
                [
                    "render",
                    av,
                    "--yaw",
                    "20",
                    "--resolution",
                    "12",
                    "--samples",
                    "6",
                    "--out",
                    str(tmp_path / "r.png"),
                    "--depth-out",
                    str(tmp_path / "d.png"),
                ]
            )
            == 0
        )
        assert (
            main(
                [
                    "turntable",
                    av,
                    "--frames",
                    "4",
                    "--resolution",
                    "8",
                    "--samples",
                    "4",
                    "--out",
                    str(tmp_path / "t.gif"),
                ]
            )
            == 0
        )
    assert imageio.imread(tmp_path / "r.png").shape == (12, 12, 3)
    assert imageio.imread(tmp_path / "d.png").shape == (12, 12, 3)
    assert len(imageio.mimread(tmp_path / "t.gif")) == 4


def test_mp4_without_ffmpeg_says_what_to_install(demo_dir, tmp_path):
    pytest.importorskip("imageio", reason="imageio missing")
    try:
        import imageio_ffmpeg  # noqa: F401

        pytest.skip("imageio-ffmpeg is installed, so .mp4 works")
    except ImportError:
        pass
    with pytest.raises(RuntimeError, match="imageio-ffmpeg"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        main(
            [
                "turntable",
                str(demo_dir / "avatar.nofa"),
                "--frames",
                "1",
                "--resolution",
                "4",
                "--samples",
                "3",
                "--out",
                str(tmp_path / "t.mp4"),
            ]
        )


def test_cli_export_mesh(demo_dir, tmp_path):
    av = load_avatar(demo_dir / "avatar.nofa")
    from nofa.pipelines.mesh import avatar_density_fn, density_grid

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        g = density_grid(avatar_density_fn(av), 8, av.options.box_warp / 2)
        level = float(g.min() + g.max()) / 2
        assert (
            main(
                [
                    "export-mesh",
                    str(demo_dir / "avatar.nofa"),
                    "--resolution",
                    "16",
                    "--level",
                    str(level),
                    "--out",
                    str(tmp_path / "m.obj"),
                ]
            )
            == 0
        )
    assert len(trimesh.load(tmp_path / "m.obj", force="mesh").faces) > 0


def test_every_command_has_help():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name in ("demo", "render", "turntable", "export-mesh"):
        assert name in sub.choices
        text = sub.choices[name].format_help()
        assert "--out" in text and len(text) > 400, name


def test_astronaut_portrait_offline():
    img = astronaut_portrait()
    assert img.shape == (3, 216, 216) and img.min() >= -1 and img.max() <= 1
