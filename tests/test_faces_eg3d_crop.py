"""EG3D's in-the-wild crop and Deep3DFaceRecon's alignment (nofa.faces.eg3d_crop), checked
against a step-by-step re-statement of the published rule written here (full-image PIL
resize, PIL crop), exact POS solutions, and the identity of re-cropping a crop. No dlib."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nofa.faces import (
    FIVE_POINT_INDICES,
    bfm_landmarks68,
    deep3d_align,
    deep3d_crop,
    deep3d_landmarks,
    eg3d_crop,
    eg3d_crop_transform,
    five_points,
)

PIL = pytest.importorskip("PIL.Image")
skimage_data = pytest.importorskip("skimage.data")


def _rotation(rx: float, ry: float, rz: float) -> np.ndarray:
    cx, sx, cy, sy, cz, sz = (f(a) for a in (rx, ry, rz) for f in (math.cos, math.sin))
    return (
        np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
        @ np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
        @ np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    )


def _face(scale: float, centre, angles=(0.1, -0.3, 0.05)) -> np.ndarray:
    """Landmarks [68, 2] (nofa pixels, y down) of the BFM mean face under an exact affine
    (orthographic) camera: `scale` px per unit, face origin at `centre`."""
    p = bfm_landmarks68() @ _rotation(*angles).T
    return np.stack([centre[0] + scale * p[:, 0], centre[1] - scale * p[:, 1]], 1)


def _published(img: np.ndarray, lm: np.ndarray, target: int, rescale: float):
    """The published rule step by step: five points, y up pixel indices, POS, full-image
    bicubic resize, PIL crop (zeros outside)."""
    h0, w0 = img.shape[:2]
    five = np.stack([lm[list(i)].mean(0) for i in FIVE_POINT_INDICES])
    idx = np.stack([five[:, 0] - 0.5, h0 - 1 - (five[:, 1] - 0.5)], 1)
    ref = np.stack([bfm_landmarks68()[list(i)].mean(0) for i in FIVE_POINT_INDICES])
    a = np.zeros((10, 8))
    a[0::2, :3], a[0::2, 3], a[1::2, 4:7], a[1::2, 7] = ref, 1, ref, 1
    k = np.linalg.lstsq(a, idx.reshape(-1), rcond=None)[0]
    s = rescale / ((np.linalg.norm(k[:3]) + np.linalg.norm(k[4:7])) / 2)
    w, h = int(w0 * s), int(h0 * s)
    left = int(w / 2 - target / 2 + (k[3] - w0 / 2) * s)
    up = int(h / 2 - target / 2 + (h0 / 2 - k[7]) * s)
    im = PIL.fromarray(img).resize((w, h), PIL.BICUBIC)
    return im.crop((left, up, left + target, up + target))


def test_five_points_order_and_values():
    lm = np.arange(136, dtype=float).reshape(68, 2)
    five = five_points(lm)
    np.testing.assert_allclose(five[0], (lm[36] + lm[39]) / 2)  # left-eye centre
    np.testing.assert_allclose(five[1], (lm[42] + lm[45]) / 2)  # right-eye centre
    np.testing.assert_allclose(five[2:], lm[[30, 48, 54]])  # nose tip, mouth corners
    assert FIVE_POINT_INDICES == ((36, 39), (42, 45), (30,), (48,), (54,))


def test_bfm_landmarks_are_the_shipped_file():
    lm = bfm_landmarks68()
    assert lm.shape == (68, 3) and not lm.flags.writeable
    # spot values of similarity_Lm3D_all.mat (nose tip, chin), and the face's proportions
    np.testing.assert_allclose(lm[30], [0.003253, -0.046179, 0.552442])
    np.testing.assert_allclose(lm[8], [0.002678, -0.824887, 0.196672])
    assert lm[36, 0] < 0 < lm[45, 0] and lm[8, 1] < lm[30, 1] < lm[27, 1]


def test_pos_recovers_an_exact_affine_camera():
    """Points made by an exact scaled rotation (orthographic) give back its scale and the
    translation in y-up pixel indices."""
    lm = _face(140.0, (300.25, 210.75), angles=(0.2, 0.4, -0.1))
    s, t = deep3d_align(lm, 480)
    assert abs(s - 140.0) < 1e-9
    np.testing.assert_allclose(t, [300.25 - 0.5, 480 - 1 - (210.75 - 0.5)], atol=1e-9)
    s5, t5 = deep3d_align(five_points(lm), 480)  # five points give the same
    assert abs(s5 - s) < 1e-9 and np.allclose(t5, t)


@pytest.mark.parametrize(
    "case",
    ["inside", "tight", "large", "odd-size", "five-points"],
)
def test_crops_equal_the_published_rule(case):
    """eg3d_crop(padding="black") and deep3d_crop are the published pipelines bit for bit."""
    photo = skimage_data.astronaut()
    lm = _face(120.0, (222.0, 190.0))
    if case == "tight":  # the 1024 square reaches far outside the photo
        photo, lm = photo[60:300, 130:320].copy(), lm - (130, 60)
    elif case == "large":  # shrunk: rescale 300 / s < 1
        lm = _face(300.0, (256.0, 230.0))
    elif case == "odd-size":
        photo, lm = photo[:401, 7:330].copy(), lm - (7, 0)
    arg = five_points(lm) if case == "five-points" else lm
    crop, affine = eg3d_crop(photo, arg, padding="black")
    high = _published(photo, lm, 1024, 300.0)
    ref = np.asarray(high.crop((162, 162, 862, 862)).resize((512, 512), PIL.LANCZOS))
    assert crop.shape == (512, 512, 3) and crop.dtype == np.uint8 and crop.flags.writeable
    np.testing.assert_array_equal(crop, ref)
    small, _ = deep3d_crop(photo, arg)
    np.testing.assert_array_equal(small, np.asarray(_published(photo, lm, 224, 102.0)))
    assert affine.shape == (2, 3)


def test_affine_maps_photo_to_crop():
    """A bright dot drawn in the photo lands where the affine says, in both crops."""
    photo = np.full((480, 400, 3), 90, np.uint8)
    lm = _face(110.0, (205.0, 230.0))
    x, y = 230, 200
    photo[y - 2 : y + 3, x - 2 : x + 3] = 255
    for fn, size in ((eg3d_crop, 512), (deep3d_crop, 224)):
        crop, a = fn(photo, lm, size)
        u, v = a @ [x + 0.5, y + 0.5, 1]
        grey = crop[..., 0].astype(float) - 90
        yy, xx = np.nonzero(grey > 40)
        wts = grey[yy, xx]
        assert (
            abs((xx + 0.5) @ wts / wts.sum() - u) < 0.3
            and abs((yy + 0.5) @ wts / wts.sum() - v) < 0.3
        )
    np.testing.assert_allclose(eg3d_crop_transform(lm, photo.shape[:2]), eg3d_crop(photo, lm)[1])


def test_recropping_a_crop_is_the_identity():
    """EG3D's crop of its own crop (the landmarks carried into it) is the crop: scale within
    0.5 %, centre within 1 % of the side. Not exactly: the rule truncates the resized size and
    the window's corner to whole pixels (up to ~3 px of its 700 square, 2.2 px at 512 here)."""
    photo_shape = (900, 700)
    for scale, centre, angles in (
        (150.0, (350.0, 420.0), (0.0, 0.0, 0.0)),
        (60.0, (200.0, 500.0), (0.2, -0.5, 0.15)),
        (400.0, (380.0, 400.0), (-0.3, 0.3, -0.2)),
    ):
        lm = _face(scale, centre, angles)
        a = eg3d_crop_transform(lm, photo_shape)
        in_crop = lm @ a[:, :2].T + a[:, 2]
        b = eg3d_crop_transform(in_crop, (512, 512))
        assert abs(b[0, 0] - 1) < 5e-3 and abs(b[1, 1] - 1) < 5e-3 and b[0, 1] == b[1, 0] == 0
        centre_moved = b[:, :2] @ [256, 256] + b[:, 2] - 256
        assert np.hypot(*centre_moved) < 0.01 * 512, centre_moved


def test_frontal_face_framing():
    """EG3D framing of the frontal mean face (orthographic): centred, eyes at 37 % of the
    height, mouth corners at 66 %, outer eye corners 37 % of the width apart."""
    lm = _face(100.0, (400.0, 300.0), angles=(0, 0, 0))
    a = eg3d_crop_transform(lm, (800, 800))
    c = (lm @ a[:, :2].T + a[:, 2]) / 512
    assert abs(c[[36, 45], 0].mean() - 0.5) < 0.01
    assert 0.36 < c[36:48, 1].mean() < 0.38 and 0.65 < c[[48, 54], 1].mean() < 0.67
    assert 0.36 < c[45, 0] - c[36, 0] < 0.38


def test_deep3d_landmarks_are_in_its_crop_frame():
    """deep3d_landmarks: the 224-crop frame, y up; the five points land on the reference's."""
    lm = _face(90.0, (260.0, 310.0), angles=(0, 0, 0))
    p = deep3d_landmarks(lm, (600, 500))
    ref = np.stack([bfm_landmarks68()[list(i)].mean(0) for i in FIVE_POINT_INDICES])[:, :2]
    five = np.stack([p[list(i)].mean(0) for i in FIVE_POINT_INDICES])
    np.testing.assert_allclose(five, 102 * ref + 112, atol=0.51)  # int sizes: < 0.5 px


def test_fade_padding_is_no_smear():
    """Outside the photo: "black" is zeros; "fade" mirrors and blurs towards the median colour,
    so rows beyond the border are not copies of the edge row, and inside pixels are equal."""
    photo = skimage_data.astronaut()[40:300, 120:330].copy()  # the head touches the top edge
    lm = _face(70.0, (105.0, 45.0))
    black, _ = eg3d_crop(photo, lm, padding="black")
    fade, a = eg3d_crop(photo, lm)
    top = int(math.ceil(a[1, 2])) + 3  # first crop row safely inside the photo
    assert top > 40 and (black[: top - 6] == 0).all()
    np.testing.assert_array_equal(fade[top:], black[top:])
    pad = fade[: top - 6].astype(float)
    assert pad.mean() > 60  # not black
    edge_copies = np.abs(pad - fade[top][None].astype(float)).mean(-1)
    assert np.median(edge_copies) > 8  # not the edge row repeated
    far = fade[:8].reshape(-1, 3).astype(float)
    assert np.abs(far - np.median(photo.reshape(-1, 3), 0)).mean() < 25  # faded to the median


def test_bad_inputs_are_named():
    photo = np.zeros((100, 100, 3), np.uint8)
    with pytest.raises(ValueError, match=r"landmarks68 must be finite .* \[68, 2\]"):
        five_points(np.zeros((5, 3)))
    with pytest.raises(ValueError, match="landmarks68 .*NaN"):
        eg3d_crop(photo, np.full((68, 2), np.nan))
    with pytest.raises(ValueError, match="image_height must be a positive integer"):
        deep3d_align(np.zeros((68, 2)), 0)
    lm = _face(30.0, (50.0, 50.0))
    with pytest.raises(ValueError, match="size must be an integer >= 8"):
        eg3d_crop(photo, lm, size=4)
    with pytest.raises(ValueError, match="padding must be one of"):
        eg3d_crop(photo, lm, padding="edge")
    with pytest.raises(ValueError, match="rescale must be a positive number"):
        deep3d_crop(photo, lm, rescale=-1.0)
    with pytest.raises(ValueError, match="image: expected an image"):
        eg3d_crop(np.zeros((4, 4, 2)), lm)
    with pytest.raises(ValueError, match=r"image_shape must be \(height, width\)"):
        eg3d_crop_transform(lm, "big")
