"""Face-video datasets (paper 3.4, deformation / hybrid / audio stages): pairs of frames of one
clip with their 3DMM coefficients, EG3D cameras and 68 landmarks. Layout: docs/datasets.md.

    ROOT/<clip>/frames/*.png       aligned EG3D-style crops, natural name order = frame order
    ROOT/<clip>/coeffs.npy         [T, 257] Deep3DFaceRecon (or <clip>/coeffs/*.mat, one per frame)
    ROOT/<clip>/dataset.json       optional EG3D labels; absent: derived from coeffs angle/trans
    ROOT/<clip>/landmarks.npy      optional [T, 68, 2] pixels of the stored frames; absent:
                                   computed with nofa.faces (dlib) and cached (atomic write)
    ROOT/<clip>/audio_exp.npy      optional [T, 64] / [T, 70] audio-derived expressions (25 fps)
    ROOT/heldout.txt               optional held-out clip names, one per line

Sampling follows nofa/train/data.py: sample i of a stream is a pure function of (seed, stream,
i) through NumPy's SeedSequence, so a resumed run sees the samples it would have seen. A bad
item (unreadable frame, inconsistent coefficient file...) is logged, recorded in
`VideoSource.skipped` and replaced by a redraw that is itself a pure function of
(seed, stream, i, attempt): a long run never dies on one broken file.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from ..io.atomic import atomic_write
from ..io.coeffs import DEEP3D_SLICES, DEEP3D_WIDTH, CoeffFileError, load_deep3d, natural_key
from ..io.eg3d_labels import LabelFileError, deep3d_to_eg3d_labels, read_dataset_json
from .data import HELDOUT_STREAM, TRAIN_STREAM

__all__ = [
    "DatasetProblem",
    "IMAGE_SUFFIXES",
    "VideoBatch",
    "VideoDataset",
    "VideoSource",
    "HELDOUT_STREAM",
    "TRAIN_STREAM",
    "list_clips",
]

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
ALPHA_WIDTH = 80
BETA_WIDTH = 64
NUM_LANDMARKS = 68
_MAX_REDRAWS = 64
META_CACHE_CLIPS = 256  # clips whose coefficients, labels and landmarks stay in memory


class DatasetProblem(ValueError):
    """Something wrong with a video dataset: names the clip, the frame (or None for the whole
    clip), the file and what is wrong."""

    def __init__(
        self, clip: str, frame: int | None, file: str | os.PathLike | None, message: str
    ) -> None:
        self.clip, self.frame, self.file, self.message = (
            clip,
            frame,
            (str(file) if file else None),
            message,
        )
        where = clip + (f" frame {frame}" if frame is not None else "")
        super().__init__(f"{where}: {message}" + (f" ({self.file})" if self.file else ""))


@dataclasses.dataclass
class VideoBatch:
    """N (source, target) frame pairs, each pair from one clip. Images in [-1, 1], S x S.

    image_s/image_t [N, 3, S, S]; camera_s/camera_t [N, 25] EG3D labels; alpha_s/alpha_t
    [N, 80] identity (Deep3D id); beta_s/beta_t [N, 64] expression (Deep3D exp);
    landmarks_s/landmarks_t [N, 68, 2] pixel coordinates in the S-px image (x right, y down);
    beta_audio_t [N, 64] the target frame's audio-derived expression (audio variant) or None;
    frame_s/frame_t [N] frame numbers; index [N] sample ids; clips: the N clip names.
    """

    image_s: torch.Tensor
    image_t: torch.Tensor
    camera_s: torch.Tensor
    camera_t: torch.Tensor
    alpha_s: torch.Tensor
    alpha_t: torch.Tensor
    beta_s: torch.Tensor
    beta_t: torch.Tensor
    landmarks_s: torch.Tensor
    landmarks_t: torch.Tensor
    beta_audio_t: torch.Tensor | None
    frame_s: torch.Tensor
    frame_t: torch.Tensor
    index: torch.Tensor
    clips: list[str]

    def __len__(self) -> int:
        return int(self.image_s.shape[0])

    def _map(self, fn) -> VideoBatch:
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = v if v is None else fn(f.name, v)
        return VideoBatch(**out)

    def slice(self, start: int, stop: int) -> VideoBatch:
        """Pairs start..stop-1."""
        return self._map(lambda name, v: v[start:stop])

    def to(self, device: torch.device | str) -> VideoBatch:
        """All tensors on `device` (clip names unchanged)."""
        return self._map(lambda name, v: v if name == "clips" else v.to(device))


def list_clips(root: str | os.PathLike) -> list[str]:
    """Clip folders of a dataset root (those with a `frames/` folder), in natural name order."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(
            f"video dataset root not found (expected a folder of clips): {root}"
        )
    return sorted((p.name for p in root.iterdir() if (p / "frames").is_dir()), key=natural_key)


@dataclasses.dataclass
class _Clip:
    """What a clip's metadata files say, loaded once (float32 numpy)."""

    frames: list[Path]
    coeffs: np.ndarray  # [T, 257]
    labels: np.ndarray  # [T, 25]
    landmarks: np.ndarray  # [T, 68, 2] stored-frame pixels
    audio: np.ndarray | None  # [T, 64]


class VideoDataset:
    """A folder of face-video clips (layout in the module docstring and docs/datasets.md).

    Args:
        root: the dataset folder.
        image_size: S, the side the frames are resized to (the model's image_size).
        split: "train" (all but the held-out clips), "heldout" or "all".
        heldout_clips: how many of the last clips (natural name order) are held out when
            ROOT/heldout.txt does not name them.
        audio: read `audio_exp.npy` (the audio variant); clips without it are bad items.
        landmarks: "cache" computes missing landmarks with nofa.faces (dlib) and writes
            landmarks.npy; "require" treats a clip without landmarks.npy as a bad item.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        image_size: int,
        split: str = "train",
        heldout_clips: int = 1,
        audio: bool = False,
        landmarks: str = "cache",
    ) -> None:
        if not isinstance(image_size, int) or image_size < 1:
            raise ValueError(f"image_size must be a positive int, got {image_size!r}")
        if split not in ("train", "heldout", "all"):
            raise ValueError(f"split must be 'train', 'heldout' or 'all', got {split!r}")
        if not isinstance(heldout_clips, int) or heldout_clips < 0:
            raise ValueError(f"heldout_clips must be an int >= 0, got {heldout_clips!r}")
        if landmarks not in ("cache", "require"):
            raise ValueError(f"landmarks must be 'cache' or 'require', got {landmarks!r}")
        self.root = Path(root)
        self.image_size, self.split, self.audio, self.landmarks_mode = (
            image_size,
            split,
            bool(audio),
            landmarks,
        )
        self.all_clips = list_clips(self.root)
        if not self.all_clips:
            raise ValueError(
                f"{self.root}: no clips found (expected ROOT/<clip>/frames/*.png, see "
                "docs/datasets.md)"
            )
        self.heldout = self._heldout_names(heldout_clips)
        if split == "all":
            self.clips = list(self.all_clips)
        elif split == "heldout":
            self.clips = [c for c in self.all_clips if c in self.heldout]
        else:
            self.clips = [c for c in self.all_clips if c not in self.heldout]
        if not self.clips:
            by = (
                "heldout.txt"
                if (self.root / "heldout.txt").is_file()
                else f"heldout_clips={heldout_clips}"
            )
            raise ValueError(
                f"{self.root}: split {split!r} has no clips ({len(self.all_clips)} clips, "
                f"{len(self.heldout)} held out by {by})"
            )
        # Clip metadata is kept for the most recently used clips only (a paper-scale dataset's
        # coefficients and landmarks would take gigabytes); failures are small and all kept.
        self._meta: collections.OrderedDict[str, _Clip] = collections.OrderedDict()
        self._bad: dict[str, DatasetProblem] = {}
        self._counts: dict[str, int] = {}

    def _heldout_names(self, count: int) -> set[str]:
        path = self.root / "heldout.txt"
        if path.is_file():
            names = [
                ln.strip()
                for ln in path.read_text().splitlines()
                if ln.strip() and not ln.startswith("#")
            ]
            unknown = [n for n in names if n not in self.all_clips]
            if unknown:
                raise ValueError(f"{path}: names clips that are not in the dataset: {unknown[:5]}")
            return set(names)
        return set(self.all_clips[max(0, len(self.all_clips) - count) :]) if count else set()

    # -- metadata ----------------------------------------------------------------------------
    def frame_files(self, clip: str) -> list[Path]:
        """The clip's frame images in natural name order."""
        meta = self._meta.get(clip)
        return list(meta.frames) if meta is not None else _frame_files(self.root / clip / "frames")

    def num_frames(self, clip: str) -> int:
        """T, the number of frame images of `clip` (counted once)."""
        if clip not in self._counts:
            self._counts[clip] = len(self.frame_files(clip))
        return self._counts[clip]

    def _clip(self, clip: str) -> _Clip:
        if clip in self._bad:
            raise self._bad[clip]
        hit = self._meta.get(clip)
        if hit is not None:
            self._meta.move_to_end(clip)
            return hit
        try:
            hit = self._load_clip(clip)
        except DatasetProblem as e:
            self._bad[clip] = e
            raise
        self._meta[clip] = hit
        while len(self._meta) > META_CACHE_CLIPS:
            self._meta.popitem(last=False)
        return hit

    def _load_clip(self, clip: str) -> _Clip:
        d = self.root / clip
        frames = _frame_files(d / "frames")
        T = len(frames)
        self._counts[clip] = T
        if T == 0:
            raise DatasetProblem(clip, None, d / "frames", "no frame images")
        coeffs = _read_coeffs(clip, d)
        if coeffs.shape[0] != T:
            raise DatasetProblem(
                clip, None, _coeff_path(d), f"{coeffs.shape[0]} coefficient rows for {T} frames"
            )
        labels = _read_labels(clip, d, frames, coeffs)
        lm_path = d / "landmarks.npy"
        if lm_path.is_file():
            landmarks = _read_landmarks(clip, lm_path, T)
        elif self.landmarks_mode == "require":
            raise DatasetProblem(clip, None, lm_path, "no landmarks.npy (landmarks='require')")
        else:
            landmarks = compute_landmarks(frames, clip)
            atomic_write(lm_path, lambda t: np.save(t, landmarks))
        audio = _read_audio(clip, d / "audio_exp.npy", T) if self.audio else None
        return _Clip(frames, coeffs, labels, landmarks, audio)

    # -- items -------------------------------------------------------------------------------
    def load_frame(self, clip: str, i: int) -> dict[str, torch.Tensor | None]:
        """Frame `i` of `clip`: image [3, S, S] in [-1, 1], camera [25], alpha [80], beta [64],
        landmarks [68, 2] (S-px image coordinates), beta_audio [64] or None.
        Raises DatasetProblem for anything wrong with this frame or its clip."""
        meta = self._clip(clip)
        T = len(meta.frames)
        if not 0 <= i < T:
            raise DatasetProblem(
                clip, i, None, f"frame index out of range (the clip has {T} frames)"
            )
        image, width = _read_image(clip, i, meta.frames[i], self.image_size)
        if not np.isfinite(meta.landmarks[i]).all():
            raise DatasetProblem(
                clip, i, self.root / clip / "landmarks.npy", "no landmarks for this frame (NaN)"
            )
        lm = meta.landmarks[i] * (self.image_size / width)
        return {
            "image": image,
            "camera": torch.from_numpy(meta.labels[i].astype(np.float32)),
            "alpha": torch.from_numpy(meta.coeffs[i, DEEP3D_SLICES["id"]].copy()),
            "beta": torch.from_numpy(meta.coeffs[i, DEEP3D_SLICES["exp"]].copy()),
            "landmarks": torch.from_numpy(lm.astype(np.float32)),
            "beta_audio": None if meta.audio is None else torch.from_numpy(meta.audio[i].copy()),
        }

    def check(self, images: bool = True, progress: bool = False) -> list[DatasetProblem]:
        """Every problem of every clip of the dataset (all splits): missing frames vs
        coefficient rows, coefficient width, NaN, label count, landmark and audio shapes,
        unreadable or non-square images (`images=False` skips opening the images)."""
        problems: list[DatasetProblem] = []
        clips: Iterable[str] = self.all_clips
        if progress:
            from tqdm import tqdm

            clips = tqdm(clips, desc="checking clips", unit="clip")
        for clip in clips:
            problems += check_clip(self.root / clip, clip, audio=self.audio, images=images)
        return problems

    def summary(self) -> list[dict[str, object]]:
        """One row per clip (all splits): name, split, frames, where coefficients, labels,
        landmarks and audio come from (for `nofa dataset check`)."""
        return [
            clip_info(self.root / c, c, "heldout" if c in self.heldout else "train")
            for c in self.all_clips
        ]


# -- readers -----------------------------------------------------------------------------------
def _frame_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    frames = (p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    return sorted(frames, key=lambda p: natural_key(p.name))


def _coeff_path(d: Path) -> Path:
    return (
        d / "coeffs.npy"
        if (d / "coeffs.npy").is_file() or not (d / "coeffs").is_dir()
        else d / "coeffs"
    )


def _read_coeffs(clip: str, d: Path) -> np.ndarray:
    path = _coeff_path(d)
    if not path.exists():
        raise DatasetProblem(
            clip, None, path, "no coefficients: expected coeffs.npy [T, 257] or coeffs/*.mat"
        )
    try:
        c = load_deep3d(path)
    except (CoeffFileError, FileNotFoundError, OSError) as e:
        raise DatasetProblem(clip, None, path, f"coefficients unreadable: {e}") from e
    return c.to_deep3d()


def _label_lookup(labels: dict[str, np.ndarray], name: str) -> np.ndarray | None:
    for key in (name, f"frames/{name}"):
        if key in labels:
            return labels[key]
    return None


def _read_labels(clip: str, d: Path, frames: list[Path], coeffs: np.ndarray) -> np.ndarray:
    path = d / "dataset.json"
    if not path.is_file():
        return deep3d_to_eg3d_labels(
            coeffs[:, DEEP3D_SLICES["angle"]], coeffs[:, DEEP3D_SLICES["trans"]]
        )
    try:
        labels = read_dataset_json(path)
    except (LabelFileError, OSError) as e:
        raise DatasetProblem(clip, None, path, f"labels unreadable: {e}") from e
    out, missing = [], []
    for f in frames:
        lab = _label_lookup(labels, f.name)
        if lab is None:
            missing.append(f.name)
        out.append(lab)
    if missing:
        raise DatasetProblem(
            clip,
            None,
            path,
            f"{len(labels)} labels for {len(frames)} frames; no label for "
            f"{len(missing)} frame(s), first {missing[0]!r}",
        )
    return np.stack(out).astype(np.float32)


def _read_landmarks(clip: str, path: Path, T: int) -> np.ndarray:
    try:
        lm = np.load(path, allow_pickle=False)
    except Exception as e:  # numpy raises several types for damaged files
        raise DatasetProblem(
            clip, None, path, f"landmarks unreadable ({type(e).__name__}: {e})"
        ) from e
    if lm.shape != (T, NUM_LANDMARKS, 2):
        raise DatasetProblem(
            clip, None, path, f"landmarks must have shape [{T}, 68, 2], got {list(lm.shape)}"
        )
    # NaN rows are frames without landmarks (an unreadable frame when they were computed):
    # load_frame rejects those frames alone, the rest of the clip stays usable.
    if np.isinf(lm).any():
        raise DatasetProblem(clip, None, path, "landmarks have infinite values")
    return lm.astype(np.float32)


def _read_audio(clip: str, path: Path, T: int) -> np.ndarray:
    from ..io.coeffs import load_expression

    if not path.is_file():
        raise DatasetProblem(
            clip, None, path, "no audio_exp.npy (the audio variant needs one per clip)"
        )
    try:
        seq = load_expression(path)
    except (CoeffFileError, OSError) as e:
        raise DatasetProblem(clip, None, path, f"audio expressions unreadable: {e}") from e
    if len(seq) != T:
        raise DatasetProblem(clip, None, path, f"{len(seq)} audio expression rows for {T} frames")
    return seq.exp


def _read_image(clip: str, i: int, path: Path, size: int) -> tuple[torch.Tensor, int]:
    """[3, size, size] in [-1, 1] and the stored width."""
    from ..io.images import ImageFileError, load_image

    try:
        img = load_image(path)
    except (ImageFileError, OSError) as e:
        raise DatasetProblem(clip, i, path, f"unreadable image: {e}") from e
    h, w = img.shape[-2:]
    if h != w:
        raise DatasetProblem(clip, i, path, f"frames must be square aligned crops, got {w} x {h}")
    if w != size:
        img = torch.nn.functional.interpolate(
            img[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False
        )[0].clamp(-1, 1)
    return img, w


def compute_landmarks(frames: list[Path], clip: str = "") -> np.ndarray:
    """68 landmarks [T, 68, 2] (stored-frame pixels) of aligned face crops, with nofa.faces (dlib);
    NaN rows for frames that cannot be read.

    Small frames are upscaled to 512 px first (dlib's predictor wants faces of ~200 px);
    where the detector finds no face, the predictor runs in the place an aligned crop's face
    box usually is (nofa.faces.prepare.CROP_BOX)."""
    from PIL import Image
    from tqdm import tqdm

    from ..faces import detect_faces, landmarks68, require_dlib
    from ..faces.prepare import CROP_BOX

    require_dlib()
    out = np.zeros((len(frames), NUM_LANDMARKS, 2), np.float32)
    for i, path in enumerate(
        tqdm(frames, desc=f"landmarks {clip}", unit="frame", leave=False, disable=len(frames) < 16)
    ):
        try:
            with Image.open(path) as im:
                im = im.convert("RGB")
                w = im.width
                work = np.asarray(im.resize((512, 512), Image.BICUBIC) if w < 512 else im)
        except OSError as e:  # this frame gets NaN landmarks and fails alone when loaded
            log.warning("%s frame %d: unreadable image, no landmarks (%s)", clip, i, e)
            out[i] = np.nan
            continue
        s = work.shape[1]
        faces = detect_faces(work, upsample=0, rotations=())
        box = faces[0].box if faces else np.array(CROP_BOX) * s
        out[i] = landmarks68(work, box) * (w / s)
    return out


# -- checking ---------------------------------------------------------------------------------
def clip_info(d: Path, clip: str, split: str = "") -> dict[str, object]:
    """What a clip folder holds (no file is validated): frames, coefficient / label /
    landmark / audio sources."""
    n = len(_frame_files(d / "frames"))
    if (d / "coeffs.npy").is_file():
        coeffs = "coeffs.npy"
    elif (d / "coeffs").is_dir():
        coeffs = "coeffs/*.mat"
    else:
        coeffs = "-"
    return {
        "clip": clip,
        "split": split,
        "frames": n,
        "coeffs": coeffs,
        "labels": "dataset.json" if (d / "dataset.json").is_file() else "from coeffs",
        "landmarks": "landmarks.npy" if (d / "landmarks.npy").is_file() else "to compute",
        "audio": "audio_exp.npy" if (d / "audio_exp.npy").is_file() else "-",
    }


def _bad_rows(arr: np.ndarray) -> list[int]:
    bad = ~np.isfinite(arr.reshape(arr.shape[0], -1))
    return np.nonzero(bad.any(1))[0].tolist()


def _check_coeffs(clip: str, d: Path, T: int) -> list[DatasetProblem]:
    out: list[DatasetProblem] = []
    npy, folder = d / "coeffs.npy", d / "coeffs"
    if npy.is_file():
        return _check_array(
            clip, npy, T, "coefficients", ((DEEP3D_WIDTH,),), row_noun="coefficient"
        )
    if folder.is_dir():
        mats = sorted(
            (p for p in folder.iterdir() if p.suffix.lower() == ".mat"),
            key=lambda p: natural_key(p.name),
        )
        if len(mats) != T:
            out.append(
                DatasetProblem(
                    clip, None, folder, f"{len(mats)} per-frame .mat files for {T} frames"
                )
            )
        for i, f in enumerate(mats):
            try:
                c = load_deep3d(f)
                if len(c) != 1:
                    raise CoeffFileError(f"{f}: a per-frame .mat must hold one row, got {len(c)}")
            except (CoeffFileError, OSError) as e:
                out.append(DatasetProblem(clip, i, f, str(e)))
        return out
    return [
        DatasetProblem(
            clip, None, npy, "no coefficients: expected coeffs.npy [T, 257] or coeffs/*.mat"
        )
    ]


def _check_labels(clip: str, d: Path, frames: list[Path]) -> list[DatasetProblem]:
    path = d / "dataset.json"
    if not path.is_file():
        return []
    try:
        labels = read_dataset_json(path)
    except (LabelFileError, OSError) as e:
        return [DatasetProblem(clip, None, path, f"labels unreadable: {e}")]
    out = []
    if len(labels) != len(frames):
        out.append(
            DatasetProblem(clip, None, path, f"{len(labels)} labels for {len(frames)} frames")
        )
    missing = [i for i, f in enumerate(frames) if _label_lookup(labels, f.name) is None]
    if missing:
        out.append(
            DatasetProblem(
                clip,
                missing[0],
                path,
                f"no label for {len(missing)} frame(s), first {frames[missing[0]].name!r}",
            )
        )
    return out


def _check_array(
    clip: str,
    path: Path,
    T: int,
    what: str,
    shapes: tuple[tuple[int, ...], ...],
    row_noun: str | None = None,
) -> list[DatasetProblem]:
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as e:  # numpy raises several types for damaged files
        return [DatasetProblem(clip, None, path, f"{what} unreadable ({type(e).__name__}: {e})")]
    out = []
    if arr.ndim < 1 or arr.shape[0] != T:
        out.append(
            DatasetProblem(
                clip,
                None,
                path,
                f"{arr.shape[0] if arr.ndim else 0} {row_noun or what} rows for {T} frames",
            )
        )
    if arr.shape[1:] not in shapes:
        want = " or ".join("[T, " + ", ".join(map(str, s)) + "]" for s in shapes)
        out.append(
            DatasetProblem(
                clip, None, path, f"{what} must have shape {want}, got {list(arr.shape)}"
            )
        )
    if not np.issubdtype(arr.dtype, np.number):
        out.append(
            DatasetProblem(clip, None, path, f"{what} must be numbers, got dtype {arr.dtype}")
        )
    elif arr.ndim >= 1 and arr.shape[0] and (rows := _bad_rows(arr)):
        out.append(
            DatasetProblem(
                clip,
                rows[0],
                path,
                f"{what} have NaN or infinite values in {len(rows)} row(s): {rows[:10]}",
            )
        )
    return out


def _check_images(clip: str, frames: list[Path]) -> list[DatasetProblem]:
    from PIL import Image, UnidentifiedImageError

    out, sizes = [], {}
    for i, f in enumerate(frames):
        try:
            with Image.open(f) as im:
                im.load()
                size = im.size
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
            out.append(DatasetProblem(clip, i, f, f"unreadable image ({type(e).__name__}: {e})"))
            continue
        if size[0] != size[1]:
            out.append(
                DatasetProblem(
                    clip, i, f, f"frames must be square aligned crops, got {size[0]} x {size[1]}"
                )
            )
        sizes.setdefault(size, i)
    if len(sizes) > 1:
        out.append(
            DatasetProblem(
                clip,
                None,
                frames[0].parent,
                "frames have different sizes: "
                + ", ".join(f"{w}x{h} (first frame {i})" for (w, h), i in sizes.items()),
            )
        )
    return out


def check_clip(
    d: Path, clip: str, audio: bool = False, images: bool = True
) -> list[DatasetProblem]:
    """Every problem of one clip folder (see :meth:`VideoDataset.check`)."""
    frames_dir = d / "frames"
    frames = _frame_files(frames_dir)
    T = len(frames)
    out: list[DatasetProblem] = []
    if T == 0:
        out.append(DatasetProblem(clip, None, frames_dir, "no frame images (.png/.jpg) in frames/"))
    elif T == 1:
        out.append(
            DatasetProblem(
                clip, None, frames_dir, "only 1 frame: a clip needs 2 or more to draw pairs"
            )
        )
    out += _check_coeffs(clip, d, T)
    out += _check_labels(clip, d, frames)
    if (d / "landmarks.npy").is_file():
        out += _check_array(clip, d / "landmarks.npy", T, "landmarks", ((NUM_LANDMARKS, 2),))
    if (d / "audio_exp.npy").is_file():
        out += _check_array(clip, d / "audio_exp.npy", T, "audio expressions", ((64,), (70,)))
    elif audio:
        out.append(
            DatasetProblem(
                clip, None, d / "audio_exp.npy", "no audio_exp.npy (the audio variant needs one)"
            )
        )
    if images:
        out += _check_images(clip, frames)
    return out


# -- sampling ----------------------------------------------------------------------------------
class VideoSource:
    """(source, target) pairs of frames of one clip from a :class:`VideoDataset`.

    Sample i of `stream` picks a clip uniformly and two different frames of it uniformly,
    from NumPy's PCG64 seeded by SeedSequence([seed, stream, i]); redraw k of a bad sample uses
    SeedSequence([seed, stream, i, k]).
    """

    def __init__(self, dataset: VideoDataset, seed: int = 0) -> None:
        self.dataset, self.seed = dataset, int(seed)
        self.skipped: list[str] = []

    def sample_params(
        self, index: int, stream: int = TRAIN_STREAM, attempt: int = 0
    ) -> tuple[str, int, int]:
        """(clip, source frame, target frame) of draw `attempt` of sample `index`."""
        key = [self.seed, int(stream), int(index)] + ([attempt] if attempt else [])
        rng = np.random.default_rng(np.random.SeedSequence(key))
        clip = self.dataset.clips[int(rng.integers(len(self.dataset.clips)))]
        T = self.dataset.num_frames(clip)
        if T < 2:
            return clip, 0, 0
        s = int(rng.integers(T))
        t = int(rng.integers(T - 1))
        return clip, s, t + (t >= s)

    def _pair(self, index: int, stream: int) -> tuple[str, int, int, dict, dict]:
        for attempt in range(_MAX_REDRAWS):
            clip, s, t = self.sample_params(index, stream, attempt)
            try:
                if s == t:
                    raise DatasetProblem(clip, None, None, "fewer than 2 frames: no pair to draw")
                return (
                    clip,
                    s,
                    t,
                    self.dataset.load_frame(clip, s),
                    self.dataset.load_frame(clip, t),
                )
            except DatasetProblem as e:
                msg = f"sample {index} (stream {stream}, draw {attempt}): skipped bad item: {e}"
                log.warning(msg)
                self.skipped.append(msg)
        raise RuntimeError(
            f"{self.dataset.root}: {_MAX_REDRAWS} draws in a row for sample {index} hit bad items; "
            "run `nofa dataset check` on the dataset"
        )

    def batch(self, indices: Iterable[int], stream: int = TRAIN_STREAM) -> VideoBatch:
        """Samples `indices` of `stream` as one batch."""
        indices = [int(i) for i in indices]
        pairs = [self._pair(i, stream) for i in indices]
        return _collate(pairs, indices)

    def reenactment(self, num_targets: int) -> list[VideoBatch]:
        """Held-out self-reenactment: one batch per clip of the dataset, source = frame 0,
        targets = `num_targets` later frames evenly spaced up to the last (fewer when the clip
        is shorter). Bad clips are logged, recorded in `skipped` and left out."""
        if not isinstance(num_targets, int) or num_targets < 1:
            raise ValueError(f"num_targets must be a positive int, got {num_targets!r}")
        out = []
        for clip in self.dataset.clips:
            T = self.dataset.num_frames(clip)
            targets = (
                sorted(set(np.linspace(1, T - 1, num_targets).round().astype(int).tolist()))
                if T >= 2
                else []
            )
            try:
                if not targets:
                    raise DatasetProblem(
                        clip, None, None, "fewer than 2 frames: nothing to reenact"
                    )
                src = self.dataset.load_frame(clip, 0)
                pairs = [(clip, 0, t, src, self.dataset.load_frame(clip, t)) for t in targets]
            except DatasetProblem as e:
                msg = f"reenactment: skipped clip {clip}: {e}"
                log.warning(msg)
                self.skipped.append(msg)
                continue
            out.append(_collate(pairs, list(range(len(pairs)))))
        return out


def _collate(pairs: list[tuple[str, int, int, dict, dict]], indices: list[int]) -> VideoBatch:
    def stack(which: int, key: str) -> torch.Tensor:
        return torch.stack([p[which][key] for p in pairs])

    audio = None
    if pairs and pairs[0][4]["beta_audio"] is not None:
        audio = stack(4, "beta_audio")
    return VideoBatch(
        image_s=stack(3, "image"),
        image_t=stack(4, "image"),
        camera_s=stack(3, "camera"),
        camera_t=stack(4, "camera"),
        alpha_s=stack(3, "alpha"),
        alpha_t=stack(4, "alpha"),
        beta_s=stack(3, "beta"),
        beta_t=stack(4, "beta"),
        landmarks_s=stack(3, "landmarks"),
        landmarks_t=stack(4, "landmarks"),
        beta_audio_t=audio,
        frame_s=torch.tensor([p[1] for p in pairs], dtype=torch.long),
        frame_t=torch.tensor([p[2] for p in pairs], dtype=torch.long),
        index=torch.tensor(indices, dtype=torch.long),
        clips=[p[0] for p in pairs],
    )
