"""`nofa animate --drive VIDEO`: a raw driving video, tracked as `nofa prepare VIDEO` does;
head pose only without Deep3DFaceRecon's regressor (said plainly, the camera follows the
head), its expressions with it. The test video and the random checkpoint:
tests/face_video.py."""

from __future__ import annotations

import numpy as np
import pytest
from face_video import make_deep3d_weights, make_face_video, write_video

from nofa.cli import main

pytest.importorskip("imageio_ffmpeg", reason="imageio-ffmpeg (pinned in requirements) missing")
pytest.importorskip("dlib", reason="dlib-bin is not installed (pinned in requirements.txt)")


@pytest.fixture(scope="module")
def face_video(tmp_path_factory):
    return make_face_video(tmp_path_factory.mktemp("video"))


@pytest.fixture(scope="module")
def deep3d_weights(tmp_path_factory):
    return make_deep3d_weights(tmp_path_factory.mktemp("deep3d"))


@pytest.fixture(scope="module")
def avatar(tmp_path_factory):
    """A tiny animatable avatar (as tests/test_animate.py makes one)."""
    import torch

    from nofa.models import NOFAAvatar
    from nofa.models.animatable import AnimatableAvatar, save_animatable
    from nofa.render import default_label

    torch.manual_seed(0)
    model = NOFAAvatar.from_preset("tiny").eval()
    with torch.no_grad():
        model.deformation.d_weights[-1].normal_(0, 0.05)
    img = torch.rand(1, 3, 64, 64) * 2 - 1
    av = AnimatableAvatar.from_model(model, img, default_label()[None], torch.randn(1, 80))
    path = tmp_path_factory.mktemp("avatar") / "src.nofa-anim"
    save_animatable(path, av)
    return path


def test_animate_drive_raw_video(avatar, face_video, deep3d_weights, tmp_path, capsys):
    from PIL import Image

    base_argv = ["animate", str(avatar), "--drive", str(face_video), "--max-frames", "4"]
    base_argv += ["--batch", "2", "--no-progress"]
    # without the regressor: head pose only, said plainly; the camera follows the driving head
    rc = main(base_argv + ["--out", str(tmp_path / "pose")])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "HEAD POSE ONLY" in text and "camera: driving" in text
    assert "4 frames at 25 fps, landmark head pose" in text
    frames = sorted((tmp_path / "pose").glob("*.png"))
    assert len(frames) == 4 and np.asarray(Image.open(frames[0])).shape == (64, 64, 3)
    # an explicit --camera is kept
    rc = main(base_argv + ["--out", str(tmp_path / "fixed"), "--camera", "fixed"])
    assert rc == 0 and "camera: fixed" in capsys.readouterr().out
    # with it: Deep3DFaceRecon's expressions drive the face
    rc = main(base_argv + ["--out", str(tmp_path / "exp"), "--deep3d-weights", str(deep3d_weights)])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "Deep3DFaceRecon coefficients" in text and "HEAD POSE ONLY" not in text
    assert len(list((tmp_path / "exp").glob("*.png"))) == 4
    # a video without a face: one line naming --drive, exit 1
    write_video(tmp_path / "wall.mp4", [np.full((96, 128, 3), 90, np.uint8)] * 3, 25)
    with pytest.raises(SystemExit) as e:
        main(["animate", str(avatar), "--drive", str(tmp_path / "wall.mp4"), "--no-progress"])
    assert e.value.code == 1
    assert "--drive:" in capsys.readouterr().err
