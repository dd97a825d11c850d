"""`nofa prepare`: a folder of photos (RGB, grey, RGBA, one without a face) -> crops, labels,
previews."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nofa.cli import main
from nofa.io.eg3d_labels import read_dataset_json

pytest.importorskip("dlib", reason="dlib-bin is not installed (pinned in requirements.txt)")


def test_prepare_folder(tmp_path, capsys):
    from PIL import Image
    from skimage import data

    src = tmp_path / "photos"
    src.mkdir()
    img = Image.fromarray(data.astronaut()[:300, 60:360])
    img.save(src / "rgb.jpg", quality=95)
    img.convert("L").save(src / "grey.png")
    rgba = img.convert("RGBA")
    rgba.putalpha(200)
    rgba.save(src / "rgba.png")
    Image.fromarray(np.full((120, 160, 3), 90, np.uint8)).save(src / "wall.png")
    (src / "notes.txt").write_text("not an image")
    out = tmp_path / "out"
    rc = main(["prepare", str(src), "--out", str(out), "--size", "128", "--no-progress"])
    text = capsys.readouterr().out
    assert rc == 1  # one photo failed ...
    assert "wall.png: no face found" in text and "prepared 3 of 4 photos" in text
    labels = read_dataset_json(out / "dataset.json")  # ... the others were processed
    assert sorted(labels) == ["grey.png", "rgb.png", "rgba.png"]
    for name, lab in labels.items():
        crop = np.asarray(Image.open(out / name))
        assert crop.shape == (128, 128, 3)
        assert abs(np.linalg.norm(lab[[3, 7, 11]]) - 2.7) < 1e-6 and lab[16] == pytest.approx(
            4.2647
        )
        sheet = np.asarray(Image.open(out / "previews" / name))
        assert sheet.shape == (384, 3 * 384, 3)
    grey = np.asarray(Image.open(out / "grey.png")).astype(int)
    assert np.abs(grey[..., 0] - grey[..., 2]).max() <= 1
    info = json.loads((out / "landmarks.json").read_text())["faces"]
    assert (
        info["rgb.png"]["photo"].endswith("rgb.jpg")
        and len(info["rgb.png"]["landmarks_crop"]) == 68
    )
    # The same face in each: landmarks in the crops agree.
    a, b = (np.array(info[k]["landmarks_crop"]) for k in ("rgb.png", "grey.png"))
    assert np.hypot(*(a - b).T).mean() < 1.5
    m = np.array(info["rgb.png"]["crop_to_photo"])
    photo = np.array(info["rgb.png"]["landmarks_photo"])
    back = np.array(info["rgb.png"]["landmarks_crop"]) @ m[:2, :2].T + m[:2, 2]
    assert np.hypot(*(back - photo).T).mean() < 3  # crop_to_photo maps crop points into the photo


def test_prepare_missing_file(tmp_path, capsys):
    rc = main(
        ["prepare", str(tmp_path / "none.png"), "--out", str(tmp_path / "o"), "--no-progress"]
    )
    assert rc == 1 and "photo not found" in capsys.readouterr().out
    assert not (tmp_path / "o" / "dataset.json").exists()


def test_demo_image_without_a_face(tmp_path, capsys):
    from PIL import Image

    Image.fromarray(np.full((100, 100, 3), 90, np.uint8)).save(tmp_path / "wall.png")
    rc = main(
        [
            "demo",
            "--quick",
            "--no-progress",
            "--image",
            str(tmp_path / "wall.png"),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert rc == 2 and "wall.png: no face found" in capsys.readouterr().err


def test_prepare_reports_photos_too_small_or_empty(tmp_path, capsys):
    """Each degenerate photo is reported on one line naming it and skipped (a 1 px wide one
    used to end the whole run in a dlib stride traceback); exit status 1."""
    from PIL import Image

    rng = np.random.default_rng(0)
    sizes = {"1x1": (1, 1), "1xN": (1, 300), "Nx1": (300, 1), "2x2": (2, 2), "wide": (4000, 3)}
    for name, (w, h) in sizes.items():
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(
            tmp_path / f"{name}.png"
        )
    (tmp_path / "empty.png").write_bytes(b"")
    rc = main(["prepare", str(tmp_path), "--out", str(tmp_path / "o"), "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 1 and f"prepared 0 of {len(sizes) + 1} photos" in out, out
    for name, (w, h) in sizes.items():
        assert f"error: {tmp_path / name}.png: the photo is {w}x{h} px" in out, out
    assert f"error: {tmp_path / 'empty.png'}: not an image file" in out, out
    assert not (tmp_path / "o" / "dataset.json").exists()
