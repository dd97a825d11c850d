"""Procedural talking heads (nofa.train.procedural_heads, `nofa dataset synth`): deterministic
clips in the real dataset layout, expressions that visibly change the face, landmarks that
sit on the rendered face."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from nofa.cli import main as cli_main
from nofa.io.eg3d_labels import deep3d_to_eg3d_label, read_dataset_json
from nofa.render import default_label
from nofa.train.procedural_heads import (
    EXPRESSION_NAMES,
    IDENTITY_NAMES,
    HeadIdentity,
    head_landmarks3d,
    render_heads,
    write_synthetic_video_dataset,
)
from nofa.train.video_data import VideoDataset, VideoSource


def _files(root):
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_dataset_is_deterministic_and_in_the_real_formats(tmp_path):
    kw = dict(clips=3, frames=5, size=24, supersample=1, heldout=1)
    a = write_synthetic_video_dataset(tmp_path / "a", seed=7, **kw)
    b = write_synthetic_video_dataset(tmp_path / "b", seed=7, **kw)
    c = write_synthetic_video_dataset(tmp_path / "c", seed=8, **kw)
    fa = _files(a)
    assert fa == _files(b)
    assert fa["clip0000/frames/00000.png"] != _files(c)["clip0000/frames/00000.png"]
    assert (a / "heldout.txt").read_text() == "clip0002\n"
    meta = json.loads((a / "synthetic.json").read_text())
    assert meta["alpha"] == list(IDENTITY_NAMES) and meta["beta"] == list(EXPRESSION_NAMES)

    ds = VideoDataset(a, 24, split="all", audio=True, landmarks="require")
    assert ds.check() == [] and ds.clips == ["clip0000", "clip0001", "clip0002"]
    coeff = np.load(a / "clip0001" / "coeffs.npy")
    assert coeff.shape == (5, 257)
    labels = list(read_dataset_json(a / "clip0001" / "dataset.json").values())
    for row, lab in zip(coeff, labels):  # the coefficients' pose is the camera of dataset.json
        np.testing.assert_allclose(deep3d_to_eg3d_label(row[224:227], row[254:257]), lab, atol=1e-5)
    assert np.all(coeff[:, 8:80] == 0) and np.all(
        coeff[:, 88:144] == 0
    )  # only alpha[:8], beta[:4] used
    assert np.all(coeff[:, :8] == coeff[0, :8]) and np.abs(coeff[0, :8]).max() <= 1
    assert (
        np.all(coeff[0, 80:84] == 0) and coeff[:, 80:84].min() >= 0 and coeff[:, 80:84].max() <= 1
    )
    audio = np.load(a / "clip0001" / "audio_exp.npy")
    assert (
        audio.shape == (5, 64)
        and np.all(audio[:, 4:] == 0)
        and not np.array_equal(audio[:, :4], coeff[:, 80:84])
    )
    batch = VideoSource(VideoDataset(a, 24, heldout_clips=1, audio=True)).batch(range(4))
    assert "clip0002" not in batch.clips and batch.beta_audio_t.shape == (4, 64)
    torch.testing.assert_close(batch.alpha_s[:, :8], batch.alpha_t[:, :8])


def test_mat_and_depth_variants(tmp_path):
    root = write_synthetic_video_dataset(
        tmp_path / "m", clips=2, frames=3, size=16, supersample=1, mat=True, depth=True, audio=False
    )
    assert sorted(p.name for p in (root / "clip0000" / "coeffs").iterdir()) == [
        "00000.mat",
        "00001.mat",
        "00002.mat",
    ]
    assert (
        not (root / "clip0000" / "coeffs.npy").exists()
        and not (root / "clip0000" / "audio_exp.npy").exists()
    )
    depth = np.load(root / "clip0000" / "depth" / "00001.npy")
    assert (
        depth.shape == (16, 16) and depth[8, 8] > 2.0 and depth[0, 0] == 0
    )  # face in the middle, background 0
    ds = VideoDataset(root, 16, split="all")
    assert ds.check() == []
    assert ds.load_frame("clip0001", 2)["beta"].shape == (64,)


def _box_mean(image: np.ndarray, pts: np.ndarray) -> float:
    x0, y0 = np.floor(pts.min(0)).astype(int)
    x1, y1 = np.ceil(pts.max(0)).astype(int)
    return float(image[y0:y1, x0:x1].astype(np.float64).mean())


def test_expressions_change_the_face_where_the_landmarks_say():
    ident = HeadIdentity((0.2, -0.3, 0.1, 0.6, 0.0, -0.5, 0.2, 0.0), (0.6, 0.6, 0.65))
    expr = np.array(
        [[0, 0, 0, 0], [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], np.float64
    )
    labels = default_label(torch.zeros(5), torch.zeros(5))
    images, depth, lm = render_heads(ident, expr, labels, 64)
    neutral, jaw, smile, brow, blink = range(5)
    # jaw opening: the mouth boxes (from each frame's own landmarks) get darker: the whole
    # mouth (48-67) and, much more, the inner lips' box (60-67), now the dark interior
    assert _box_mean(images[jaw], lm[jaw, 48:68]) < 0.9 * _box_mean(
        images[neutral], lm[neutral, 48:68]
    )
    assert _box_mean(images[jaw], lm[jaw, 60:68]) < 0.75 * _box_mean(
        images[neutral], lm[neutral, 60:68]
    )
    assert (
        lm[jaw, 57, 1] - lm[neutral, 57, 1] > 2.0 and lm[jaw, 8, 1] > lm[neutral, 8, 1]
    )  # lower lip, chin down
    # smile: corners up and apart
    width = lambda p: p[54, 0] - p[48, 0]  # noqa: E731
    assert width(lm[smile]) > 1.15 * width(lm[neutral])
    corner_drop = lambda p: (p[[48, 54], 1] - p[51, 1]).mean()  # noqa: E731  corners below the upper lip's top
    assert corner_drop(lm[smile]) < corner_drop(lm[neutral]) - 0.5
    # brows up
    assert (lm[neutral, 17:27, 1] - lm[brow, 17:27, 1]).min() > 1.0
    # blink: the lids meet and the eye region changes
    opening = lambda p: (p[[40, 41, 46, 47], 1] - p[[37, 38, 43, 44], 1]).mean()  # noqa: E731
    assert opening(lm[blink]) < 0.2 * opening(lm[neutral])
    for eye in (lm[neutral, 36:42], lm[neutral, 42:48]):
        diff = np.abs(images[blink].astype(np.float64) - images[neutral])
        assert _box_mean(diff, eye) > 15
    # only the expression's region changes: the forehead above the brows is the same when the jaw
    # opens
    top = int(lm[neutral, 17:27, 1].min()) - 2
    np.testing.assert_array_equal(images[jaw, :top], images[neutral, :top])


def test_landmarks_lie_on_the_rendered_surface():
    ident = HeadIdentity.random(np.random.default_rng(3))
    yaw, pitch = torch.tensor([0.0, 0.4, -0.3]), torch.tensor([0.0, 0.1, -0.1])
    labels = default_label(yaw, pitch)
    expr = np.array([[0, 0, 0, 0], [0.8, 0.3, 0, 0], [0.2, 0, 0.7, 0.5]])
    images, depth, lm = render_heads(ident, expr, labels, 64, supersample=1)
    for f in range(3):
        # inner landmarks (brows, nose, eyes, mouth) fall on the head, inside the frame ...
        px = np.floor(lm[f, 17:]).astype(int)
        assert (px >= 0).all() and (px < 64).all()
        assert (depth[f][px[:, 1], px[:, 0]] > 0).all()
        # ... and the rendered depth there is the 3D landmark's distance from the camera
        points = head_landmarks3d(ident, expr[f])[17:]
        dist = np.linalg.norm(
            points - labels[f][[3, 7, 11]].double().numpy(), axis=1
        )  # camera origin
        err = np.abs(depth[f][px[:, 1], px[:, 0]] - dist)
        assert np.median(err) < 0.01 and err.max() < 0.06, (f, err.max())
    # the nose tip (in front of the eyes) shifts against the eyes as the camera turns
    rel = lm[:, 30, 0] - lm[:, [39, 42], 0].mean(1)
    assert rel[1] < rel[0] - 1.5 and rel[2] > rel[0] + 1.0


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="params must be 8"):
        HeadIdentity((0.0, 1.0))
    ident = HeadIdentity((0.0,) * 8)
    with pytest.raises(ValueError, match="expressions must be finite"):
        render_heads(ident, np.zeros((2, 3)), default_label(torch.zeros(2), torch.zeros(2)), 16)
    with pytest.raises(ValueError, match="same F"):
        render_heads(ident, np.zeros((2, 4)), default_label(torch.zeros(3), torch.zeros(3)), 16)
    with pytest.raises(ValueError, match="frames must be an int >= 2"):
        write_synthetic_video_dataset("unused", clips=1, frames=1)


def test_cli_synth_and_check(tmp_path, capsys):
    out = tmp_path / "synth"
    args = [
        "dataset",
        "synth",
        str(out),
        "--clips",
        "2",
        "--frames",
        "3",
        "--size",
        "16",
        "--seed",
        "1",
        "--supersample",
        "1",
        "--no-progress",
    ]
    sheet = tmp_path / "sheet.png"
    assert cli_main(args + ["--preview", str(sheet)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["clip0000", "clip0001", "synthetic.json"]
    preview = np.asarray(Image.open(sheet))
    assert (
        preview.shape == (2 * 16, 8 * 16, 3) and preview[:, : 3 * 16].std() > 10
    )  # 2 clips x 3 frames + padding
    assert (preview[:, 3 * 16 :] == 0).all()
    assert cli_main(["dataset", "check", str(out), "--no-progress", "--audio"]) == 0
    assert "0 problem(s)" in capsys.readouterr().out
    assert cli_main(args) == 2  # refuses to write over clips
    assert "already holds clips" in capsys.readouterr().err
    assert cli_main(args + ["--force"]) == 0
    assert cli_main(args[:3] + ["--clips", "2", "--heldout", "2", "--no-progress"]) == 2
