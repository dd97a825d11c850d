"""3DMM coefficient files of the field: Deep3DFaceRecon coefficients and the expression
sequences of audio-to-expression tools (docs/animate.md, "Driving formats").

Deep3DFaceRecon (BFM, 257 numbers per frame):

    id 0:80 | exp 80:144 | tex 144:224 | angle 224:227 | gamma 227:254 | trans 254:257

- ``.mat`` per frame (scipy.io): key ``coeff`` [1, 257], or the split keys ``id`` [1, 80],
  ``exp`` [1, 64], ``tex`` [1, 80], ``angle`` [1, 3], ``gamma`` [1, 27], ``trans`` [1, 3]
  (what Deep3DFaceRecon's ``save_coeff`` writes);
- ``.npy`` [T, 257] or ``.npz`` (key ``coeff``, or the only array) sequences;
- a folder of per-frame ``.mat`` files, in natural name order (frame_2 before frame_10).

Expression sequences (audio-to-expression output, 25 fps by convention): [T, 64] (exp) or
[T, 70] (64 exp + 3 angle + 3 trans) as ``.npy`` / ``.npz`` / ``.mat`` (key ``exp``,
``coeff`` or the file's only array).

Every reader returns float32 numpy arrays and raises :class:`CoeffFileError` naming the
file on a missing key, a wrong width or a non-finite value.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

import numpy as np

from .atomic import atomic_write

__all__ = [
    "DEEP3D_WIDTH",
    "DEEP3D_SLICES",
    "EXPRESSION_FPS",
    "CoeffFileError",
    "Coeffs",
    "load_coeffs",
    "load_deep3d",
    "load_deep3d_folder",
    "load_expression",
    "natural_key",
    "save_deep3d",
    "save_deep3d_folder",
    "save_expression",
    "split_deep3d",
]

DEEP3D_WIDTH = 257
DEEP3D_SLICES: dict[str, slice] = {
    "id": slice(0, 80),
    "exp": slice(80, 144),
    "tex": slice(144, 224),
    "angle": slice(224, 227),
    "gamma": slice(227, 254),
    "trans": slice(254, 257),
}
EXPRESSION_FPS = 25.0
_EXPR_WIDTHS = (64, 70)


class CoeffFileError(ValueError):
    """A coefficient file that cannot be used (missing key, wrong width, NaN/inf, unreadable)."""


@dataclasses.dataclass
class Coeffs:
    """A coefficient sequence of T frames (float32 numpy arrays, None where the file has none).

    exp [T, 64]; angle [T, 3] (radians, Deep3DFaceRecon's x, y, z rotation); trans [T, 3];
    id [T, 80]; tex [T, 80]; gamma [T, 27]. `kind` is "deep3d" or "expression";
    `fps` is the file's frame rate when the format implies one (25 for expression
    sequences), else None; `names` are per-frame names (file stems) when known.
    """

    exp: np.ndarray
    angle: np.ndarray | None = None
    trans: np.ndarray | None = None
    id: np.ndarray | None = None
    tex: np.ndarray | None = None
    gamma: np.ndarray | None = None
    kind: str = "deep3d"
    source: str = ""
    fps: float | None = None
    names: list[str] | None = None

    def __len__(self) -> int:
        return int(self.exp.shape[0])

    @property
    def has_pose(self) -> bool:
        return self.angle is not None and self.trans is not None

    def pose(self) -> np.ndarray:
        """[T, 6]: angle (3) then trans (3)."""
        if not self.has_pose:
            raise ValueError(
                f"{self.source or 'these coefficients'} have no pose (angle/trans): "
                "a [T, 64] expression sequence carries expressions only"
            )
        return np.concatenate([self.angle, self.trans], 1)

    def to_deep3d(self) -> np.ndarray:
        """[T, 257] with missing parts zero."""
        out = np.zeros((len(self), DEEP3D_WIDTH), np.float32)
        for key, sl in DEEP3D_SLICES.items():
            v = getattr(self, key)
            if v is not None:
                out[:, sl] = v
        return out


def natural_key(name: str) -> list:
    """Sort key putting frame_2 before frame_10."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def _finite(path: Path, what: str, arr: np.ndarray) -> np.ndarray:
    arr = np.asarray(arr)
    if not np.issubdtype(arr.dtype, np.number):
        raise CoeffFileError(f"{path}: {what} must be numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float32)
    bad = ~np.isfinite(arr)
    if bad.any():
        rows = sorted(set(np.nonzero(bad)[0].tolist()))
        raise CoeffFileError(
            f"{path}: {what} has NaN or infinite values (in {len(rows)} row(s), first row "
            f"{rows[0]})"
        )
    return arr


def _as_rows(path: Path, what: str, arr: np.ndarray, widths: tuple[int, ...]) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] not in widths:
        want = " or ".join(f"[T, {w}]" for w in widths)
        raise CoeffFileError(f"{path}: {what} must have shape {want}, got {list(arr.shape)}")
    if arr.shape[0] == 0:
        raise CoeffFileError(f"{path}: {what} has no frames (shape {list(arr.shape)})")
    return _finite(path, what, arr)


def _read_mat(path: Path) -> dict[str, np.ndarray]:
    import scipy.io

    try:
        data = scipy.io.loadmat(path)
    except Exception as e:  # scipy raises several types for non-.mat content
        raise CoeffFileError(
            f"{path}: not a readable MATLAB .mat file ({type(e).__name__}: {e})"
        ) from e
    return {k: v for k, v in data.items() if not k.startswith("__")}


def _read_array_file(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Arrays of a .npy / .npz / .mat file by key (a .npy is {"": array})."""
    suffix = path.suffix.lower()
    if not path.is_file():
        raise FileNotFoundError(f"coefficient file not found: {path}")
    if suffix == ".mat":
        return _read_mat(path)
    try:
        if suffix == ".npy":
            return {"": np.load(path, allow_pickle=False)}
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
    except Exception as e:
        raise CoeffFileError(f"{path}: not a readable numpy file ({type(e).__name__}: {e})") from e
    raise CoeffFileError(
        f"{path}: unsupported coefficient file type {suffix!r} (use .mat, .npy or .npz)"
    )


def _pick(path: Path, data: dict[str, np.ndarray], keys: tuple[str, ...], what: str) -> np.ndarray:
    for k in keys:
        if k in data:
            return data[k]
    if len(data) == 1:
        return next(iter(data.values()))
    raise CoeffFileError(
        f"{path}: no {what} found: expected key {' or '.join(map(repr, keys))}, "
        f"the file has {sorted(data)}"
    )


def split_deep3d(coeff: np.ndarray, source: str = "", names: list[str] | None = None) -> Coeffs:
    """[T, 257] -> :class:`Coeffs` (views into one float32 array)."""
    coeff = np.asarray(coeff, np.float32)
    parts = {k: coeff[:, sl] for k, sl in DEEP3D_SLICES.items()}
    return Coeffs(kind="deep3d", source=source, names=names, **parts)


def _deep3d_from_mat(path: Path, data: dict[str, np.ndarray]) -> np.ndarray:
    if "coeff" in data:
        return _as_rows(path, "'coeff'", data["coeff"], (DEEP3D_WIDTH,))
    missing = [k for k in DEEP3D_SLICES if k not in data]
    if missing:
        raise CoeffFileError(
            f"{path}: not a Deep3DFaceRecon coefficient file: expected key 'coeff' [1, 257] or the "
            f"split keys {list(DEEP3D_SLICES)}; missing {missing}, the file has {sorted(data)}"
        )
    rows = []
    for k, sl in DEEP3D_SLICES.items():
        rows.append(_as_rows(path, repr(k), data[k], (sl.stop - sl.start,)))
    if len({r.shape[0] for r in rows}) != 1:
        raise CoeffFileError(
            f"{path}: the split keys have different numbers of rows: "
            f"{ {k: r.shape[0] for k, r in zip(DEEP3D_SLICES, rows)} }"
        )
    return np.concatenate(rows, 1)


def load_deep3d(path: str | os.PathLike) -> Coeffs:
    """A Deep3DFaceRecon file: .mat (one frame, `coeff` or split keys) or .npy/.npz [T, 257]."""
    path = Path(path)
    if path.is_dir():
        return load_deep3d_folder(path)
    data = _read_array_file(path, ("coeff",))
    if path.suffix.lower() == ".mat":
        coeff = _deep3d_from_mat(path, data)
    else:
        coeff = _as_rows(
            path,
            "Deep3DFaceRecon coefficients",
            _pick(path, data, ("coeff",), "coefficients"),
            (DEEP3D_WIDTH,),
        )
    return split_deep3d(coeff, str(path), [path.stem] if coeff.shape[0] == 1 else None)


def load_deep3d_folder(folder: str | os.PathLike) -> Coeffs:
    """All per-frame .mat files of `folder`, in natural name order -> one sequence."""
    folder = Path(folder)
    files = sorted(
        (p for p in folder.iterdir() if p.suffix.lower() == ".mat"),
        key=lambda p: natural_key(p.name),
    )
    if not files:
        raise CoeffFileError(f"{folder}: no .mat coefficient files in this folder")
    rows, names = [], []
    for f in files:
        c = _deep3d_from_mat(f, _read_mat(f))
        if c.shape[0] != 1:
            raise CoeffFileError(f"{f}: a per-frame .mat must hold one row, got {c.shape[0]}")
        rows.append(c)
        names.append(f.stem)
    return split_deep3d(np.concatenate(rows, 0), str(folder), names)


def load_expression(path: str | os.PathLike) -> Coeffs:
    """An expression sequence [T, 64] or [T, 70] (.npy / .npz / .mat) at 25 fps."""
    path = Path(path)
    data = _read_array_file(path, ("exp", "coeff"))
    arr = _as_rows(
        path,
        "expression sequence",
        _pick(path, data, ("exp", "coeff"), "expression sequence"),
        _EXPR_WIDTHS,
    )
    if arr.shape[1] == 64:
        return Coeffs(exp=arr, kind="expression", source=str(path), fps=EXPRESSION_FPS)
    return Coeffs(
        exp=arr[:, :64],
        angle=arr[:, 64:67],
        trans=arr[:, 67:70],
        kind="expression",
        source=str(path),
        fps=EXPRESSION_FPS,
    )


def load_coeffs(path: str | os.PathLike) -> Coeffs:
    """Any supported coefficient file or folder, told apart by its width:
    257 -> Deep3DFaceRecon, 64 / 70 -> expression sequence. A folder -> its .mat files."""
    path = Path(path)
    if path.is_dir():
        return load_deep3d_folder(path)
    data = _read_array_file(path, ("coeff", "exp"))
    if path.suffix.lower() == ".mat" and ("coeff" in data or all(k in data for k in DEEP3D_SLICES)):
        if "coeff" not in data or np.asarray(data["coeff"]).shape[-1] == DEEP3D_WIDTH:
            return load_deep3d(path)
    arr = np.asarray(_pick(path, data, ("coeff", "exp"), "coefficients"))
    width = arr.shape[-1] if arr.ndim in (1, 2) else None
    if width == DEEP3D_WIDTH:
        return split_deep3d(
            _as_rows(path, "Deep3DFaceRecon coefficients", arr, (DEEP3D_WIDTH,)), str(path)
        )
    if width in _EXPR_WIDTHS:
        return load_expression(path)
    raise CoeffFileError(
        f"{path}: coefficients must have shape [T, 257] (Deep3DFaceRecon), [T, 64] or [T, 70] "
        f"(expression sequence), got {list(arr.shape)}"
    )


# -- writers --------------------------------------------------------------------------------
def _check_write(path: Path, arr: np.ndarray, widths: tuple[int, ...], what: str) -> np.ndarray:
    arr = np.asarray(arr, np.float32)
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] not in widths:
        raise ValueError(
            f"{what} for {path} must have shape "
            + " or ".join(f"[T, {w}]" for w in widths)
            + f", got {list(arr.shape)}"
        )
    if not np.isfinite(arr).all():
        raise ValueError(f"{what} for {path} has NaN or infinite values")
    return arr


def save_deep3d(path: str | os.PathLike, coeff: np.ndarray, split: bool = False) -> Path:
    """Write coefficients [T, 257]: .npy / .npz (key `coeff`) sequence, or a .mat with key
    `coeff` (or, with split=True, Deep3DFaceRecon's split keys). Atomic."""
    import scipy.io

    path = Path(path)
    coeff = _check_write(path, coeff, (DEEP3D_WIDTH,), "Deep3DFaceRecon coefficients")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return atomic_write(path, lambda t: np.save(t, coeff))
    if suffix == ".npz":
        return atomic_write(path, lambda t: np.savez(t, coeff=coeff))
    if suffix == ".mat":
        d = {k: coeff[:, sl] for k, sl in DEEP3D_SLICES.items()} if split else {"coeff": coeff}
        return atomic_write(path, lambda t: scipy.io.savemat(t, d))
    raise ValueError(
        f"unsupported coefficient file type {suffix!r} for {path}: use .npy, .npz or .mat"
    )


def save_deep3d_folder(
    folder: str | os.PathLike,
    coeff: np.ndarray,
    names: list[str] | None = None,
    split: bool = False,
) -> list[Path]:
    """One .mat per frame (`names[i]`.mat, default 000000.mat, ...) into `folder`."""
    folder = Path(folder)
    coeff = _check_write(folder, coeff, (DEEP3D_WIDTH,), "Deep3DFaceRecon coefficients")
    names = names or [f"{i:06d}" for i in range(coeff.shape[0])]
    if len(names) != coeff.shape[0]:
        raise ValueError(f"names has {len(names)} entries for {coeff.shape[0]} frames")
    return [save_deep3d(folder / f"{n}.mat", coeff[i : i + 1], split) for i, n in enumerate(names)]


def save_expression(path: str | os.PathLike, seq: np.ndarray) -> Path:
    """Write an expression sequence [T, 64] or [T, 70] as .npy, .npz or .mat (key `exp`). Atomic."""
    import scipy.io

    path = Path(path)
    seq = _check_write(path, seq, _EXPR_WIDTHS, "expression sequence")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return atomic_write(path, lambda t: np.save(t, seq))
    if suffix == ".npz":
        return atomic_write(path, lambda t: np.savez(t, exp=seq))
    if suffix == ".mat":
        return atomic_write(path, lambda t: scipy.io.savemat(t, {"exp": seq}))
    raise ValueError(
        f"unsupported expression file type {suffix!r} for {path}: use .npy, .npz or .mat"
    )
