"""Face-video datasets (nofa.train.video_data, `nofa dataset check`): the real on-disk formats
read back with their values, deterministic pair sampling, held-out clips, every planted
problem reported, bad items skipped and redrawn, landmarks computed with dlib and cached."""

from __future__ import annotations

import functools
import logging
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from nofa.cli import main as cli_main
from nofa.io.coeffs import DEEP3D_SLICES, save_deep3d, save_expression
from nofa.io.eg3d_labels import deep3d_to_eg3d_label, eg3d_label_to_deep3d, write_dataset_json
from nofa.io.images import load_image
from nofa.render import default_label
from nofa.train.procedural_heads import HeadIdentity, expression_trajectory, render_heads
from nofa.train.video_data import DatasetProblem, VideoBatch, VideoDataset, VideoSource

SIZE = 32  # stored frame side


@functools.cache
def _clip_content(seed: int, T: int):
    """Rendered frames [T, S, S, 3] uint8, coefficients [T, 257], labels [T, 25], landmarks [T, 68,
    2]."""
    rng = np.random.default_rng(seed)
    ident = HeadIdentity.random(rng)
    expr = expression_trajectory(rng, T)
    yaw = torch.tensor(rng.uniform(-0.3, 0.3, T), dtype=torch.float32)
    labels = default_label(yaw, torch.zeros(T)).double().numpy()
    images, _, marks = render_heads(ident, expr, labels, SIZE, supersample=1)
    coeff = rng.normal(0, 0.3, (T, 257)).astype(
        np.float32
    )  # every slot non-zero: catches slicing errors
    for i in range(T):
        angle, trans = eg3d_label_to_deep3d(labels[i], trans_z=0.1)
        coeff[i, DEEP3D_SLICES["angle"]], coeff[i, DEEP3D_SLICES["trans"]] = angle, trans
    return images, coeff, labels, marks


def write_clip(
    root: Path,
    name: str,
    seed: int,
    T: int = 5,
    coeffs: str = "npy",
    labels: str = "json",
    landmarks: bool = True,
    audio: bool = False,
) -> dict:
    """One clip in the real layout; returns what was written."""
    images, coeff, lab, marks = _clip_content(seed, T)  # cached across tests: never modified below
    d = root / name
    (d / "frames").mkdir(parents=True)
    names = [f"frame_{i}.png" for i in range(T)]  # natural order: frame_2 before frame_10
    for i, n in enumerate(names):
        Image.fromarray(images[i]).save(d / "frames" / n)
    if coeffs == "npy":
        save_deep3d(d / "coeffs.npy", coeff)
    else:  # Deep3DFaceRecon's save_coeff: one .mat per frame with the split keys
        (d / "coeffs").mkdir()
        for i, n in enumerate(names):
            scipy.io.savemat(
                d / "coeffs" / f"{Path(n).stem}.mat",
                {k: coeff[i : i + 1, sl] for k, sl in DEEP3D_SLICES.items()},
            )
    if labels == "json":
        write_dataset_json(
            d / "dataset.json",
            [(f"frames/{n}" if i % 2 else n, lab[i]) for i, n in enumerate(names)],
        )
    if landmarks:
        np.save(d / "landmarks.npy", marks)
    aud = None
    if audio:
        aud = np.random.default_rng(seed + 100).normal(size=(T, 64)).astype(np.float32)
        save_expression(d / "audio_exp.npy", aud)
    return {
        "images": images,
        "coeff": coeff,
        "labels": lab,
        "landmarks": marks,
        "audio": aud,
        "names": names,
    }


@pytest.fixture()
def dataset_root(tmp_path):
    root = tmp_path / "videos"
    written = {
        "a": write_clip(root, "a", 1, T=5, coeffs="npy", labels="json", audio=True),
        "b": write_clip(root, "b", 2, T=4, coeffs="mat", labels="derived", audio=True),
        "c": write_clip(root, "c", 3, T=6, audio=True),
        "d": write_clip(root, "d", 4, T=3, audio=True),
    }
    return root, written


def test_real_formats_read_back(dataset_root):
    root, w = dataset_root
    ds = VideoDataset(root, SIZE, split="all", audio=True)
    assert ds.clips == ["a", "b", "c", "d"] and ds.num_frames("a") == 5 and ds.num_frames("b") == 4
    for clip in ("a", "b"):
        for i in range(ds.num_frames(clip)):
            fr = ds.load_frame(clip, i)
            path = root / clip / "frames" / w[clip]["names"][i]
            torch.testing.assert_close(fr["image"], load_image(path))
            np.testing.assert_allclose(fr["alpha"].numpy(), w[clip]["coeff"][i, 0:80])
            np.testing.assert_allclose(fr["beta"].numpy(), w[clip]["coeff"][i, 80:144])
            np.testing.assert_allclose(fr["landmarks"].numpy(), w[clip]["landmarks"][i], atol=1e-5)
            np.testing.assert_allclose(fr["beta_audio"].numpy(), w[clip]["audio"][i])
            if clip == "a":  # dataset.json, keyed by the frame name or by frames/<name>
                np.testing.assert_allclose(fr["camera"].numpy(), w[clip]["labels"][i], atol=1e-6)
            else:  # no dataset.json: the documented conversion of the .mat files' angle/trans
                c = w[clip]["coeff"][i]
                want = deep3d_to_eg3d_label(c[224:227], c[254:257])
                np.testing.assert_allclose(fr["camera"].numpy(), want, atol=1e-6)
                # and it is the camera the frame was rendered with
                np.testing.assert_allclose(fr["camera"].numpy(), w[clip]["labels"][i], atol=1e-4)


def test_resize_scales_images_and_landmarks(dataset_root):
    root, w = dataset_root
    ds = VideoDataset(root, 16, split="all")
    fr = ds.load_frame("a", 2)
    assert fr["image"].shape == (3, 16, 16) and fr["beta_audio"] is None
    np.testing.assert_allclose(fr["landmarks"].numpy(), w["a"]["landmarks"][2] / 2, atol=1e-5)
    full = load_image(root / "a" / "frames" / "frame_2.png")
    assert (fr["image"] - torch.nn.functional.avg_pool2d(full[None], 2)[0]).abs().mean() < 0.05


def test_sampling_is_deterministic_and_respects_heldout(dataset_root):
    root, _ = dataset_root
    train = VideoDataset(root, SIZE, heldout_clips=1)
    assert train.clips == ["a", "b", "c"] and train.heldout == {"d"}
    a, b = VideoSource(train, seed=3), VideoSource(train, seed=3)
    x, y = a.batch(range(10, 22)), b.batch([*range(16, 22), *range(10, 16)])
    assert isinstance(x, VideoBatch) and len(x) == 12 and x.beta_audio_t is None
    # sample i is the same whatever batch it is in
    order = [6, 7, 8, 9, 10, 11, 0, 1, 2, 3, 4, 5]
    assert torch.equal(x.frame_s, y.frame_s[order]) and torch.equal(x.image_t, y.image_t[order])
    assert x.clips == [y.clips[k] for k in order] and torch.equal(x.index, torch.arange(10, 22))
    assert torch.equal(x.slice(2, 5).frame_t, x.frame_t[2:5]) and x.to("cpu").clips == x.clips
    other = VideoSource(train, seed=4).batch(range(10, 22))
    assert not (torch.equal(other.frame_s, x.frame_s) and other.clips == x.clips)
    stream = VideoSource(train, seed=3).batch(range(10, 22), stream=1)
    assert not (torch.equal(stream.frame_s, x.frame_s) and stream.clips == x.clips)
    many = VideoSource(train, seed=0).batch(range(200))
    assert (many.frame_s != many.frame_t).all()
    assert "d" not in many.clips and set(many.clips) == {"a", "b", "c"}
    assert a.skipped == []
    # heldout.txt overrides the count
    (root / "heldout.txt").write_text("b\n")
    assert VideoDataset(root, SIZE, heldout_clips=1).clips == ["a", "c", "d"]
    assert VideoDataset(root, SIZE, split="heldout").clips == ["b"]


def test_clip_metadata_cache_is_bounded(dataset_root, monkeypatch):
    import nofa.train.video_data as vd

    root, w = dataset_root
    monkeypatch.setattr(vd, "META_CACHE_CLIPS", 2)
    ds = VideoDataset(root, SIZE, split="all")
    first = ds.load_frame("a", 1)
    for clip in ("b", "c", "d"):
        ds.load_frame(clip, 0)
    assert list(ds._meta) == ["c", "d"]  # the least recently used clips were dropped
    again = ds.load_frame("a", 1)  # read again from disk, same values
    assert all(
        torch.equal(first[k], again[k]) for k in ("image", "camera", "alpha", "beta", "landmarks")
    )
    assert list(ds._meta) == ["d", "a"]


def test_reenactment_batches(dataset_root):
    root, w = dataset_root
    held = VideoDataset(root, SIZE, split="heldout", heldout_clips=2, audio=True)
    assert held.clips == ["c", "d"]
    src = VideoSource(held)
    batches = src.reenactment(3)
    assert [b.clips[0] for b in batches] == ["c", "d"]
    c, d = batches
    assert c.frame_s.tolist() == [0, 0, 0] and c.frame_t.tolist() == [1, 3, 5]
    assert d.frame_t.tolist() == [1, 2]  # a 3-frame clip has only two later frames
    torch.testing.assert_close(c.beta_audio_t[1], torch.from_numpy(w["c"]["audio"][3]))
    again = VideoSource(held).reenactment(3)
    assert all(torch.equal(p.image_t, q.image_t) for p, q in zip(batches, again))


def test_audio_variant_needs_audio_files(dataset_root):
    root, _ = dataset_root
    (root / "c" / "audio_exp.npy").unlink()
    ds = VideoDataset(root, SIZE, split="all", audio=True)
    with pytest.raises(DatasetProblem, match="audio_exp"):
        ds.load_frame("c", 0)
    b = VideoSource(ds).batch(range(30))
    assert "c" not in b.clips and b.beta_audio_t.shape == (30, 64)


def _corrupt(root: Path) -> dict[str, str]:
    """Plant one problem per clip; returns clip -> a phrase its problem report must contain."""
    d = root
    (d / "a" / "frames" / "frame_4.png").unlink()  # 5 coefficient rows, 4 frames
    np.save(d / "c" / "coeffs.npy", np.zeros((6, 256), np.float32))  # wrong width
    (d / "d" / "frames" / "frame_1.png").write_bytes(b"not a png at all")  # unreadable image
    write_clip(root, "e", 5, T=4)
    write_dataset_json(
        d / "e" / "dataset.json",
        [(f"frame_{i}.png", default_label().double().numpy()) for i in range(3)],
    )  # 3 labels, 4 frames
    write_clip(root, "f", 6, T=4)
    bad = np.load(d / "f" / "coeffs.npy")
    bad[2, 100] = np.nan
    np.save(d / "f" / "coeffs.npy", bad)  # NaN
    write_clip(root, "g", 7, T=4, coeffs="mat")
    (d / "g" / "coeffs" / "frame_3.mat").unlink()  # 3 .mat files, 4 frames
    write_clip(root, "h", 8, T=4)
    np.save(d / "h" / "landmarks.npy", np.zeros((4, 5, 2), np.float32))  # landmark shape
    return {
        "a": "5 coefficient rows for 4 frames",
        "c": "[T, 257]",
        "d": "unreadable image",
        "e": "3 labels for 4 frames",
        "f": "NaN",
        "g": "3 per-frame .mat files for 4 frames",
        "h": "got [4, 5, 2]",
    }


def test_check_reports_every_planted_problem(dataset_root, capsys):
    root, _ = dataset_root
    ds = VideoDataset(root, SIZE, split="all", audio=True)
    assert ds.check() == []
    assert cli_main(["dataset", "check", str(root), "--no-progress"]) == 0
    planted = _corrupt(root)
    problems = VideoDataset(root, SIZE, split="all").check()
    for clip, phrase in planted.items():
        assert any(p.clip == clip and phrase in str(p) for p in problems), (
            clip,
            phrase,
            [str(p) for p in problems],
        )
    assert {p.clip for p in problems} == set(planted)  # and nothing in the untouched clip b
    bad_image = [p for p in problems if p.clip == "d"][0]
    assert bad_image.frame == 1 and bad_image.file.endswith("frame_1.png")
    capsys.readouterr()
    assert cli_main(["dataset", "check", str(root), "--no-progress"]) == 1
    out = capsys.readouterr().out
    for phrase in planted.values():
        assert phrase in out
    assert "8 clips" in out and f"{len(problems)} problem(s)" in out
    assert cli_main(["dataset", "check", str(root / "missing"), "--no-progress"]) == 2
    # a clean dataset whose heldout.txt names a clip that does not exist
    clean = root.parent / "clean"
    write_clip(clean, "x", 1, T=5)
    write_clip(clean, "y", 2, T=4)
    (clean / "heldout.txt").write_text("y\nzzz\n")
    capsys.readouterr()
    assert cli_main(["dataset", "check", str(clean), "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "'zzz'" in out and "1 train, 1 held out" in out


def test_bad_item_is_logged_skipped_and_redrawn(dataset_root, caplog):
    root, _ = dataset_root
    (root / "b" / "frames" / "frame_1.png").write_bytes(b"\x89PNG broken")
    ds = VideoDataset(root, SIZE, split="all")
    src = VideoSource(ds, seed=0)
    hits = [
        i for i in range(200) if (lambda c, s, t: c == "b" and 1 in (s, t))(*src.sample_params(i))
    ]
    assert hits, "no sample drew the corrupt frame"
    i = hits[0]
    with caplog.at_level(logging.WARNING, logger="nofa.train.video_data"):
        b = src.batch([i, i + 1000])
    assert len(b) == 2 and b.index.tolist() == [i, i + 1000] and torch.isfinite(b.image_s).all()
    assert not (b.clips[0] == "b" and 1 in (b.frame_s[0].item(), b.frame_t[0].item()))
    assert (
        len(src.skipped) >= 1
        and "frame_1.png" in src.skipped[0]
        and f"sample {i}" in src.skipped[0]
    )
    assert any("frame_1.png" in r.getMessage() for r in caplog.records)
    # the redraw is a function of (seed, stream, index): a fresh source makes the same choice
    again = VideoSource(VideoDataset(root, SIZE, split="all"), seed=0).batch([i])
    assert (
        again.clips[0] == b.clips[0]
        and again.frame_s[0] == b.frame_s[0]
        and again.frame_t[0] == b.frame_t[0]
    )
    torch.testing.assert_close(again.image_t[0], b.image_t[0])


def test_landmarks_required_and_bad_arguments(dataset_root):
    root, _ = dataset_root
    (root / "a" / "landmarks.npy").unlink()
    with pytest.raises(DatasetProblem, match="landmarks"):
        VideoDataset(root, SIZE, split="all", landmarks="require").load_frame("a", 0)
    with pytest.raises(ValueError, match="split"):
        VideoDataset(root, SIZE, split="val")
    with pytest.raises(ValueError, match="image_size"):
        VideoDataset(root, 0)
    with pytest.raises(ValueError, match="split 'train' has no clips .*heldout_clips=4"):
        VideoDataset(root, SIZE, heldout_clips=4)
    assert VideoDataset(root, SIZE, split="heldout", heldout_clips=9).clips == ["a", "b", "c", "d"]
    assert VideoDataset(root, SIZE, split="all", heldout_clips=9).clips == ["a", "b", "c", "d"]
    with pytest.raises(FileNotFoundError, match="video dataset root"):
        VideoDataset(root / "nope", SIZE)
    (root / "heldout.txt").write_text("zzz\n")
    with pytest.raises(ValueError, match="zzz"):
        VideoDataset(root, SIZE)


def test_landmarks_computed_with_dlib_and_cached(tmp_path):
    pytest.importorskip("dlib", reason="dlib-bin is not installed (pinned in requirements.txt)")
    skimage_data = pytest.importorskip("skimage.data")
    from nofa.faces import prepare_face

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        face = prepare_face(skimage_data.astronaut(), size=256)
    crop = face.aligned.image
    d = tmp_path / "ds" / "astro"
    (d / "frames").mkdir(parents=True)
    Image.fromarray(crop).save(d / "frames" / "0.png")
    Image.fromarray(np.ascontiguousarray(crop[:, ::-1])).save(d / "frames" / "1.png")  # mirrored
    (d / "frames" / "2.png").write_bytes(b"truncated")  # costs this frame only, not the clip
    save_deep3d(d / "coeffs.npy", np.zeros((3, 257), np.float32))
    ds = VideoDataset(tmp_path / "ds", 128, heldout_clips=0)
    fr = ds.load_frame("astro", 0)
    cached = d / "landmarks.npy"
    assert cached.is_file() and not list(d.glob(".landmarks*"))  # written atomically, no temp left
    lm = np.load(cached)
    assert lm.shape == (3, 68, 2) and np.isnan(lm[2]).all() and np.isfinite(lm[:2]).all()
    with pytest.raises(DatasetProblem, match="frame 2"):
        ds.load_frame("astro", 2)
    np.testing.assert_allclose(lm[0], face.aligned.landmarks, atol=6.0)
    # the mirrored frame's landmarks are the mirror image (x -> 256 - x)
    mirrored = 256 - lm[1][:, 0]
    assert np.abs(np.sort(mirrored) - np.sort(lm[0][:, 0])).mean() < 6.0
    np.testing.assert_allclose(fr["landmarks"].numpy(), lm[0] / 2, atol=1e-4)
    # cached: a new dataset object reads the file instead of running dlib
    np.save(cached, lm + 1.0)
    again = VideoDataset(tmp_path / "ds", 256, heldout_clips=0).load_frame("astro", 0)
    np.testing.assert_allclose(again["landmarks"].numpy(), lm[0] + 1.0, atol=1e-4)
