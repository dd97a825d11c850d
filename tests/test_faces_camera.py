"""Camera estimation from landmarks: accuracy on nofa's template head at known poses, mirror
symmetry, label layout; and nofa without the optional face packages."""

from __future__ import annotations

import math
import subprocess
import sys
import warnings

import numpy as np
import pytest

from nofa.faces import (
    LANDMARK_VIEW_MODEL,
    LANDMARKS_3D,
    MIRROR,
    estimate_camera,
    landmarks_seen_from,
    position_angles,
    view_angles,
)
from nofa.render.cameras import default_label


def _project(label: np.ndarray, size: int = 512) -> np.ndarray:
    """Where the camera fit's landmark model puts the 68 points in an image from `label`."""
    c2w = label[:16].reshape(4, 4)
    w2c = np.linalg.inv(c2w)
    pts = landmarks_seen_from(LANDMARK_VIEW_MODEL, *(math.radians(a) for a in view_angles(c2w)))
    cam = pts @ w2c[:3, :3].T + w2c[:3, 3]
    return (label[16] * cam[:, :2] / cam[:, 2:] + label[18]) * size


def test_template_is_symmetric():
    np.testing.assert_allclose(LANDMARKS_3D[MIRROR] * [-1, 1, 1], LANDMARKS_3D, atol=1e-12)
    assert (MIRROR[MIRROR] == np.arange(68)).all()
    # The view model: a mirrored face seen from -yaw is the face seen from +yaw, mirrored
    # (constant and pitch terms mirror, the yaw term mirrors with its sign flipped).
    v = LANDMARK_VIEW_MODEL
    for k, sign in ((0, 1), (1, -1), (2, 1)):
        np.testing.assert_allclose(v[k][MIRROR] * [-1, 1, 1], sign * v[k], atol=2e-4)


def test_view_model_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"template must be \[68, 3\] or \[3, 68, 3\]"):
        estimate_camera(np.full((68, 2), 256.0), 512, template=np.zeros((2, 68, 3)))


def test_pose_accuracy_on_template_landmarks():
    """Known cameras over yaw [-40, 40] x pitch [-20, 20]; the template's landmarks projected
    with 1.5 px noise (at 512): yaw/pitch error <= 3 deg median, <= 6 deg max."""
    rng = np.random.default_rng(0)
    errs = []
    for yaw in (-40, -20, 0, 20, 40):
        for pitch in (-20, 0, 20):
            lab = default_label(math.radians(yaw), math.radians(pitch)).double().numpy()
            fit = estimate_camera(_project(lab) + rng.normal(0, 1.5, (68, 2)), 512)
            gy, gp = view_angles(lab[:16].reshape(4, 4))
            errs.append((fit.yaw - gy, fit.pitch - gp))
            # The label is a proper EG3D one: rotation, radius 2.7, FFHQ intrinsics.
            c2w = fit.cam2world
            np.testing.assert_allclose(c2w[:3, :3] @ c2w[:3, :3].T, np.eye(3), atol=1e-9)
            assert abs(np.linalg.norm(c2w[:3, 3]) - 2.7) < 1e-9 and np.array_equal(
                c2w[3], [0, 0, 0, 1]
            )
            np.testing.assert_allclose(fit.label[16:], [4.2647, 0, 0.5, 0, 4.2647, 0.5, 0, 0, 1])
            assert fit.rms_px < 4 and fit.inliers == 51
    e = np.abs(np.array(errs))
    assert np.median(e, 0).max() <= 3 and e.max() <= 6, e


def test_exact_landmarks_give_the_exact_camera():
    lab = default_label(math.radians(25), math.radians(-12)).double().numpy()
    fit = estimate_camera(_project(lab), 512, radius=None)
    np.testing.assert_allclose(fit.cam2world, lab[:16].reshape(4, 4), atol=1e-5)
    assert np.allclose(
        position_angles(fit.cam2world), position_angles(lab[:16].reshape(4, 4)), atol=1e-3
    )
    # default_label places pitch -12 deg at EG3D's polar angle arccos(1 - 2v/pi), v = pi/2 + pitch
    from nofa.render.cameras import pitch_to_polar

    elevation = 90 - math.degrees(float(pitch_to_polar(math.radians(-12))))
    assert abs(abs(position_angles(fit.cam2world)[1]) - abs(elevation)) < 1e-3


def test_weights_drop_a_landmark():
    """A landmark with weight 0 plays no part: a gross error on it leaves the camera exact."""
    lab = default_label(math.radians(-15), math.radians(8)).double().numpy()
    lm = _project(lab)
    lm[19] += (60.0, -40.0)
    w = np.ones(68)
    w[19] = 0
    fit = estimate_camera(lm, 512, radius=None, weights=w)
    np.testing.assert_allclose(fit.cam2world, lab[:16].reshape(4, 4), atol=1e-5)
    assert fit.inliers == 50


def test_mirrored_landmarks_negate_yaw():
    lab = default_label(math.radians(30), math.radians(10)).double().numpy()
    lm = _project(lab)
    mirrored = np.stack([512 - lm[:, 0], lm[:, 1]], 1)[MIRROR]
    a, b = estimate_camera(lm, 512), estimate_camera(mirrored, 512)
    assert abs(a.yaw + b.yaw) < 1e-3 and abs(a.pitch - b.pitch) < 1e-3
    assert abs(a.yaw - view_angles(lab[:16].reshape(4, 4))[0]) < 1e-3


def test_bad_landmarks():
    with pytest.raises(ValueError, match=r"landmarks must be 68 finite"):
        estimate_camera(np.zeros((5, 2)), 512)
    with pytest.raises(ValueError, match=r"weights must be 68 finite non-negative"):
        estimate_camera(np.zeros((68, 2)), 512, weights=np.ones(5))
    with pytest.raises(ValueError, match=r"weights must be 68 finite non-negative"):
        estimate_camera(np.zeros((68, 2)), 512, weights=-np.ones(68))
    lm = np.zeros((68, 2))
    lm[3] = np.nan
    with pytest.raises(ValueError, match=r"landmarks must be 68 finite"):
        estimate_camera(lm, 512)


def _grid_errors(head) -> np.ndarray:
    """(yaw, pitch) errors [15, 2] of the whole chain on 256 px renders of `head` at the 5 x 3
    grid default_label(yaw, pitch), yaw in [-40, 40], pitch in [-20, 20] degrees
    (LookAtPoseSampler angles): dlib detection and landmarks -> alignment -> camera fit; view
    angles of the estimate minus those of the true camera."""
    from nofa.faces import prepare_face
    from nofa.pipelines.template_fit.photo_skin import render_uint8

    errs = []
    for yaw in (-40, -20, 0, 20, 40):
        for pitch in (-20, 0, 20):
            lab = default_label(math.radians(yaw), math.radians(pitch))
            img = render_uint8(lab, 256, head)
            assert (img < 250).any(-1).mean() > 0.2  # the head fills the frame
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                face = prepare_face(img)  # raises NoFaceError when no face is found
            gy, gp = view_angles(lab.double().numpy()[:16].reshape(4, 4))
            errs.append((face.camera.yaw - gy, face.camera.pitch - gp))
    return np.array(errs)


@pytest.mark.slow
def test_camera_accuracy_on_template_renders():
    """The camera-accuracy target, on renders of nofa's template head wearing the
    astronaut's face (PhotoSkinHead): <= 3 deg median, <= 6 deg max for yaw and pitch, a face
    at every pose. The calibration renders behind LANDMARK_VIEW_MODEL are at other poses
    (docs/faces.md). ~1 min CPU."""
    pytest.importorskip("dlib", reason="dlib-bin is not installed")
    from nofa.pipelines.template_fit.photo_skin import PhotoSkinHead

    errs = _grid_errors(PhotoSkinHead.from_photo())
    e = np.abs(errs)
    assert np.median(e, 0).max() <= 3 and e.max() <= 6, np.round(errs, 2)


def test_mirrored_photo_negates_yaw():
    pytest.importorskip("dlib", reason="dlib-bin is not installed")
    from skimage import data

    from nofa.faces import prepare_face

    img = data.astronaut()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a, b = prepare_face(img, size=256), prepare_face(img[:, ::-1].copy(), size=256)
    assert abs(a.camera.yaw + b.camera.yaw) < 2 and abs(a.camera.pitch - b.camera.pitch) < 2


def test_nofa_imports_without_face_packages():
    code = (
        "import sys; sys.modules['dlib'] = None; sys.modules['face_recognition_models'] = None\n"
        "import nofa, nofa.faces, nofa.io.eg3d_labels\n"
        "from nofa.cli import build_parser; build_parser().parse_args(['prepare', 'x.png', "
        "'--out', 'o'])\n"
        "from nofa.faces import FaceDependencyError, find_face\n"
        "import numpy as np\n"
        "try:\n    find_face(np.zeros((64, 64, 3), np.uint8))\n"
        "except FaceDependencyError as e:\n    print('ERR', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "pip install dlib-bin" in out.stdout
