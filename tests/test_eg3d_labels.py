"""Deep3DFaceRecon pose -> EG3D label (hand-worked numbers, round trips) and dataset.json."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from nofa.io.eg3d_labels import (
    LabelFileError,
    deep3d_rotation,
    deep3d_to_eg3d_label,
    deep3d_to_eg3d_labels,
    eg3d_label_to_deep3d,
    read_dataset_json,
    write_dataset_json,
)


def test_frontal_pose_by_hand():
    # angle 0, trans 0: trans[2] -= 10 -> (0, 0, -10); c = -I (0, 0, -10) * 0.27 = (0, 0, 2.7);
    # + (0, 0.006, 0.161) = (0, 0.006, 2.861); radius 2.7: times 2.7 / sqrt(0.006^2 + 2.861^2).
    lab = deep3d_to_eg3d_label([0, 0, 0], [0, 0, 0])
    k = 2.7 / math.hypot(0.006, 2.861)
    expect = np.array([[1, 0, 0, 0], [0, -1, 0, 0.006 * k], [0, 0, -1, 2.861 * k], [0, 0, 0, 1]])
    np.testing.assert_allclose(lab[:16].reshape(4, 4), expect, atol=1e-12)
    np.testing.assert_allclose(lab[16:], [2985.29 / 700, 0, 0.5, 0, 2985.29 / 700, 0.5, 0, 0, 1])
    unscaled = deep3d_to_eg3d_label([0, 0, 0], [0, 0, 0], radius=None)
    np.testing.assert_allclose(unscaled[[3, 7, 11]], [0, 0.006, 2.861], atol=1e-12)


def test_yaw_pose_by_hand():
    # angle (0, y, 0): compute_rotation returns Ry(y)^T. trans (0.5, 0, 0) -> (0.5, 0, -10).
    y = 0.3
    ry_t = np.array([[math.cos(y), 0, -math.sin(y)], [0, 1, 0], [math.sin(y), 0, math.cos(y)]])
    np.testing.assert_allclose(deep3d_rotation([0, y, 0]), ry_t, atol=1e-15)
    c = -ry_t @ np.array([0.5, 0, -10]) * 0.27 + [0, 0.006, 0.161]
    lab = deep3d_to_eg3d_label([0, y, 0], [0.5, 0, 0], radius=None)
    pose = lab[:16].reshape(4, 4)
    np.testing.assert_allclose(pose[:3, 3], c, atol=1e-12)
    np.testing.assert_allclose(pose[:3, :3], ry_t @ np.diag([1, -1, -1]), atol=1e-12)
    assert pose[0, 3] < 0  # Deep3DFaceRecon's +y head turn puts EG3D's camera at -x


def test_rotation_matches_deep3d_order():
    a = np.array([0.2, -0.4, 0.1])
    rx = np.array(
        [[1, 0, 0], [0, math.cos(a[0]), -math.sin(a[0])], [0, math.sin(a[0]), math.cos(a[0])]]
    )
    ry = np.array(
        [[math.cos(a[1]), 0, math.sin(a[1])], [0, 1, 0], [-math.sin(a[1]), 0, math.cos(a[1])]]
    )
    rz = np.array(
        [[math.cos(a[2]), -math.sin(a[2]), 0], [math.sin(a[2]), math.cos(a[2]), 0], [0, 0, 1]]
    )
    np.testing.assert_allclose(deep3d_rotation(a), (rz @ ry @ rx).T, atol=1e-15)


@pytest.mark.parametrize("seed", range(5))
def test_known_pose_round_trips(seed):
    rng = np.random.default_rng(seed)
    angle = rng.uniform(-0.6, 0.6, 3)
    trans = rng.uniform(-0.3, 0.3, 3)
    lab = deep3d_to_eg3d_label(angle, trans)
    assert abs(np.linalg.norm(lab[[3, 7, 11]]) - 2.7) < 1e-12
    a2, t2 = eg3d_label_to_deep3d(lab, trans_z=trans[2])
    np.testing.assert_allclose(a2, angle, atol=1e-10)
    np.testing.assert_allclose(t2, trans, atol=1e-10)
    np.testing.assert_allclose(deep3d_to_eg3d_label(a2, t2), lab, atol=1e-12)


def test_batch_of_poses_is_each_pose_converted():
    rng = np.random.default_rng(0)
    angle = rng.uniform(-0.6, 0.6, (4, 3)).astype(np.float32)
    trans = rng.uniform(-0.3, 0.3, (4, 3)).astype(np.float32)
    labs = deep3d_to_eg3d_labels(angle, trans)
    assert labs.shape == (4, 25) and labs.dtype == np.float32
    for lab, a, t in zip(labs, angle, trans):
        np.testing.assert_array_equal(lab, deep3d_to_eg3d_label(a, t).astype(np.float32))
    # flat rows of 3 are read as one pose each
    np.testing.assert_array_equal(deep3d_to_eg3d_labels(angle.ravel(), trans.ravel()), labs)


def test_batch_conventions():
    lab = deep3d_to_eg3d_labels(np.zeros((1, 3)), np.zeros((1, 3)))[0]
    pose = lab[:16].reshape(4, 4)
    np.testing.assert_allclose(pose[:3, :3], np.diag([1.0, -1.0, -1.0]), atol=1e-6)
    # c = (0, 0.006, 2.861) rescaled to radius 2.7
    np.testing.assert_allclose(
        pose[:3, 3], np.array([0, 0.006, 2.861]) * 2.7 / np.hypot(0.006, 2.861), atol=1e-5
    )
    np.testing.assert_allclose(lab[16:], [4.2647, 0, 0.5, 0, 4.2647, 0.5, 0, 0, 1], atol=1e-6)
    # a head turned by yaw y is seen like a camera orbiting by -y: still looking at the head
    pose = deep3d_to_eg3d_labels(np.array([[0.1, 0.4, 0.05]]), np.zeros((1, 3)))[0, :16]
    r, c = pose.reshape(4, 4)[:3, :3], pose.reshape(4, 4)[:3, 3]
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-5)
    assert np.dot(r[:, 2], -c / np.linalg.norm(c)) > 0.999


def test_bad_pose_inputs():
    with pytest.raises(ValueError, match="angle must be 3 finite numbers"):
        deep3d_to_eg3d_label([0, 0], [0, 0, 0])
    with pytest.raises(ValueError, match="trans must be 3 finite numbers"):
        deep3d_to_eg3d_label([0, 0, 0], [0, np.nan, 0])
    with pytest.raises(LabelFileError, match="25 numbers"):
        eg3d_label_to_deep3d(np.zeros(16))


def test_dataset_json_round_trip(tmp_path):
    labels = {
        "00000/img00000000.png": deep3d_to_eg3d_label([0, 0.2, 0], [0, 0, 0]),
        "b.png": deep3d_to_eg3d_label([0.1, -0.3, 0.05], [0.1, 0.1, 0.2]),
    }
    path = write_dataset_json(tmp_path / "dataset.json", labels)
    data = json.loads(path.read_text())
    assert list(data) == ["labels"] and data["labels"][0][0] == "00000/img00000000.png"
    assert len(data["labels"][1][1]) == 25
    back = read_dataset_json(path)
    assert list(back) == list(labels)
    for k in labels:
        np.testing.assert_array_equal(back[k], labels[k])
    write_dataset_json(tmp_path / "pairs.json", list(labels.items()))
    assert list(read_dataset_json(tmp_path / "pairs.json")) == list(labels)
    assert not list(tmp_path.glob(".*tmp"))  # atomic write leaves no temporary file


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"label": []}', "expected an object with a 'labels' key"),
        ('{"labels": {"a": 1}}', "'labels' must be a list"),
        (
            '{"labels": [["a.png", [1, 2, 3]]]}',
            r"labels\[0\] \(a.png\): an EG3D label has 25 numbers",
        ),
        ('{"labels": [["a.png", [NaN' + ", 0" * 24 + "]]]}", "NaN or infinite"),
        ('{"labels": [["a.png"]]}', r"labels\[0\] must be \[name, \[25 numbers\]\]"),
        (
            '{"labels": [["a.png", ['
            + ", ".join(["0"] * 25)
            + ']], ["a.png", ['
            + ", ".join(["0"] * 25)
            + "]]]}",
            "duplicate file name",
        ),
        ('{"labels": [["a.png", ["x"' + ", 0" * 24 + "]]]}", "not numbers"),
        ("not json", "not valid JSON"),
    ],
)
def test_bad_dataset_json(tmp_path, content, message):
    path = tmp_path / "broken.json"
    path.write_text(content)
    with pytest.raises(LabelFileError, match=message) as info:
        read_dataset_json(path)
    assert "broken.json" in str(info.value)


def test_write_rejects_bad_labels(tmp_path):
    with pytest.raises(ValueError, match=r"labels\[0\] \(a.png\): an EG3D label has 25 numbers"):
        write_dataset_json(tmp_path / "d.json", {"a.png": np.zeros(24)})
    with pytest.raises(ValueError, match="NaN"):
        write_dataset_json(tmp_path / "d.json", {"a.png": np.full(25, np.nan)})
    with pytest.raises(FileNotFoundError, match="dataset.json not found"):
        read_dataset_json(tmp_path / "missing" / "dataset.json")
    assert not (tmp_path / "d.json").exists()
