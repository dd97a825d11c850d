"""Bad command-line input: argparse-style errors naming the option (exit 2), clear one-line
errors for files that are not avatars/images (exit 1), and the --pitch camera convention."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from nofa.cli import build_parser, main
from nofa.commands.render import view_label
from nofa.render import parse_label

AV = "no-such-avatar.nofa"  # never opened: the options fail first

BAD_NUMBERS = [
    (["render", AV, "--yaw", "nan"], "--yaw", "finite"),
    (["render", AV, "--yaw", "inf"], "--yaw", "finite"),
    (["render", AV, "--pitch=-inf"], "--pitch", "finite"),
    (["render", AV, "--pitch", "NaN"], "--pitch", "finite"),
    (["render", AV, "--pitch", "120"], "--pitch", r"\[-90, 90\]"),
    (["render", AV, "--radius", "0"], "--radius", "> 0"),
    (["render", AV, "--radius", "-2.7"], "--radius", "> 0"),
    (["render", AV, "--radius", "inf"], "--radius", "finite"),
    (["render", AV, "--radius", "nan"], "--radius", "finite"),
    (["render", AV, "--radius", "two"], "--radius", "a number"),
    (["render", AV, "--resolution", "0"], "--resolution", ">= 1"),
    (["render", AV, "--samples", "-3"], "--samples", ">= 1"),
    (["turntable", AV, "--yaw-range", "nan"], "--yaw-range", "finite"),
    (["turntable", AV, "--yaw-range=-inf"], "--yaw-range", "finite"),
    (["turntable", AV, "--pitch-range", "inf"], "--pitch-range", "finite"),
    (["turntable", AV, "--fps", "0"], "--fps", "> 0"),
    (["turntable", AV, "--fps", "-12"], "--fps", "> 0"),
    (["turntable", AV, "--fps", "nan"], "--fps", "finite"),
    (["turntable", AV, "--frames", "0"], "--frames", ">= 1"),
    (["export-mesh", AV, "--chunk", "0"], "--chunk", ">= 1"),
    (["export-mesh", AV, "--chunk", "-100"], "--chunk", ">= 1"),
    (["export-mesh", AV, "--min-fraction", "-0.1"], "--min-fraction", r"\[0, 1\]"),
    (["export-mesh", AV, "--min-fraction", "1.5"], "--min-fraction", r"\[0, 1\]"),
    (["export-mesh", AV, "--min-fraction", "nan"], "--min-fraction", "finite"),
    (["export-mesh", AV, "--resolution", "1"], "--resolution", ">= 2"),
    (["export-mesh", AV, "--level", "inf"], "--level", "finite"),
    (["render", AV, "--out", "view.txt"], "--out", "png"),
    (["render", AV, "--depth-out", "depth"], "--depth-out", "png"),
    (["turntable", AV, "--out", "spin.png"], "--out", "gif"),
    (["export-mesh", AV, "--out", "head.stl"], "--out", "ply"),
    (["demo", "--lr", "0"], "--lr", "> 0"),
    (["demo", "--steps", "-1"], "--steps", ">= 0"),
    (["demo", "--threads", "0"], "--threads", ">= 1"),
    (["demo", "--depth-weight", "nan"], "--depth-weight", "finite"),
]


@pytest.mark.parametrize(
    "argv,option,why", BAD_NUMBERS, ids=[" ".join(a[0][:1] + a[0][2:]) for a in BAD_NUMBERS]
)
def test_bad_numbers_exit_2_naming_the_option(argv, option, why, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}:" in err, err
    assert re.search(why, err), err
    assert "Traceback" not in err


def test_good_boundary_values_parse():
    p = build_parser()
    a = p.parse_args(["render", AV, "--pitch", "-90", "--yaw", "-400", "--radius", "1e-3"])
    assert (a.pitch, a.yaw, a.radius, a.device) == (-90.0, -400.0, 1e-3, "cpu")
    a = p.parse_args(
        ["export-mesh", AV, "--min-fraction", "0", "--chunk", "1", "--resolution", "2"]
    )
    assert (a.min_fraction, a.chunk, a.resolution) == (0.0, 1, 2)
    assert p.parse_args(["export-mesh", AV, "--min-fraction", "1"]).min_fraction == 1.0
    assert p.parse_args(["turntable", AV, "--fps", "0.5", "--yaw-range", "-35"]).fps == 0.5
    assert p.parse_args(["turntable", AV, "--out", "spin.mp4"]).out == "spin.mp4"
    assert p.parse_args(["render", AV, "--out", "a.JPG", "--depth-out", "d.png"]).out == "a.JPG"
    assert p.parse_args(["export-mesh", AV, "--out", "m.glb"]).out == "m.glb"


@pytest.mark.parametrize("command", ["render", "turntable", "export-mesh"])
def test_bogus_device_names_device(command, capsys):
    with pytest.raises(SystemExit) as e:
        main([command, AV, "--device", "bogus"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "argument --device:" in err and "bogus" in err, err
    assert "corrupt" not in err


@pytest.mark.skipif(
    torch.cuda.is_available(), reason="a GPU is visible: --device cuda is valid here"
)
def test_cuda_without_gpu_names_device(capsys):
    with pytest.raises(SystemExit) as e:
        main(["render", AV, "--device", "cuda"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "argument --device:" in err and "GPU" in err, err


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_index_out_of_range_names_device(capsys):
    with pytest.raises(SystemExit) as e:
        main(["render", AV, "--device", f"cuda:{torch.cuda.device_count()}"])
    assert e.value.code == 2 and "argument --device:" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["render", "turntable", "export-mesh"])
def test_file_that_is_not_an_avatar(command, tmp_path, capsys):
    junk = tmp_path / "photo.nofa"
    junk.write_text("hello\n")
    out = [
        "--out",
        str(
            tmp_path
            / (
                "x.gif"
                if command == "turntable"
                else "x.ply"
                if command == "export-mesh"
                else "x.png"
            )
        ),
    ]
    for path, why in (
        (junk, "not a readable nofa avatar"),
        (tmp_path / "missing.nofa", "not found"),
    ):
        with pytest.raises(SystemExit) as e:
            main([command, str(path)] + out)
        err = capsys.readouterr().err
        assert e.value.code == 1, err
        assert (
            err.startswith(f"nofa {command}: error: AVATAR: ") and why in err and str(path) in err
        ), err
        assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.nofa"]  # nothing written


def test_demo_with_bad_template_or_image(tmp_path, capsys):
    junk = tmp_path / "junk.nofa"
    junk.write_text("hello\n")
    for argv, why in (
        (["--template", str(junk)], "not a readable nofa avatar"),
        (["--image", str(junk)], "not an image file"),
    ):
        with pytest.raises(SystemExit) as e:
            main(["demo", "--quick", "--no-progress", "--out", str(tmp_path / "out")] + argv)
        err = capsys.readouterr().err
        assert e.value.code == 1 and err.startswith("nofa demo: error: ") and why in err, err


def degenerate_image(path, kind: str):
    """Pictures no face fits in: (w, h) sizes, or a 0-byte file."""
    from PIL import Image

    if kind == "0-byte":
        path.write_bytes(b"")
        return path
    w, h = DEGENERATE[kind]
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)
    return path


DEGENERATE = {"1x1": (1, 1), "1xN": (1, 300), "Nx1": (300, 1), "2x2": (2, 2), "4000x3": (4000, 3)}


@pytest.mark.parametrize("kind", [*DEGENERATE, "0-byte"])
def test_demo_image_too_small_or_empty_is_one_line_naming_image(kind, tmp_path, capsys):
    """A 1x1 --image ended in a numpy stride traceback from dlib."""
    pytest.importorskip("dlib", reason="dlib-bin is not installed (pinned in requirements.txt)")
    photo = degenerate_image(tmp_path / f"{kind}.png", kind)
    with pytest.raises(SystemExit) as e:
        main(["demo", "--quick", "--no-progress", "--image", str(photo), "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert e.value.code == 1, err
    assert err.startswith(f"nofa demo: error: --image: {photo}: ") and "Traceback" not in err, err
    if kind == "0-byte":
        assert "not an image file" in err, err
    else:
        w, h = DEGENERATE[kind]
        assert f"the photo is {w}x{h} px; a face needs a photo of at least 40x40 px" in err, err
    assert len(err.strip().splitlines()) == 1, err


def test_render_pitch_is_eg3d_pitch():
    # --pitch -11.459 deg = -0.2 rad: EG3D's camera sits at polar angle arccos(0.4 / pi) = 82.685
    # deg
    # from +y (a plain pi/2 + pitch would give 78.54 deg).
    args = build_parser().parse_args(
        ["render", AV, "--pitch", str(math.degrees(-0.2)), "--radius", "3"]
    )
    origin = parse_label(view_label(args))[0][:3, 3].double()
    assert origin.norm().item() == pytest.approx(3.0, abs=1e-5)
    assert math.degrees(math.acos(origin[1].item() / 3.0)) == pytest.approx(82.685, abs=1e-3)
