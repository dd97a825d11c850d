"""EG3D's in-the-wild crop and Deep3DFaceRecon's alignment, from the 68 landmarks.

Re-implemented from the published behaviour of Deep3DFaceRecon's `align_img` and EG3D's
`crop_images_in_the_wild.py` (docs/faces.md, "Crop"):

1. Five points from the 68 landmarks (:func:`five_points`): left-eye centre, right-eye centre,
   nose tip, left and right mouth corner; the same five of the Basel Face Model mean face's
   68 landmarks (:func:`bfm_landmarks68`) are the 3D reference (not centred).
2. POS (:func:`deep3d_align`): the least-squares affine camera that projects the 3D five
   points onto the 2D ones (landmarks in y-up pixel-index coordinates), two rows of 4
   unknowns; scale `s` = mean norm of the two 3-vectors, `t` = the two offsets.
3. The photo is resized by `s' = rescale / s` (bicubic; `w = int(W s')`, `h = int(H s')`)
   and a `target` square is cut at `left = int(w/2 - target/2 + (t_x - W/2) s')`,
   `up = int(h/2 - target/2 + (H/2 - t_y) s')` (`int` truncates towards zero).
   Deep3DFaceRecon's network input: rescale 102, target 224 (:func:`deep3d_crop`).
   EG3D: rescale 300, target 1024, then the centre 700 square (offset 162) resized to 512
   with Lanczos (:func:`eg3d_crop`).

Coordinates: landmarks and the returned affines use nofa's convention everywhere (continuous
image-plane (x, y), x right, y down, pixel centres at integer + 0.5); the two published tools
use pixel indices (centres at integers) and y up for the fit, which is handled inside.

Out-of-image pixels (`padding`): "black" is what both published tools produce (PIL's crop
fills with zeros) and what Deep3DFaceRecon's network was trained on, so :func:`deep3d_crop`
uses it by default. "fade" (the default of :func:`eg3d_crop`) is FFHQ's treatment of its own
aligned images: the photo mirrored at its border, blurred progressively and faded to the
photo's median colour a quarter of the crop away. FFHQ-trained generators and the encoders
inverting them have seen such borders, never black bars (which an inversion reproduces as
black background or hair) nor rows of smeared edge pixels (which read as hair or streaks).
Pixels inside the photo are the same in both modes.
"""

from __future__ import annotations

import functools
import math
import numbers
from importlib import resources

import numpy as np

from .photo import as_rgb8

__all__ = [
    "DEEP3D_RESCALE",
    "DEEP3D_SIZE",
    "EG3D_CENTER_CROP",
    "EG3D_RESCALE",
    "EG3D_TARGET",
    "FIVE_POINT_INDICES",
    "PADDINGS",
    "bfm_landmarks68",
    "bfm_five_points",
    "deep3d_align",
    "deep3d_crop",
    "deep3d_landmarks",
    "eg3d_crop",
    "eg3d_crop_transform",
    "five_points",
]

# 0-based indices into the 68 landmarks averaged into each of the five points, in
# Deep3DFaceRecon's order: left-eye centre (points 37, 40 of the 1-based iBUG numbering),
# right-eye centre (43, 46), nose tip (31), left mouth corner (49), right mouth corner (55).
FIVE_POINT_INDICES: tuple[tuple[int, ...], ...] = ((36, 39), (42, 45), (30,), (48,), (54,))
DEEP3D_SIZE = 224
DEEP3D_RESCALE = 102.0
EG3D_TARGET = 1024
EG3D_RESCALE = 300.0
EG3D_CENTER_CROP = 700
PADDINGS = ("fade", "black")

# "fade" padding, in fractions of the side of the square being cut: the blur's sigma (FFHQ:
# 2 % of its crop) and the distance from the photo's border at which the fill has become the
# median colour (blur fully on at a quarter of it).
_FADE_SIGMA = 0.02
_FADE_DISTANCE = 0.25
# Above this many pixels the resized photo is not materialised: PIL resizes only the window
# (same filter, same coefficients up to rounding: a few pixels in 10^4 differ by 1 level).
_FULL_RESIZE_MAX_PIXELS = 16_000_000


@functools.lru_cache(maxsize=1)
def _bfm68() -> np.ndarray:
    text = resources.files(__package__).joinpath("data/bfm_mean_landmarks68.txt").read_text()
    lm = np.loadtxt(text.splitlines(), comments="#", dtype=np.float64)
    if lm.shape != (68, 3):  # a damaged installation, not a user error
        raise RuntimeError(
            f"nofa/faces/data/bfm_mean_landmarks68.txt: expected 68 x 3, got {lm.shape}"
        )
    lm.setflags(write=False)
    return lm


def bfm_landmarks68() -> np.ndarray:
    """The 68 landmarks of the Basel Face Model mean face [68, 3] (read-only), Deep3DFaceRecon's
    units and axes (x right, y up, z towards the camera). MIT licence (nofa/faces/data/LICENSE)."""
    return _bfm68()


def _five(points: np.ndarray) -> np.ndarray:
    return np.stack([points[list(idx)].mean(0) for idx in FIVE_POINT_INDICES])


def bfm_five_points() -> np.ndarray:
    """Deep3DFaceRecon's `lm3d_std`: :data:`FIVE_POINT_INDICES` of the BFM mean face [5, 3]."""
    return _five(_bfm68())


def _check68(landmarks: np.ndarray, name: str = "landmarks68", allow5: bool = False) -> np.ndarray:
    lm = np.asarray(landmarks, dtype=np.float64)
    shapes = ((68, 2), (5, 2)) if allow5 else ((68, 2),)
    if lm.shape not in shapes or not np.isfinite(lm).all():
        want = " or ".join(f"[{a}, {b}]" for a, b in shapes)
        raise ValueError(
            f"{name} must be finite (x, y) image pixels {want}, got shape {list(lm.shape)}"
            + ("" if lm.shape not in shapes else " with NaN or infinite values")
        )
    return lm


def five_points(landmarks68: np.ndarray) -> np.ndarray:
    """The five alignment points [5, 2] of 68 landmarks [68, 2] (image pixels, x right, y
    down): left-eye centre, right-eye centre, nose tip, left and right mouth corner."""
    return _five(_check68(landmarks68))


def _pos(points2d: np.ndarray, points3d: np.ndarray) -> tuple[float, np.ndarray]:
    """Deep3DFaceRecon's POS: affine camera [2 x 4] by least squares -> (s, t [2])."""
    n = len(points2d)
    a = np.zeros((2 * n, 8))
    a[0::2, 0:3] = points3d
    a[0::2, 3] = 1
    a[1::2, 4:7] = points3d
    a[1::2, 7] = 1
    k = np.linalg.lstsq(a, points2d.reshape(-1), rcond=None)[0]
    s = (np.linalg.norm(k[0:3]) + np.linalg.norm(k[4:7])) / 2
    return float(s), np.array([k[3], k[7]])


def deep3d_align(landmarks68: np.ndarray, image_height: int) -> tuple[float, np.ndarray]:
    """Deep3DFaceRecon's five-point POS fit of a face -> (s, t [2]).

    landmarks68: [68, 2] (or its five points [5, 2]) in nofa's image pixels (x right, y down,
    centres at +0.5); image_height: the photo's height H in pixels. The fit runs, as in
    Deep3DFaceRecon, on pixel indices with y up (`x - 0.5`, `H - 1 - (y - 0.5)`) against
    :func:`bfm_five_points`; `t` is in those coordinates, `s` in pixels per BFM unit.
    """
    lm = _check68(landmarks68, allow5=True)
    if not isinstance(image_height, (int, np.integer)) or image_height < 1:
        raise ValueError(f"image_height must be a positive integer, got {image_height!r}")
    pts = lm if len(lm) == 5 else _five(lm)
    idx = np.stack([pts[:, 0] - 0.5, image_height - 1 - (pts[:, 1] - 0.5)], 1)
    return _pos(idx, bfm_five_points())


def _window(
    shape: tuple[int, int], s: float, t: np.ndarray, target: int, rescale: float
) -> tuple[float, int, int, int, int]:
    """Deep3DFaceRecon's resize_n_crop_img geometry -> (s', w, h, left, up)."""
    h0, w0 = shape
    k = rescale / s
    w, h = int(w0 * k), int(h0 * k)
    left = int(w / 2 - target / 2 + (t[0] - w0 / 2) * k)
    up = int(h / 2 - target / 2 + (h0 / 2 - t[1]) * k)
    return k, w, h, left, up


def deep3d_landmarks(
    landmarks68: np.ndarray,
    image_shape: tuple[int, int],
    size: int = DEEP3D_SIZE,
    rescale: float = DEEP3D_RESCALE,
) -> np.ndarray:
    """68 landmarks [68, 2] (image pixels, y down) -> where Deep3DFaceRecon puts them on its
    aligned crop [68, 2]: pixel units of the `size` crop, y up, the frame its camera projects
    into (principal point (112, 112) at size 224). image_shape: the photo's (H, W).

    As its `resize_n_crop_img` computes them: `(p - t + (W/2, H/2)) s' - (w/2 - size/2,
    h/2 - size/2)` on y-up pixel indices, with the integer resized sizes `w`, `h`.
    """
    lm = _check68(landmarks68)
    h0, w0 = _check_shape(image_shape)
    s, t = deep3d_align(lm, h0)
    k, w, h, _, _ = _window((h0, w0), s, t, size, rescale)
    idx = np.stack([lm[:, 0] - 0.5, h0 - 1 - (lm[:, 1] - 0.5)], 1)
    return (idx - t + (w0 / 2, h0 / 2)) * k - (w / 2 - size / 2, h / 2 - size / 2)


def _check_shape(image_shape) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in tuple(image_shape)[:2])
    except (TypeError, ValueError):
        raise ValueError(f"image_shape must be (height, width), got {image_shape!r}") from None
    if h < 1 or w < 1:
        raise ValueError(f"image_shape must be positive (height, width), got {image_shape!r}")
    return h, w


def _check_size(size, name: str = "size") -> int:
    if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < 8:
        raise ValueError(f"{name} must be an integer >= 8, got {size!r}")
    return int(size)


def _check_padding(padding: str) -> str:
    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
    return padding


def _resized_window(
    img: np.ndarray, w: int, h: int, left: int, up: int, side: int, padding: str
) -> np.ndarray:
    """The [side, side] window at (left, up) of `img` resized (bicubic, PIL) to (w, h), with
    the out-of-image part filled as `padding` says -> uint8 [side, side, 3]."""
    from PIL import Image

    h0, w0 = img.shape[:2]
    out = np.zeros((side, side, 3), np.uint8)
    a0, a1 = max(left, 0), min(left + side, w)
    b0, b1 = max(up, 0), min(up + side, h)
    inside = a1 > a0 and b1 > b0
    if inside:
        pil = Image.fromarray(img)
        if w * h <= _FULL_RESIZE_MAX_PIXELS:
            part = np.asarray(pil.resize((w, h), Image.BICUBIC))[b0:b1, a0:a1]
        else:
            box = (a0 * w0 / w, b0 * h0 / h, a1 * w0 / w, b1 * h0 / h)
            part = np.asarray(pil.resize((a1 - a0, b1 - b0), Image.BICUBIC, box=box))
        out[b0 - up : b1 - up, a0 - left : a1 - left] = part
    if padding == "black" or (
        inside and a0 == left and b0 == up and a1 - a0 == side and b1 - b0 == side
    ):
        return out
    return _fade_fill(img, out, w, h, left, up, side, part if inside else None)


def _fade_fill(
    img: np.ndarray,
    out: np.ndarray,
    w: int,
    h: int,
    left: int,
    up: int,
    side: int,
    inside: np.ndarray | None,
) -> np.ndarray:
    """FFHQ-style fill of the window's out-of-photo pixels: the photo mirrored at its border
    (bilinear), blended towards a blurred copy and then towards the median colour with the
    distance from the border (window pixels)."""
    from scipy.ndimage import gaussian_filter

    h0, w0 = img.shape[:2]

    def axis(start: int, n: int, resized: int, original: int):
        # window pixel i -> continuous photo coordinate, mirrored into the photo
        x = (start + np.arange(side) + 0.5) * original / resized
        dist = np.maximum(0.0, np.maximum(-x, x - original)) * resized / original
        period = 2 * original
        m = np.mod(x, period)
        m = np.where(m > original, period - m, m) - 0.5  # pixel-index coordinate
        m = np.clip(m, 0, original - 1)
        i0 = np.floor(m).astype(int)
        i1 = np.minimum(i0 + 1, original - 1)
        return i0, i1, (m - i0)[:, None], dist

    x0, x1, fx, dx = axis(left, side, w, w0)
    y0, y1, fy, dy = axis(up, side, h, h0)
    f = img.astype(np.float32)
    rows = f[y0] * (1 - fy[:, :, None]) + f[y1] * fy[:, :, None]
    mirrored = rows[:, x0] * (1 - fx[None, :, :]) + rows[:, x1] * fx[None, :, :]
    blurred = gaussian_filter(mirrored, sigma=(_FADE_SIGMA * side, _FADE_SIGMA * side, 0))
    median = np.median((inside if inside is not None else img).reshape(-1, 3), axis=0)
    u = np.clip(np.maximum(dy[:, None], dx[None, :]) / (_FADE_DISTANCE * side), 0, 1)[..., None]
    fill = mirrored + (blurred - mirrored) * np.clip(4 * u, 0, 1)
    fill = fill + (median - fill) * u
    outside = np.maximum(dy[:, None], dx[None, :]) > 0
    res = out.copy()
    res[outside] = np.clip(np.round(fill[outside]), 0, 255).astype(np.uint8)
    return res


def deep3d_crop(
    image: np.ndarray,
    landmarks68: np.ndarray,
    size: int = DEEP3D_SIZE,
    rescale: float = DEEP3D_RESCALE,
    *,
    padding: str = "black",
) -> tuple[np.ndarray, np.ndarray]:
    """The crop Deep3DFaceRecon's `align_img` feeds its network -> (uint8 [size, size, 3],
    affine [2, 3] mapping image pixels to crop pixels).

    image: any array :func:`nofa.faces.as_rgb8` accepts, [H, W(, C)]; landmarks68: [68, 2]
    (or five points [5, 2]) in its pixels (x right, y down, centres at +0.5). The photo is
    resized by `rescale / s` (bicubic) and the `size` square cut as in the module docstring.
    padding: "black" (default; what Deep3DFaceRecon was trained on) or "fade".
    """
    img = as_rgb8(image, "image")
    lm = _check68(landmarks68, allow5=True)
    size = _check_size(size)
    if (
        not isinstance(rescale, numbers.Real)
        or isinstance(rescale, bool)
        or not math.isfinite(rescale)
        or rescale <= 0
    ):
        raise ValueError(f"rescale must be a positive number, got {rescale!r}")
    _check_padding(padding)
    h0, w0 = img.shape[:2]
    s, t = deep3d_align(lm, h0)
    k, w, h, left, up = _window((h0, w0), s, t, size, rescale)
    if w < 1 or h < 1:
        raise ValueError(f"landmarks68: the face is too large for a {size} px crop of this image")
    crop = _resized_window(img, w, h, left, up, size, padding)
    affine = np.array([[w / w0, 0.0, -left], [0.0, h / h0, -up]])
    return crop, affine


def eg3d_crop_transform(
    landmarks68: np.ndarray, image_shape: tuple[int, int], size: int = 512
) -> np.ndarray:
    """The affine [2, 3] from image pixels to pixels of :func:`eg3d_crop`'s `size` crop, from
    the landmarks alone (no pixels touched)."""
    lm = _check68(landmarks68, allow5=True)
    h0, w0 = _check_shape(image_shape)
    size = _check_size(size)
    s, t = deep3d_align(lm, h0)
    _, w, h, left, up = _window((h0, w0), s, t, EG3D_TARGET, EG3D_RESCALE)
    off = int(EG3D_TARGET / 2 - EG3D_CENTER_CROP / 2)
    k = size / EG3D_CENTER_CROP
    return np.array([[k * w / w0, 0.0, -k * (left + off)], [0.0, k * h / h0, -k * (up + off)]])


def eg3d_crop(
    image: np.ndarray, landmarks68: np.ndarray, size: int = 512, *, padding: str = "fade"
) -> tuple[np.ndarray, np.ndarray]:
    """EG3D's in-the-wild crop -> (uint8 [size, size, 3], affine [2, 3] mapping image pixels
    to crop pixels, e.g. to paste results back).

    image: any array :func:`nofa.faces.as_rgb8` accepts, [H, W(, C)]; landmarks68: [68, 2]
    (or five points [5, 2]) in its pixels (x right, y down, centres at +0.5). The alignment
    of :func:`deep3d_crop` with rescale 300 onto a 1024 square, its centre 700 square
    resized to `size` with Lanczos (size 512: EG3D's own crop). padding: "fade" (default)
    or "black" (EG3D's own, bit for bit), module docstring.
    """
    from PIL import Image

    img = as_rgb8(image, "image")
    lm = _check68(landmarks68, allow5=True)
    size = _check_size(size)
    _check_padding(padding)
    h0, w0 = img.shape[:2]
    s, t = deep3d_align(lm, h0)
    _, w, h, left, up = _window((h0, w0), s, t, EG3D_TARGET, EG3D_RESCALE)
    if w < 1 or h < 1:
        raise ValueError("landmarks68: the face is too large for a crop of this image")
    off = int(EG3D_TARGET / 2 - EG3D_CENTER_CROP / 2)
    # Only the centre 700 square of the 1024 one is kept: cut it directly (same pixels).
    window = _resized_window(img, w, h, left + off, up + off, EG3D_CENTER_CROP, padding)
    crop = (
        window
        if size == EG3D_CENTER_CROP
        else np.array(Image.fromarray(window).resize((size, size), Image.LANCZOS))
    )
    return crop, eg3d_crop_transform(lm, (h0, w0), size)
