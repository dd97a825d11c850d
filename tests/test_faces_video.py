"""Face videos in (nofa.faces.video): decoding at 25 fps, cleaning and smoothing landmarks over
time, frames without a face, `nofa prepare VIDEO` -> a training clip that VideoDataset loads,
and the errors.

The test video (tests/face_video.py): astronaut() moving smoothly with sensor-like noise, one
blank frame; its true landmarks are known. Deep3DFaceRecon's regressor with `nofa prepare` and
`nofa animate --drive VIDEO`: tests/test_deep3d_prepare.py.
"""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
from face_video import BLANK, FPS, H, W, base, make_face_video, pose, write_video

from nofa.cli import main
from nofa.faces.video import (
    VideoFrames,
    clean_landmarks,
    is_raw_video,
    smooth,
)
from nofa.io.eg3d_labels import deep3d_to_eg3d_labels, read_dataset_json

imageio_ffmpeg = pytest.importorskip(
    "imageio_ffmpeg", reason="imageio-ffmpeg (pinned in requirements) missing"
)


@pytest.fixture(scope="module")
def face_video(tmp_path_factory):
    return make_face_video(tmp_path_factory.mktemp("video"))


# -- decoding, no face work ----------------------------------------------------------------------
def test_video_frames_resampled_to_25_fps(tmp_path):
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(36)]
    write_video(tmp_path / "v30.mp4", frames, 30)  # 1.2 s at 30 fps
    v = VideoFrames(tmp_path / "v30.mp4")
    got = list(v)
    assert v.source_fps == 30 and len(v) == 30 and len(got) == 30  # 1.2 s at 25 fps
    assert got[0].shape == (48, 64, 3) and got[0].dtype == np.uint8
    assert len(list(VideoFrames(tmp_path / "v30.mp4", max_frames=7))) == 7
    assert len(list(VideoFrames(tmp_path / "v30.mp4", fps=10))) == 12
    # a folder of frames is taken as it is
    from PIL import Image

    (tmp_path / "fr").mkdir()
    for i in (0, 1, 10, 2):
        Image.fromarray(frames[i]).save(tmp_path / "fr" / f"f{i}.png")
    (tmp_path / "fr" / "f3.png").write_bytes(b"broken")  # unreadable: an empty frame, in place
    seq = list(VideoFrames(tmp_path / "fr"))
    assert len(seq) == 5 and seq[3].size == 0 and np.array_equal(seq[4], frames[10])
    assert is_raw_video(tmp_path / "v30.mp4") and is_raw_video(tmp_path / "fr")
    np.save(tmp_path / "fr" / "f0.npy", np.zeros((1, 257), np.float32))
    assert not is_raw_video(tmp_path / "fr")  # frames with coefficients: a coefficient drive


def test_video_frames_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="video not found.*none.mp4"):
        VideoFrames(tmp_path / "none.mp4")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match=r"notes.txt: not a video file .*\.mp4"):
        VideoFrames(tmp_path / "notes.txt")
    (tmp_path / "junk.mp4").write_bytes(b"\x00" * 100)
    with pytest.raises(ValueError, match="junk.mp4: ffmpeg cannot read this video"):
        VideoFrames(tmp_path / "junk.mp4")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no frame images"):
        VideoFrames(tmp_path / "empty")
    with pytest.raises(ValueError, match="fps must be a positive number"):
        VideoFrames(tmp_path / "empty", fps=0)


def test_clean_and_smooth_landmarks():
    """Known smooth tracks + dlib-like noise, two frames without a face and one detector
    mistake: the gaps are filled from the neighbours, the mistake replaced, the noise halved."""
    rng = np.random.default_rng(0)
    T = 60
    t = np.arange(T)[:, None, None] / 25
    base = rng.uniform(100, 200, (1, 68, 2))
    truth = base + np.concatenate([30 * np.sin(2 * np.pi * 0.5 * t), 8 * np.cos(t)], 2)
    raw = truth + rng.normal(0, 1.5, truth.shape)
    raw[[10, 11]] = np.nan  # no face
    raw[40] += 250  # another face far away
    sm, replaced = clean_landmarks(raw)
    assert replaced.nonzero()[0].tolist() == [10, 11, 40]
    good = ~replaced
    err_raw = np.hypot(*(raw - truth)[good].reshape(-1, 2).T).mean()
    err_sm = np.hypot(*(sm - truth)[good].reshape(-1, 2).T).mean()
    assert err_sm < 0.65 * err_raw, (err_sm, err_raw)
    assert np.hypot(*(sm - truth)[replaced].reshape(-1, 2).T).mean() < 2.5  # gaps filled well
    # the filter: zero-phase (no lag on a ramp), off for 0/1, short clips, bad windows
    ramp = np.arange(20.0)[:, None] * 3
    np.testing.assert_allclose(smooth(ramp, 7), ramp, atol=1e-9)
    assert np.array_equal(smooth(raw[:5, :2], 0), raw[:5, :2])
    assert smooth(ramp[:4], 7).shape == (4, 1)
    with pytest.raises(ValueError, match="odd number of frames"):
        smooth(ramp, 6)
    with pytest.raises(ValueError, match=r"\[T, 68, 2\]"):
        clean_landmarks(np.zeros((4, 5, 2)))
    from nofa.faces import NoFaceError

    with pytest.raises(NoFaceError, match="no face found in any frame"):
        clean_landmarks(np.full((4, 68, 2), np.nan))


# -- faces in a video ----------------------------------------------------------------------------
needs_dlib = pytest.mark.skipif(
    importlib.util.find_spec("dlib") is None,
    reason="dlib-bin is not installed (pinned in requirements.txt)",
)


@needs_dlib
def test_track_smooths_jitter_and_survives_a_frame_without_face(face_video):
    from nofa.faces.detect import detect_faces
    from nofa.faces.video import track_video

    track = track_video(face_video, progress=False)
    T = len(track)
    assert T == 30 and track.fps == 25 and track.frame_size == (W, H)
    assert track.replaced_frames == [BLANK] and "interpolated" in track.notes[0]
    assert np.isnan(track.landmarks_raw[BLANK]).all() and np.isfinite(track.landmarks).all()
    ref = detect_faces(base())[0].landmarks
    truth = np.stack([(ref - 150) * s + (x, y) for s, x, y in (pose(i / FPS) for i in range(T))])
    good = ~track.replaced

    def error(lm):
        return np.hypot(*(lm - truth)[good].reshape(-1, 2).T).mean()

    def jitter(lm):  # mean size of the second difference over runs of good frames
        d2 = np.diff(lm, 2, axis=0)[good[2:] & good[1:-1] & good[:-2]]
        return np.hypot(*d2.reshape(-1, 2).T).mean()

    assert error(track.landmarks) < error(track.landmarks_raw)
    assert jitter(track.landmarks) < 0.5 * jitter(track.landmarks_raw)
    assert jitter(track.landmarks) < 2 * jitter(truth)
    # the interpolated frame lands where the face was
    assert np.hypot(*(track.landmarks[BLANK] - truth[BLANK]).T).mean() < 2
    # cameras: landmark pose, smoothed, converted like Deep3DFaceRecon's
    assert track.pose_source == "landmarks" and track.coeffs is None
    np.testing.assert_allclose(
        track.labels, deep3d_to_eg3d_labels(track.angle, track.trans), atol=1e-6
    )
    assert np.abs(np.diff(np.degrees(track.angle), axis=0)).max() < 2  # a still head
    driving = track.to_coeffs()
    assert len(driving) == T and not driving.exp.any() and driving.has_pose


@needs_dlib
def test_prepare_video_without_regressor_and_errors(face_video, tmp_path, capsys):
    out = tmp_path / "clips"
    rc = main(
        ["prepare", str(face_video), "--out", str(out), "--size", "96", "--no-progress"]
        + ["--max-frames", "6", "--smooth", "5"]
    )
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "cameras from the landmarks; no coeffs.npy" in text and "--deep3d-weights" in text
    clip = out / "talk"
    assert not (clip / "coeffs.npy").exists() and len(read_dataset_json(clip / "dataset.json")) == 6
    assert json.loads((clip / "video.json").read_text())["pose_source"] == "landmarks"
    # bad input: clear errors naming the option or the file
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00" * 64)
    assert main(["prepare", str(junk), "--out", str(out), "--no-progress"]) == 1
    assert "junk.mp4: ffmpeg cannot read this video" in capsys.readouterr().out
    rc = main(["prepare", str(face_video), "--out", str(out), "--deep3d-weights", "nope.pth"])
    assert rc == 2 and "--deep3d-weights: Deep3DFaceRecon weights not found: nope.pth" in (
        capsys.readouterr().out
    )
    with pytest.raises(SystemExit):
        main(["prepare", str(face_video), "--out", str(out), "--smooth", "4"])
    assert "odd number of frames" in capsys.readouterr().err
