"""The demo end to end at tiny sizes (through the CLI), and the CLI commands on its avatar."""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from types import SimpleNamespace

import imageio.v2 as imageio
import numpy as np
import pytest
import torch
import trimesh

from nofa.cli import build_parser, main
from nofa.io import load_avatar
from nofa.pipelines.template_fit.demo import astronaut_portrait


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """The --quick demo's output folder and what it printed."""
    out = tmp_path_factory.mktemp("demo")
    printed = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(printed):
        warnings.simplefilter("ignore", RuntimeWarning)
        assert main(["demo", "--quick", "--no-progress", "--out", str(out)]) == 0
    return out, printed.getvalue()


@pytest.fixture(scope="module")
def demo_dir(demo_run):
    return demo_run[0]


def test_demo_writes_every_promised_file(demo_dir, capsys):
    for name in (
        "turntable.gif",
        "contact_sheet.png",
        "avatar.nofa-avatar",
        "template.nofa-avatar",
        "head.ply",
    ):
        assert (demo_dir / name).is_file() and (demo_dir / name).stat().st_size > 0, name
    frames = imageio.mimread(demo_dir / "turntable.gif")
    assert len(frames) == 3 and frames[0].shape[:2] == (24, 24)
    assert not all(np.array_equal(frames[0], f) for f in frames[1:])  # the camera moved
    sheet = imageio.imread(demo_dir / "contact_sheet.png")
    assert sheet.shape[1] == 8 * 24  # input, template, fitted, 4 novel views, depth
    av = load_avatar(demo_dir / "avatar.nofa-avatar")
    assert av.metadata["adapted"] and av.metadata["adapt_steps"] == 3
    tmpl = load_avatar(demo_dir / "template.nofa-avatar")
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


IDENTITY_YAWS = [-35.0, -20.0, 0.0, 20.0, 35.0]


def test_demo_reports_fitted_view_psnr_and_identity_at_five_views(demo_run):
    """The PSNR is labelled as the fitted view's; the held-out identity distances (dlib) at yaw
    -35 .. +35 are printed and in metrics.json, each a number or "no face found in the render"
    (the --quick avatar is a blur at 64 px: no face is the expected answer there)."""
    pytest.importorskip("dlib", reason="the identity check needs dlib")
    out, printed = demo_run
    assert "fitted view (the photo's camera, which fast adaptation fitted)" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["fitted_view_psnr_db"] > 0
    assert "not a held-out" in metrics["fitted_view_psnr_note"]
    identity = metrics["identity"]
    assert identity["threshold"] == 0.6 and identity["input_face_found"]
    assert [v["yaw_deg"] for v in identity["views"]] == IDENTITY_YAWS
    lines = printed.splitlines()
    for v in identity["views"] + [identity["fitted_view"]]:
        said = f"{v['distance']:.3f}" if v["face_found"] else "no face found in the render"
        assert v["face_found"] == (v["distance"] is not None)
        shown = [ln for ln in lines if ln.startswith(f"  {v['view']} ")]
        assert len(shown) == 1 and said in shown[0], (v, printed)
    sheet = imageio.imread(out / "identity_views.png")  # input + 5 views + the fitted view
    assert sheet.shape[1] == 7 * 64


def test_identity_distances_number_each_view_or_say_no_face(monkeypatch):
    """identity_distances with renders replaced by the aligned input itself (distance 0) at
    yaw -35, 0, +35 and a blank image (no face) at -20, +20 and the fitted view."""
    pytest.importorskip("dlib", reason="the identity check needs dlib")
    from nofa.pipelines.template_fit import demo as demo_mod
    from nofa.render.cameras import default_label

    portrait = demo_mod.load_portrait(None, log=lambda *_: None).image
    blank = torch.zeros_like(portrait)

    def views(avatar, labels, res, samples):
        return [
            SimpleNamespace(rgb=(blank if i % 2 else portrait)[None]) for i in range(len(labels))
        ]

    monkeypatch.setattr(demo_mod, "_views", views)
    got = demo_mod.identity_distances(None, portrait, default_label(), tuple(IDENTITY_YAWS), 256, 4)
    assert [v["yaw_deg"] for v in got["views"]] == IDENTITY_YAWS
    for i, v in enumerate(got["views"]):
        if i % 2:
            assert not v["face_found"] and v["distance"] is None
            assert v["note"] == "no face found in the render"
        else:
            assert v["face_found"] and v["distance"] == pytest.approx(0.0, abs=1e-6)
    fitted = got["fitted_view"]  # the sixth render: blank
    assert fitted["view"] == "fitted view" and not fitted["face_found"]
    assert len(got["images"]) == 6


def test_cli_render_turntable_export(demo_dir, tmp_path):
    av = str(demo_dir / "avatar.nofa-avatar")
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
                str(demo_dir / "avatar.nofa-avatar"),
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
    av = load_avatar(demo_dir / "avatar.nofa-avatar")
    from nofa.pipelines.mesh import avatar_density_fn, density_grid

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        g = density_grid(avatar_density_fn(av), 8, av.options.box_warp / 2)
        level = float(g.min() + g.max()) / 2
        assert (
            main(
                [
                    "export-mesh",
                    str(demo_dir / "avatar.nofa-avatar"),
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
