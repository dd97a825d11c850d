"""Deep3DFaceRecon coefficient files and expression sequences: round trips and clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io

from nofa.io.coeffs import (
    DEEP3D_SLICES,
    CoeffFileError,
    load_coeffs,
    load_deep3d,
    load_deep3d_folder,
    load_expression,
    save_deep3d,
    save_deep3d_folder,
    save_expression,
)


def _seq(t: int, width: int = 257, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((t, width)).astype(np.float32)


def test_layout_covers_257_in_order():
    spans = [(s.start, s.stop) for s in DEEP3D_SLICES.values()]
    assert spans == [(0, 80), (80, 144), (144, 224), (224, 227), (227, 254), (254, 257)]


@pytest.mark.parametrize("suffix", [".npy", ".npz"])
def test_sequence_round_trip(tmp_path, suffix):
    c = _seq(7)
    p = save_deep3d(tmp_path / f"c{suffix}", c)
    got = load_deep3d(p)
    assert len(got) == 7 and got.kind == "deep3d"
    np.testing.assert_array_equal(got.to_deep3d(), c)
    np.testing.assert_array_equal(got.exp, c[:, 80:144])
    np.testing.assert_array_equal(got.pose(), np.concatenate([c[:, 224:227], c[:, 254:257]], 1))


@pytest.mark.parametrize("split", [False, True])
def test_mat_round_trip_coeff_and_split_keys(tmp_path, split):
    c = _seq(1, seed=1)
    p = save_deep3d(tmp_path / "f.mat", c, split=split)
    keys = set(scipy.io.loadmat(p)) - {"__header__", "__version__", "__globals__"}
    assert keys == (set(DEEP3D_SLICES) if split else {"coeff"})
    np.testing.assert_array_equal(load_deep3d(p).to_deep3d(), c)


def test_folder_in_natural_order(tmp_path):
    c = _seq(12, seed=2)
    save_deep3d_folder(tmp_path, c, names=[f"frame_{i}" for i in range(12)])
    got = load_deep3d_folder(tmp_path)
    assert got.names == [f"frame_{i}" for i in range(12)]  # frame_2 before frame_10
    np.testing.assert_array_equal(got.to_deep3d(), c)
    np.testing.assert_array_equal(load_coeffs(tmp_path).exp, c[:, 80:144])


@pytest.mark.parametrize("width", [64, 70])
@pytest.mark.parametrize("suffix", [".npy", ".npz", ".mat"])
def test_expression_round_trip(tmp_path, width, suffix):
    e = _seq(9, width, seed=3)
    p = save_expression(tmp_path / f"e{suffix}", e)
    got = load_expression(p)
    assert got.kind == "expression" and got.fps == 25.0 and len(got) == 9
    np.testing.assert_array_equal(got.exp, e[:, :64])
    assert got.has_pose == (width == 70)
    if width == 70:
        np.testing.assert_array_equal(got.pose(), e[:, 64:])
    np.testing.assert_array_equal(load_coeffs(p).exp, e[:, :64])  # told apart by width


@pytest.mark.parametrize("width", [63, 100, 256])
def test_wrong_width_names_the_file(tmp_path, width):
    p = tmp_path / f"bad_{width}.npy"
    np.save(p, _seq(4, width))
    with pytest.raises(CoeffFileError, match=f"bad_{width}.npy.*{width}"):
        load_coeffs(p)


@pytest.mark.parametrize("kind", ["npy257", "npy64", "mat", "folder"])
def test_nan_names_the_file(tmp_path, kind):
    if kind == "folder":
        c = _seq(3)
        save_deep3d_folder(tmp_path / "d", c)
        bad = tmp_path / "d" / "000001.mat"
        c[1, 100] = np.nan
        scipy.io.savemat(bad, {"coeff": c[1:2]})
        path = tmp_path / "d"
    elif kind == "mat":
        c = _seq(1)
        c[0, 5] = np.inf
        path = bad = tmp_path / "one.mat"
        scipy.io.savemat(path, {"coeff": c})
    else:
        c = _seq(5, 257 if kind == "npy257" else 64)
        c[3, 2] = np.nan
        path = bad = tmp_path / f"{kind}.npy"
        np.save(path, c)
    with pytest.raises(CoeffFileError, match=f"{bad.name}.*NaN"):
        load_coeffs(path)


def test_wrong_keys_and_widths_in_mat(tmp_path):
    p = tmp_path / "keys.mat"
    scipy.io.savemat(p, {"id": np.zeros((1, 80)), "exp": np.zeros((1, 64))})
    with pytest.raises(
        CoeffFileError, match=r"keys.mat.*missing \['tex', 'angle', 'gamma', 'trans'\]"
    ):
        load_deep3d(p)
    p2 = tmp_path / "w.mat"
    parts = {k: np.zeros((1, s.stop - s.start)) for k, s in DEEP3D_SLICES.items()}
    parts["exp"] = np.zeros((1, 60))
    scipy.io.savemat(p2, parts)
    with pytest.raises(CoeffFileError, match=r"w.mat: 'exp' must have shape \[T, 64\]"):
        load_deep3d(p2)
    p3 = tmp_path / "two.mat"
    scipy.io.savemat(p3, {"a": np.zeros((2, 64)), "b": np.zeros((2, 64))})
    with pytest.raises(CoeffFileError, match=r"two.mat: no expression sequence found"):
        load_expression(p3)


def test_unreadable_and_unsupported(tmp_path):
    p = tmp_path / "junk.mat"
    p.write_bytes(b"not a mat file at all")
    with pytest.raises(CoeffFileError, match="junk.mat"):
        load_coeffs(p)
    with pytest.raises(CoeffFileError, match="no .mat coefficient files"):
        load_deep3d_folder(_empty(tmp_path))
    with pytest.raises(ValueError, match="has NaN"):
        save_expression(tmp_path / "x.npy", np.full((2, 64), np.nan))


def _empty(tmp_path):
    d = tmp_path / "empty"
    d.mkdir()
    return d
