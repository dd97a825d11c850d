"""Deep3DFaceRecon's regressor in `nofa prepare` (photos and videos: its coefficients, and
labels from its pose as EG3D's pipeline makes them; the video clip loads in VideoDataset). A
random network in the real checkpoint's
layout stands in for the user's epoch_20.pth; the test video is tests/face_video.py's."""

from __future__ import annotations

import json

import numpy as np
import pytest
from face_video import BLANK, base, make_deep3d_weights, make_face_video

from nofa.cli import main
from nofa.io.eg3d_labels import deep3d_to_eg3d_labels, read_dataset_json

pytest.importorskip("imageio_ffmpeg", reason="imageio-ffmpeg (pinned in requirements) missing")
pytest.importorskip("dlib", reason="dlib-bin is not installed (pinned in requirements.txt)")


@pytest.fixture(scope="module")
def face_video(tmp_path_factory):
    return make_face_video(tmp_path_factory.mktemp("video"))


@pytest.fixture(scope="module")
def deep3d_weights(tmp_path_factory):
    return make_deep3d_weights(tmp_path_factory.mktemp("deep3d"))


def test_prepare_video_with_regressor_is_a_training_clip(
    face_video, deep3d_weights, tmp_path, capsys
):
    from nofa.train.video_data import VideoDataset

    out = tmp_path / "clips"
    argv = ["prepare", str(face_video), "--out", str(out), "--size", "128", "--no-progress"]
    rc = main(argv + ["--deep3d-weights", str(deep3d_weights), "--max-frames", "13"])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "13 frames at 25 fps, 1 interpolated; coefficients and cameras from Deep3DFaceRecon" in (
        text
    )
    clip = out / "talk"
    names = sorted(p.name for p in (clip / "frames").iterdir())
    assert names == [f"{i:05d}.png" for i in range(13)]
    coeffs = np.load(clip / "coeffs.npy")
    lm = np.load(clip / "landmarks.npy")
    labels = read_dataset_json(clip / "dataset.json")
    assert coeffs.shape == (13, 257) and lm.shape == (13, 68, 2) and len(labels) == 13
    assert np.isnan(lm[BLANK]).all() and np.isfinite(np.delete(lm, BLANK, 0)).all()
    # labels are Deep3DFaceRecon's (smoothed) pose through EG3D's conversion, like EG3D's own
    np.testing.assert_allclose(
        np.stack([labels[n] for n in names]),
        deep3d_to_eg3d_labels(coeffs[:, 224:227], coeffs[:, 254:257]),
        atol=1e-5,
    )
    info = json.loads((clip / "video.json").read_text())
    assert info["replaced_frames"] == [BLANK] and info["pose_source"] == "deep3d"
    assert np.load(clip / "crop_to_photo.npy").shape == (13, 3, 3)
    ds = VideoDataset(out, 64, split="all", landmarks="require")
    assert ds.clips == ["talk"]
    item = ds.load_frame("talk", 3)
    assert item["image"].shape == (3, 64, 64) and item["alpha"].shape == (80,)
    np.testing.assert_allclose(item["beta"].numpy(), coeffs[3, 80:144], atol=1e-6)
    problems = ds.check()
    assert len(problems) == 1 and problems[0].frame == BLANK  # the frame without a face, named
    # landmarks in the crop sit on the face of the crop
    assert 30 < np.nanmean(lm[:, 30, 0]) < 98 and 40 < np.nanmean(lm[:, 30, 1]) < 110


def test_photo_with_regressor_writes_deep3d_coefficients(deep3d_weights, tmp_path, capsys):
    from PIL import Image

    from nofa.faces.deep3d_net import coefficients_from_photo, load_deep3d_net
    from nofa.faces.eg3d_crop import deep3d_crop
    from nofa.io.coeffs import load_deep3d

    photo = base()
    Image.fromarray(photo).save(tmp_path / "me.png")
    out = tmp_path / "out"
    argv = ["prepare", str(tmp_path / "me.png"), "--out", str(out), "--size", "128"]
    rc = main(argv + ["--no-progress", "--no-preview", "--deep3d-weights", str(deep3d_weights)])
    assert rc == 0, capsys.readouterr().out
    c = load_deep3d(out / "coeffs" / "me.mat").to_deep3d()[0]
    label = read_dataset_json(out / "dataset.json")["me.png"]
    np.testing.assert_allclose(label, deep3d_to_eg3d_labels(c[224:227], c[254:257])[0], atol=1e-5)
    info = json.loads((out / "landmarks.json").read_text())["faces"]["me.png"]
    assert info["camera"] == "deep3d"
    # the coefficients are the network's answer on Deep3DFaceRecon's own crop of the photo
    lm = np.array(info["landmarks_crop"]) @ np.array(info["crop_to_photo"])[:2, :2].T
    lm += np.array(info["crop_to_photo"])[:2, 2]
    net = load_deep3d_net(deep3d_weights)
    want = coefficients_from_photo(photo, lm, net)
    np.testing.assert_allclose(c, want, atol=2e-3)  # landmarks.json rounds to 0.01 px
    crop, affine = deep3d_crop(photo, lm)
    assert crop.shape == (224, 224, 3) and affine.shape == (2, 3)
    with pytest.raises(ValueError, match=r"landmarks68 must be 68 finite"):
        coefficients_from_photo(photo, lm[:5], net)
