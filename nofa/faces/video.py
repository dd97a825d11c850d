"""Face videos in: a video file (or a folder of frames) -> per-frame 68 landmarks, EG3D
cameras and, with Deep3DFaceRecon's regressor, 3DMM coefficients; and the training-clip
layout of :mod:`nofa.train.video_data` written from them (`nofa prepare VIDEO`).

    frames = VideoFrames("talk.mp4")                  # 25 fps, decoded by imageio-ffmpeg
    track = track_video(frames, net=load_deep3d_net("epoch_20.pth"))
    track.landmarks, track.labels, track.coeffs       # [T, 68, 2], [T, 25], [T, 257] | None
    driving = track.to_coeffs()                       # nofa.io.coeffs.Coeffs for `animate`
    write_clip("talk.mp4", "data/", net=...)          # data/talk/frames/*.png, dataset.json ...

Two passes over the frames keep memory bounded by one frame whatever the video's length:
pass 1 finds the face and its 68 landmarks in every frame; they are then cleaned (frames
without a face, and frames whose face jumps away from its neighbours, are interpolated from
the neighbouring frames and recorded) and smoothed over time; pass 2 crops every frame from
the smoothed landmarks (EG3D's crop for the clip, Deep3DFaceRecon's 224 crop for the
regressor).

Temporal filter: a Savitzky-Golay filter (a quadratic fitted by least squares over a centred
window of `window` frames, default 7 = 0.28 s at 25 fps; :func:`smooth`), centred, so
zero-phase. The whole video is known before anything is written, so a causal filter
(One-Euro, Kalman) would only add lag; among zero-phase filters a local quadratic keeps
more of the motion for the same noise reduction than a Gaussian or a moving average. Window
7 divides white landmark noise by 1.7 (std x0.58) and keeps 97.5 % of a 2 Hz motion's
amplitude, 89 % at 3 Hz, 71 % at 4 Hz; a Gaussian of the same noise reduction (sigma 0.85
frames) keeps 91 %, 82 %, 70 % (window 5: noise x0.70, 99.5 % / 97.5 % / 93 %).

It is applied to the 68 landmarks (frame pixels) before cropping, and to the head pose
(Deep3DFaceRecon's angle and trans, from the regressor or fitted to the smoothed landmarks)
before the EG3D labels are derived from it. Expressions are not smoothed (`nofa animate
--smooth` can).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from .detect import NoFaceError
from .photo import as_rgb8

__all__ = [
    "DEFAULT_FPS",
    "DEFAULT_WINDOW",
    "VIDEO_SUFFIXES",
    "VideoFrames",
    "VideoTrack",
    "clean_landmarks",
    "is_raw_video",
    "is_video",
    "smooth",
    "track_video",
    "write_clip",
]

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")
FRAME_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
DEFAULT_FPS = 25.0  # the frame rate of the paper's videos and of audio-derived expressions
DEFAULT_WINDOW = 7  # Savitzky-Golay window in frames (0.28 s at 25 fps)
POLYORDER = 2
# A face whose centre lies more than this many face sizes away from the median of its
# neighbours' (or whose size differs from theirs by more than this ratio) is taken for a
# detector mistake (another face, a false positive) and replaced like a frame without a face.
# Generous on purpose: a fast head turn moves the face by a quarter of its size per frame at
# 25 fps, a wrong face jumps much farther.
OUTLIER_SHIFT = 1.0
OUTLIER_SCALE = 1.5
_OUTLIER_SPAN = 9  # frames in the running median the outlier test compares with


def is_video(path: str | os.PathLike) -> bool:
    """Whether `path` names a video file nofa reads (by suffix: mp4, mov, avi, mkv, webm, m4v)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def is_raw_video(path: str | os.PathLike) -> bool:
    """Whether a driving source is a raw video: a video file, or a folder of frame images none
    of which has a coefficient file (same stem, .mat/.npy/.npz, beside it or in coeffs/) --
    a folder with them is a coefficient drive (`nofa.pipelines.animate.load_driving`)."""
    p = Path(path)
    if p.is_file():
        return is_video(p)
    if not p.is_dir():
        return False
    frames = _frame_files(p)
    return bool(frames) and not any(
        (d / (f.stem + s)).is_file()
        for f in frames
        for d in (p, p / "coeffs", p / "coeff")
        for s in (".mat", ".npy", ".npz")
    )


def _frame_files(folder: Path) -> list[Path]:
    from ..io.coeffs import natural_key

    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in FRAME_SUFFIXES]
    return sorted(files, key=lambda p: natural_key(p.name))


class VideoFrames:
    """The frames of a video file or a folder of frame images, uint8 [H, W, 3], re-iterable
    (each iteration decodes again: nothing is held in memory).

    A video file is decoded by imageio-ffmpeg's ffmpeg and resampled to `fps` frames per
    second (ffmpeg's fps filter: frames are repeated or dropped at the nearest time; phone
    videos' rotation metadata is applied). A folder's images (natural name order) are taken
    as frames at `fps` as they are. `max_frames` keeps the first N frames.
    Raises FileNotFoundError / ValueError naming the source when it cannot be read.
    """

    def __init__(
        self, source: str | os.PathLike, fps: float = DEFAULT_FPS, max_frames: int | None = None
    ) -> None:
        self.source = Path(source)
        if not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
            raise ValueError(f"fps must be a positive number, got {fps!r}")
        if max_frames is not None and (not isinstance(max_frames, int) or max_frames < 1):
            raise ValueError(f"max_frames must be a positive int or None, got {max_frames!r}")
        self.fps, self.max_frames = float(fps), max_frames
        if not self.source.exists():
            raise FileNotFoundError(f"video not found: {self.source}")
        self.files: list[Path] | None = None
        self.source_fps: float | None = None
        self.truncated = False  # set when decoding stopped early on a damaged file
        if self.source.is_dir():
            self.files = _frame_files(self.source)
            if not self.files:
                raise ValueError(
                    f"{self.source}: no frame images ({', '.join(FRAME_SUFFIXES)}) in the folder"
                )
            self.files = self.files[: max_frames or None]
            self.duration = len(self.files) / self.fps
        else:
            if not is_video(self.source):
                raise ValueError(
                    f"{self.source}: not a video file nofa reads (expected "
                    f"{', '.join(VIDEO_SUFFIXES)}) or a folder of frames"
                )
            meta, gen = self._open()
            gen.close()  # only the header was wanted: stop ffmpeg
            self.source_fps = float(meta.get("fps") or 0) or None
            self.duration = float(meta.get("duration") or 0)

    def _open(self) -> tuple[dict, Iterator[bytes]]:
        try:
            import imageio_ffmpeg
        except ImportError as e:
            raise ImportError(
                "reading videos needs the imageio-ffmpeg package (pip install imageio-ffmpeg, "
                "pinned in requirements.txt); or pass a folder of frame images"
            ) from e
        gen = imageio_ffmpeg.read_frames(
            str(self.source), output_params=["-vf", f"fps={self.fps:g}"]
        )
        try:
            meta = next(gen)
        except (OSError, StopIteration, RuntimeError, IndexError, KeyError, ValueError) as e:
            # (imageio-ffmpeg's header parser fails with IndexError / KeyError on files
            # without a video stream)
            gen.close()
            first = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
            raise ValueError(f"{self.source}: ffmpeg cannot read this video ({first})") from e
        return meta, gen

    def __len__(self) -> int:
        """Frames expected (a video's is estimated from its duration; iteration is exact)."""
        if self.files is not None:
            return len(self.files)
        n = max(1, round(self.duration * self.fps))
        return min(n, self.max_frames) if self.max_frames else n

    def __iter__(self) -> Iterator[np.ndarray]:
        from ..io.images import ImageFileError
        from .photo import load_photo

        if self.files is not None:
            for f in self.files:
                try:
                    yield load_photo(f)
                except (ImageFileError, OSError) as e:
                    # One unreadable frame image must not end the clip: an empty frame keeps
                    # the numbering and is treated like a frame without a face.
                    log.warning("%s: unreadable frame (%s)", f, e)
                    yield np.zeros((0, 0, 3), np.uint8)
            return
        meta, gen = self._open()
        w, h = meta["size"]
        i = 0
        try:
            while not (self.max_frames and i >= self.max_frames):
                try:
                    raw = next(gen)
                except StopIteration:
                    break
                except (RuntimeError, OSError) as e:
                    # A damaged or truncated file: keep the frames decoded so far (every pass
                    # stops at the same place, so the frame numbering stays consistent).
                    log.warning("%s: decoding stopped after %d frames (%s)", self.source, i, e)
                    self.truncated = True
                    break
                yield np.frombuffer(raw, np.uint8).reshape(h, w, 3)
                i += 1
        finally:
            gen.close()  # stops ffmpeg when the caller leaves early


# -- landmarks over time ------------------------------------------------------------------------
def _box_of(lm: np.ndarray) -> np.ndarray:
    lo, hi = lm.min(0), lm.max(0)
    return np.concatenate([lo, hi])


# In the window around the previous face the detector runs on a copy scaled so the face is
# about this many pixels across: dlib's HOG window is 80 px, and a 4K close-up's face need
# not be searched at full size (the landmarks are then predicted on the full-size frame).
_SEARCH_FACE_PX = 160


def _find(frame: np.ndarray, prev: np.ndarray | None, detector: str) -> np.ndarray | None:
    """68 landmarks [68, 2] (frame pixels) of the face to follow, or None.

    With the previous frame's landmarks the detector first searches a window around them
    (3x the face's extent: faster, and it keeps following the same person when others come
    into view); otherwise, or when that fails, the whole frame (the largest face)."""
    from PIL import Image

    from .detect import detect_faces, landmarks68

    if frame.size == 0:
        return None
    h, w = frame.shape[:2]
    if prev is not None:
        box = _box_of(prev)
        extent = max(box[2] - box[0], box[3] - box[1])
        c, half = (box[:2] + box[2:]) / 2, 1.5 * extent
        x0, y0 = (max(0, int(c[0] - half)), max(0, int(c[1] - half)))
        x1, y1 = (min(w, int(c[0] + half)), min(h, int(c[1] + half)))
        k = max(1.0, extent / _SEARCH_FACE_PX)  # > 1: search a reduced copy
        rw, rh = round((x1 - x0) / k), round((y1 - y0) / k)
        if rw >= 40 and rh >= 40:
            region = frame[y0:y1, x0:x1]
            if k > 1:
                region = np.asarray(Image.fromarray(region).resize((rw, rh), Image.BILINEAR))
            # upsampling finds faces down to 40 px; a face of 100 px or more needs none
            up = 0 if extent / k >= 100 else 1
            faces = detect_faces(region, detector=detector, upsample=up, rotations=())
            if faces:
                best = min(
                    faces,
                    key=lambda f: np.hypot(*((f.box[:2] + f.box[2:]) / 2 * k + (x0, y0) - c)),
                )
                if k == 1:
                    return best.landmarks + (x0, y0)
                return landmarks68(frame, best.box * k + (x0, y0, x0, y0))
    faces = detect_faces(frame, detector=detector)
    if not faces:
        return None
    if prev is None:
        return faces[0].landmarks
    c = _box_of(prev).reshape(2, 2).mean(0)
    return min(faces, key=lambda f: np.hypot(*(f.landmarks.mean(0) - c))).landmarks


def _running_median(x: np.ndarray, span: int) -> np.ndarray:
    """Median over a centred window of `span` frames (shorter at the ends), NaN rows skipped."""
    h = span // 2
    out = np.empty_like(x)
    for i in range(len(x)):
        win = x[max(0, i - h) : i + h + 1]
        ok = win[np.isfinite(win).all(axis=tuple(range(1, win.ndim)))]
        out[i] = np.median(ok, 0) if len(ok) else np.nan
    return out


def _outliers(lm: np.ndarray) -> np.ndarray:
    """[T] bool: frames whose face centre or size jumps away from their neighbours' median."""
    ok = np.isfinite(lm).all((1, 2))
    if ok.sum() < 3:
        return np.zeros(len(lm), bool)
    centre = np.full((len(lm), 2), np.nan)
    size = np.full(len(lm), np.nan)
    centre[ok] = lm[ok].mean(1)
    # the larger of width and height keeps turned heads from looking shrunk
    size[ok] = (lm[ok].max(1) - lm[ok].min(1)).max(1)
    mc = _running_median(centre, _OUTLIER_SPAN)
    ms = _running_median(size[:, None], _OUTLIER_SPAN)[:, 0]
    with np.errstate(invalid="ignore"):  # NaN rows (no face) compare False
        shift = np.hypot(*(centre - mc).T) / ms
        ratio = np.maximum(size / ms, ms / size)
        return ok & ((shift > OUTLIER_SHIFT) | (ratio > OUTLIER_SCALE))


def _interpolate(x: np.ndarray, good: np.ndarray) -> np.ndarray:
    """x [T, ...] with rows where `good` is False linearly interpolated over time from the good
    rows (held constant beyond the first / last good row)."""
    t = np.arange(len(x))
    flat = x.reshape(len(x), -1).astype(np.float64)
    out = np.empty_like(flat)
    for j in range(flat.shape[1]):
        out[:, j] = np.interp(t, t[good], flat[good, j])
    return out.reshape(x.shape)


def _savgol_hat(window: int, order: int) -> np.ndarray:
    """[window, window]: row p gives the weights that evaluate, at position p of a window, the
    degree-`order` polynomial fitted by least squares to the window's samples."""
    u = np.arange(window) - window // 2
    v = u[:, None] ** np.arange(order + 1)[None]  # Vandermonde
    return v @ np.linalg.pinv(v)


def smooth(x: np.ndarray, window: int = DEFAULT_WINDOW) -> np.ndarray:
    """Zero-phase Savitzky-Golay smoothing over time (axis 0) of x [T, ...]: a quadratic fitted
    by least squares over a centred window of `window` frames (odd; clips shorter than it use
    the longest odd window that fits; 0 or 1: no smoothing). The first and last window//2
    frames take the value of the quadratic fitted to the first / last full window (SciPy's
    `savgol_filter(mode="interp")`). Returns float64, same shape. Finite input only
    (interpolate gaps first)."""
    x = np.asarray(x, np.float64)
    if (
        not isinstance(window, (int, np.integer))
        or isinstance(window, bool)
        or window < 0
        or (window > 1 and window % 2 == 0)
    ):
        raise ValueError(f"window must be 0, 1 or an odd number of frames, got {window!r}")
    T = len(x)
    w = min(int(window), T if T % 2 else T - 1)
    if w <= POLYORDER:
        return x.copy()
    hat, h = _savgol_hat(w, POLYORDER), w // 2
    flat = x.reshape(T, -1)
    out = np.empty_like(flat)
    # interior: the centre row of the hat matrix slid along time (a correlation)
    windows = np.lib.stride_tricks.sliding_window_view(flat, w, axis=0)  # [T-w+1, C, w]
    out[h : T - h] = windows @ hat[h]
    out[:h] = hat[:h] @ flat[:w]  # ends: the fitted polynomial of the first / last window
    out[T - h :] = hat[w - h :] @ flat[T - w :]
    return out.reshape(x.shape)


def clean_landmarks(raw: np.ndarray, window: int = DEFAULT_WINDOW) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame landmarks raw [T, 68, 2] (NaN rows: no face) -> (smoothed [T, 68, 2],
    replaced [T] bool).

    Frames without a face, and frames whose face jumps away from its neighbours (a detector
    mistake, see OUTLIER_SHIFT), are `replaced`: interpolated linearly from the nearest good
    frames on either side. Then all frames are smoothed (:func:`smooth`).
    Raises NoFaceError when no frame has a face."""
    raw = np.asarray(raw, np.float64)
    if raw.ndim != 3 or raw.shape[1:] != (68, 2):
        raise ValueError(f"landmarks must be [T, 68, 2], got {list(raw.shape)}")
    replaced = ~np.isfinite(raw).all((1, 2))
    if replaced.all():
        raise NoFaceError("no face found in any frame")
    replaced |= _outliers(raw)
    filled = _interpolate(raw, ~replaced)
    return smooth(filled, window), replaced


# -- the track ----------------------------------------------------------------------------------
@dataclasses.dataclass
class VideoTrack:
    """What :func:`track_video` found in a video of T frames.

    landmarks [T, 68, 2]: smoothed, frame pixels (x right, y down, pixel centres at +0.5);
    landmarks_raw [T, 68, 2]: as detected, NaN where no face was found;
    replaced [T] bool: frames whose landmarks were interpolated from their neighbours (no
        face, an outlier, or an unreadable frame);
    angle [T, 3], trans [T, 3]: Deep3DFaceRecon head pose (radians; its translation), from
        the regressor when `coeffs` is given, else fitted to the landmarks;
    labels [T, 25]: EG3D camera labels of the EG3D crops (`deep3d_to_eg3d_label`);
    coeffs [T, 257] | None: Deep3DFaceRecon coefficients (pose columns = angle, trans above);
    pose_source: "deep3d" or "landmarks"; confidence [T] | None: the landmark camera's
    confidence (0..1, 0 where unreliable; None with the regressor); fps; frame_size (W, H);
    window: the smoothing window; notes: what the caller should be told.
    """

    source: str
    fps: float
    frame_size: tuple[int, int]
    landmarks: np.ndarray
    landmarks_raw: np.ndarray
    replaced: np.ndarray
    angle: np.ndarray
    trans: np.ndarray
    labels: np.ndarray
    coeffs: np.ndarray | None
    pose_source: str
    window: int
    confidence: np.ndarray | None = None
    notes: list[str] = dataclasses.field(default_factory=list)

    def __len__(self) -> int:
        return int(self.landmarks.shape[0])

    @property
    def replaced_frames(self) -> list[int]:
        return np.nonzero(self.replaced)[0].tolist()

    def to_coeffs(self):
        """The track as a driving sequence (:class:`nofa.io.coeffs.Coeffs`, kind "deep3d"):
        the regressor's coefficients, or, without them, neutral expressions (zeros) with the
        landmark head pose."""
        from ..io.coeffs import Coeffs, split_deep3d

        if self.coeffs is not None:
            c = split_deep3d(self.coeffs, self.source)
            c.fps = self.fps
            return c
        T = len(self)
        return Coeffs(
            exp=np.zeros((T, 64), np.float32),
            angle=self.angle.astype(np.float32),
            trans=self.trans.astype(np.float32),
            kind="deep3d",
            source=self.source,
            fps=self.fps,
        )


def _landmark_poses(
    landmarks: np.ndarray, frame_hw: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[list[str]]]:
    """The camera nofa.faces estimates for a photo (:func:`nofa.faces.camera.estimate_camera`:
    the landmarks fitted against the BFM mean face through Deep3DFaceRecon's camera), frame by
    frame: angle [T, 3], trans [T, 3] (Deep3DFaceRecon's pose, so that it is smoothed and
    converted like the regressor's), confidence [T] and each frame's problems."""
    from .camera import estimate_camera

    fits = [estimate_camera(lm, frame_hw, on_unreliable="ignore") for lm in landmarks]
    return (
        np.stack([f.angle for f in fits]),
        np.stack([f.trans for f in fits]),
        np.array([f.confidence for f in fits]),
        [list(f.problems) for f in fits],
    )


def track_video(
    frames: VideoFrames | str | os.PathLike,
    net=None,
    *,
    detector: str = "hog",
    window: int = DEFAULT_WINDOW,
    progress: bool = True,
    on_frame: Callable[[int, np.ndarray, np.ndarray], None] | None = None,
    batch: int = 8,
) -> VideoTrack:
    """Follow the face through `frames` (a :class:`VideoFrames`, or a video file / folder of
    frames read at 25 fps) -> :class:`VideoTrack`.

    net: Deep3DFaceRecon's regressor (:func:`nofa.faces.deep3d_net.load_deep3d_net`) or None.
    With it every frame's 224 crop (`deep3d_crop` of the smoothed landmarks) is regressed to
    257 coefficients; their head pose is smoothed and gives the labels (EG3D's own pipeline).
    Without it the head pose is fitted to the smoothed landmarks.
    on_frame(i, frame uint8 [H, W, 3], landmarks [68, 2]): called for every frame in the
    second pass with the smoothed landmarks (e.g. to write the frame's crop).
    detector: dlib's "hog" or "cnn". window: the Savitzky-Golay window (module docstring).

    A frame without a face never stops the track: it is interpolated and recorded
    (`replaced`). Raises NoFaceError when no frame has one."""
    from tqdm import tqdm

    from ..io.coeffs import DEEP3D_SLICES
    from ..io.eg3d_labels import deep3d_to_eg3d_labels

    if not isinstance(frames, VideoFrames):
        frames = VideoFrames(frames)
    name = str(frames.source)
    # pass 1: landmarks
    raw, prev, size = [], None, None
    bar = tqdm(frames, total=len(frames), desc="landmarks", unit="frame", disable=not progress)
    for frame in bar:
        if frame.size and size is None:
            size = (int(frame.shape[1]), int(frame.shape[0]))
        try:
            lm = _find(frame, prev, detector) if frame.size else None
        except (ValueError, RuntimeError) as e:  # e.g. dlib refusing an odd frame
            log.warning("%s frame %d: face detection failed (%s)", name, len(raw), e)
            lm = None
        raw.append(np.full((68, 2), np.nan) if lm is None else lm)
        prev = lm if lm is not None else prev
    bar.close()
    if not raw:
        raise ValueError(f"{name}: no frames could be read")
    landmarks_raw = np.stack(raw)
    try:
        landmarks, replaced = clean_landmarks(landmarks_raw, window)
    except NoFaceError as e:
        raise NoFaceError(f"{name}: {e} ({len(raw)} frames)") from e
    T = len(landmarks)
    notes = []
    if replaced.any():
        idx = np.nonzero(replaced)[0].tolist()
        notes.append(
            f"{len(idx)} of {T} frames without a usable face were interpolated from their "
            f"neighbours: {idx[:12]}{' ...' if len(idx) > 12 else ''}"
        )
    # pass 2: crops (the caller's, and the regressor's)
    coeffs = None
    if net is not None or on_frame is not None:
        coeffs = _second_pass(frames, landmarks, net, on_frame, batch, progress, name)
    confidence = None
    if coeffs is not None:
        angle = coeffs[:, DEEP3D_SLICES["angle"]]
        trans = coeffs[:, DEEP3D_SLICES["trans"]]
        pose_source = "deep3d"
    else:
        angle, trans, confidence, problems = _landmark_poses(landmarks, (size[1], size[0]))
        pose_source = "landmarks"
        doubtful = [i for i, p in enumerate(problems) if p]
        if doubtful:
            first = problems[doubtful[0]][0]
            notes.append(
                f"{len(doubtful)} of {T} frames have an unreliable landmark camera (frame "
                f"{doubtful[0]}: {first}); --deep3d-weights gives Deep3DFaceRecon's pose"
            )
    # The pose is smoothed with the landmarks' filter: the regressor answers each frame on its
    # own (jitter of a few tenths of a degree), and the landmark fit can switch between nearby
    # minima; the labels are then derived from the smoothed pose.
    angle, trans = smooth(angle, window), smooth(trans, window)
    if coeffs is not None:
        coeffs[:, DEEP3D_SLICES["angle"]] = angle
        coeffs[:, DEEP3D_SLICES["trans"]] = trans
    labels = deep3d_to_eg3d_labels(angle, trans)
    return VideoTrack(
        source=name,
        fps=frames.fps,
        frame_size=size,
        landmarks=landmarks.astype(np.float32),
        landmarks_raw=landmarks_raw.astype(np.float32),
        replaced=replaced,
        angle=angle.astype(np.float32),
        trans=trans.astype(np.float32),
        labels=labels,
        coeffs=None if coeffs is None else coeffs.astype(np.float32),
        pose_source=pose_source,
        window=window,
        confidence=None if confidence is None else confidence.astype(np.float32),
        notes=notes,
    )


def _second_pass(
    frames: VideoFrames,
    landmarks: np.ndarray,
    net,
    on_frame,
    batch: int,
    progress: bool,
    name: str,
) -> np.ndarray | None:
    """Decode again; crop each frame from its smoothed landmarks for `on_frame` and the
    regressor. Returns coefficients [T, 257] (float64) or None without a regressor."""
    from tqdm import tqdm

    from .deep3d_net import coefficients_from_crops
    from .eg3d_crop import deep3d_crop

    T = len(landmarks)
    out = np.zeros((T, 257)) if net is not None else None
    pending: list[tuple[int, np.ndarray]] = []
    last = None

    def flush() -> None:
        if pending:
            c = coefficients_from_crops(np.stack([p[1] for p in pending]), net, batch)
            for (i, _), row in zip(pending, c):
                out[i] = row
            pending.clear()

    n = 0
    desc = "crops + coefficients" if net is not None else "crops"
    for i, frame in enumerate(tqdm(frames, total=T, desc=desc, unit="frame", disable=not progress)):
        if i >= T:
            break
        n += 1
        if frame.size == 0:  # an unreadable frame image: the last good frame stands in
            frame = last if last is not None else np.zeros((64, 64, 3), np.uint8)
        last = frame
        frame = as_rgb8(frame, f"{name} frame {i}")
        if on_frame is not None:
            on_frame(i, frame, landmarks[i])
        if net is not None:
            pending.append((i, deep3d_crop(frame, landmarks[i])[0]))
            if len(pending) >= batch:
                flush()
    if net is not None:
        flush()
    if n != T:
        raise ValueError(f"{name}: the second decode gave {n} frames, the first {T}")
    return out


# -- the training-clip layout ---------------------------------------------------------------------
def write_clip(
    source: str | os.PathLike | VideoFrames,
    out_dir: str | os.PathLike,
    net=None,
    *,
    size: int = 512,
    detector: str = "hog",
    window: int = DEFAULT_WINDOW,
    progress: bool = True,
    name: str | None = None,
) -> tuple[Path, VideoTrack]:
    """A video (file or folder of frames) -> one clip of the training layout
    (:mod:`nofa.train.video_data`, docs/datasets.md) in `out_dir`/`name` (default: the
    video's file stem):

        frames/00000.png ...   EG3D crops (size x size) of the smoothed landmarks
        dataset.json           EG3D labels per frame
        landmarks.npy          [T, 68, 2] smoothed landmarks in crop pixels; NaN rows for the
                               frames that were interpolated (the trainer skips those)
        coeffs.npy             [T, 257] Deep3DFaceRecon coefficients (only with `net`)
        crop_to_photo.npy      [T, 3, 3] crop pixels -> video-frame pixels
        video.json             source, fps, sizes, filter, pose source, replaced frames

    Returns (clip folder, track)."""
    from ..io.atomic import atomic_write, atomic_write_bytes
    from ..io.coeffs import save_deep3d
    from ..io.eg3d_labels import write_dataset_json
    from .eg3d_crop import eg3d_crop

    if not isinstance(size, int) or size < 64:
        raise ValueError(f"size must be an int >= 64, got {size!r}")
    frames = source if isinstance(source, VideoFrames) else VideoFrames(source)
    clip = Path(out_dir) / (name or frames.source.stem)
    (clip / "frames").mkdir(parents=True, exist_ok=True)
    crop_lm: list[np.ndarray] = []  # [68, 2] per frame, crop pixels
    to_photo: list[np.ndarray] = []  # [3, 3] per frame
    names: list[str] = []

    def write(i: int, frame: np.ndarray, lm: np.ndarray) -> None:
        from PIL import Image

        crop, affine = eg3d_crop(frame, lm, size)
        m = np.eye(3)
        m[:2] = affine
        fn = f"{i:05d}.png"
        Image.fromarray(crop).save(clip / "frames" / fn)
        crop_lm.append(lm @ m[:2, :2].T + m[:2, 2])
        to_photo.append(np.linalg.inv(m))
        names.append(fn)

    track = track_video(
        frames, net, detector=detector, window=window, progress=progress, on_frame=write
    )
    T = len(track)
    # stale frames of an earlier, longer run of the same clip would be read as part of it
    keep = set(names)
    for old in sorted((clip / "frames").glob("*.png")):
        if old.name not in keep:
            old.unlink()
    lm = np.stack(crop_lm).astype(np.float32)
    lm[track.replaced] = np.nan
    write_dataset_json(clip / "dataset.json", list(zip(names, track.labels)))
    atomic_write(clip / "landmarks.npy", lambda t: np.save(t, lm))
    atomic_write(clip / "crop_to_photo.npy", lambda t: np.save(t, np.stack(to_photo)))
    if track.coeffs is not None:
        save_deep3d(clip / "coeffs.npy", track.coeffs)
    elif (clip / "coeffs.npy").exists():
        (clip / "coeffs.npy").unlink()  # from an earlier run with the regressor: now stale
    info = {
        "source": track.source,
        "fps": track.fps,
        "frames": T,
        "frame_size": list(track.frame_size),
        "crop_size": size,
        "crop": "EG3D in-the-wild crop of the smoothed landmarks (nofa.faces.eg3d_crop)",
        "smoothing": f"Savitzky-Golay, quadratic, window {window} frames, zero-phase",
        "pose_source": track.pose_source,
        "replaced_frames": track.replaced_frames,
        "notes": track.notes,
    }
    atomic_write_bytes((json.dumps(info, indent=1) + "\n").encode(), clip / "video.json")
    return clip, track
