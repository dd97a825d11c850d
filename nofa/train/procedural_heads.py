"""Procedural talking heads: synthetic face-video clips written in the real dataset formats
(docs/datasets.md), so the video stages can be exercised and measured without face-video
data (the CPU proof that the video stages learn).

A head is a signed-distance function (nofa.models.procedural_head.synthetic_head: smooth
union of ellipsoids: cranium, lower face, nose, ears, neck; hair a clipped ellipsoid;
sphere tracer nofa.render.sdf) placed in EG3D's world frame (y up,
the face looks along +z, size matched to nofa.faces.LANDMARKS_3D), sphere-traced from
EG3D cameras (nofa.render.default_label, nofa.render.generate_rays), Lambert-shaded, with
the face painted in face coordinates (x, y) from its own 68 landmarks. So a frame is framed
like an FFHQ/EG3D crop and its landmarks are exact by construction.

Identity (8 numbers in [-1, 1], written to alpha[:8], the rest 0): face width, face length,
eye spacing, skin lightness, skin warmth, hair lightness, hair warmth, nose size.
Expression (4 numbers in [0, 1], written to beta[:4], the rest 0): jaw opening (the lower
face drops and a dark mouth interior opens), smile (mouth corners up and wider), brow
raise, blink (upper lids down).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path

import numpy as np
import torch

from ..faces import LANDMARKS_3D
from ..io.atomic import atomic_write, atomic_write_text
from ..io.coeffs import (
    DEEP3D_SLICES,
    DEEP3D_WIDTH,
    save_deep3d,
    save_deep3d_folder,
    save_expression,
)
from ..io.eg3d_labels import eg3d_label_to_deep3d, write_dataset_json
from ..models.procedural_head import JAW_DROP, SdfHead, synthetic_head
from ..render import default_label, generate_rays
from ..render.sdf import ray_sphere_bounds, sphere_trace

__all__ = [
    "EXPRESSION_NAMES",
    "IDENTITY_NAMES",
    "HeadIdentity",
    "audio_expressions",
    "expression_trajectory",
    "head_landmarks2d",
    "head_landmarks3d",
    "render_heads",
    "write_synthetic_video_dataset",
]

IDENTITY_NAMES = (
    "face_width",
    "face_length",
    "eye_spacing",
    "skin_lightness",
    "skin_warmth",
    "hair_lightness",
    "hair_warmth",
    "nose_size",
)
EXPRESSION_NAMES = ("jaw_open", "smile", "brow_raise", "blink")

_MOUTH_Y = -0.125  # mouth line of LANDMARKS_3D (world units)


@dataclasses.dataclass(frozen=True)
class HeadIdentity:
    """One synthetic person: `params` [8] in [-1, 1] (IDENTITY_NAMES), `background` RGB in [0,
    1]."""

    params: tuple[float, ...]
    background: tuple[float, float, float] = (0.55, 0.55, 0.55)

    def __post_init__(self) -> None:
        p = np.asarray(self.params, np.float64)
        if p.shape != (len(IDENTITY_NAMES),) or not np.isfinite(p).all():
            raise ValueError(
                f"params must be {len(IDENTITY_NAMES)} finite numbers "
                f"({', '.join(IDENTITY_NAMES)}), "
                f"got {self.params!r}"
            )
        if len(self.background) != 3:
            raise ValueError(f"background must be an RGB triple in [0, 1], got {self.background!r}")

    @staticmethod
    def random(rng: np.random.Generator) -> HeadIdentity:
        params = tuple(float(v) for v in rng.uniform(-1, 1, len(IDENTITY_NAMES)))
        bg = rng.uniform(0.25, 0.85) * np.ones(3) + rng.uniform(-0.12, 0.12, 3)
        return HeadIdentity(params, tuple(float(v) for v in np.clip(bg, 0, 1)))

    def value(self, name: str) -> float:
        return self.params[IDENTITY_NAMES.index(name)]

    @property
    def width(self) -> float:
        return 1.0 + 0.08 * self.value("face_width")

    @property
    def length(self) -> float:
        return 1.0 + 0.06 * self.value("face_length")

    @property
    def skin(self) -> np.ndarray:
        light, warm = self.value("skin_lightness"), self.value("skin_warmth")
        base = (
            np.array([0.80, 0.60, 0.48]) * (1.0 + 0.28 * light)
            + np.array([0.04, 0.0, -0.05]) * warm
        )
        if light < -0.4:  # darker skin tones
            base = base * (0.55 + 0.45 * (light + 1) / 0.6)
        return np.clip(base, 0.05, 1.0)

    @property
    def hair(self) -> np.ndarray:
        light, warm = self.value("hair_lightness"), self.value("hair_warmth")
        level = 0.06 + 0.32 * (light + 1) ** 1.6 / 2**1.6
        return np.clip(
            level * np.array([1.0, 0.82, 0.62]) + 0.12 * max(warm, 0) * np.array([0.6, 0.25, 0.0]),
            0,
            1,
        )


# -- landmarks ---------------------------------------------------------------------------------
def head_landmarks2d(identity: HeadIdentity, expression) -> np.ndarray:
    """The 68 landmarks' face coordinates (x, y) [68, 2] (world units, dlib order) of a head
    with `expression` [4]: LANDMARKS_3D scaled by the identity and moved by the expression."""
    jaw, smile, brow, blink = (
        float(v) for v in np.clip(np.asarray(expression, np.float64)[:4], 0, 1)
    )
    p = LANDMARKS_3D[:, :2].copy()
    p[:, 0] *= identity.width
    p[:, 1] = _MOUTH_Y + (p[:, 1] - _MOUTH_Y) * identity.length
    spacing = 1.0 + 0.07 * identity.value("eye_spacing")
    for eye in (range(36, 42), range(42, 48)):
        idx = list(eye)
        c = p[idx].mean(0)
        p[idx, 0] += c[0] * (spacing - 1)
    # brows
    p[17:27, 1] += 0.022 * brow
    # blink: the upper lids move onto the lower lids
    for upper, lower in (((37, 38), (41, 40)), ((43, 44), (47, 46))):
        for u, l in zip(upper, lower):
            p[u, 1] += (p[l, 1] - p[u, 1]) * 0.92 * blink
    # mouth: corners up and out for a smile; lower lip, chin and lower jaw down for jaw opening
    mouth = np.arange(48, 68)
    cx = p[mouth, 0].mean()
    half = (p[54, 0] - p[48, 0]) / 2
    u = (p[mouth, 0] - cx) / half
    p[mouth, 0] = cx + (p[mouth, 0] - cx) * (1 + 0.3 * smile)
    p[mouth, 1] += 0.03 * smile * u**2 - 0.004 * smile
    drop = JAW_DROP * jaw
    lower = [55, 56, 57, 58, 59, 65, 66, 67]
    p[lower, 1] -= drop * (1 - 0.55 * u[[i - 48 for i in lower]] ** 2)
    for i in range(3, 14):  # jaw contour: the chin drops most
        w = max(0.0, 1 - abs(i - 8) / 5.5)
        p[i, 1] -= 0.75 * drop * w
    return p


# -- geometry ---------------------------------------------------------------------------------
# NumPy: these are many small element-wise ops, where NumPy's per-op cost is far below torch's
# on a busy CPU.
def _head(identity: HeadIdentity, expression) -> SdfHead:
    """The head's SDF (parts: skin, hair) with `expression` [4] (only the jaw moves it)."""
    jaw = float(np.clip(np.asarray(expression, np.float64)[:4], 0, 1)[0])
    nose = 1.0 + 0.15 * identity.value("nose_size")
    return synthetic_head(identity.width, identity.length, nose, jaw)


_BOUND_C = (0.0, -0.08, 0.0)  # bounding sphere of head and neck (the frame shows no more)
_BOUND_R = 0.45


def _trace(
    head: SdfHead, origins: np.ndarray, dirs: np.ndarray, steps: int = 48, eps: float = 3e-4
) -> tuple[np.ndarray, np.ndarray]:
    """Sphere tracing of rays [R, 3] (float64) -> (hit [R] bool, t [R] distance along the ray)."""
    near, far, valid = ray_sphere_bounds(origins, dirs, _BOUND_C, _BOUND_R)
    return sphere_trace(head.sdf, origins, dirs, near, far, valid, steps, eps)


def head_landmarks3d(identity: HeadIdentity, expression) -> np.ndarray:
    """The 68 landmarks on the head's surface [68, 3] (world): face coordinates (x, y) from
    `head_landmarks2d`, z where a ray along -z from the front first meets the head."""
    xy = head_landmarks2d(identity, expression)
    o = np.concatenate([xy, np.full((68, 1), 0.7)], 1)
    dirs = np.tile(np.array([0.0, 0.0, -1.0]), (68, 1))
    hit, t = _trace(_head(identity, expression), o, dirs)
    z = np.where(hit, 0.7 - t, 0.0)
    return np.concatenate([xy, z[:, None]], 1)


# -- shading -----------------------------------------------------------------------------------
def _soft(d: np.ndarray, width: float) -> np.ndarray:
    """1 inside (d < 0), 0 outside, smooth over `width`."""
    return np.clip(0.5 - d / width, 0, 1)


def _ellipse(x, y, cx, cy, ax, ay) -> np.ndarray:
    """Approximate signed distance to an axis-aligned ellipse (world units)."""
    return (np.sqrt(((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2) - 1) * min(ax, ay)


def _segment_distance(x, y, pts: np.ndarray) -> np.ndarray:
    """Distance from points to a polyline [K, 2]."""
    best = np.full_like(x, 1e3)
    for a, b in zip(pts[:-1], pts[1:]):
        ab = b - a
        t = np.clip(((x - a[0]) * ab[0] + (y - a[1]) * ab[1]) / max(float(ab @ ab), 1e-12), 0, 1)
        best = np.minimum(best, np.hypot(x - a[0] - t * ab[0], y - a[1] - t * ab[1]))
    return best


def _albedo(
    identity: HeadIdentity,
    lm: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    z: np.ndarray,
    hair_w: np.ndarray,
    px: float,
) -> np.ndarray:
    """Surface colour [R, 3] at surface points (x, y, z) [R]: the face painted in (x, y) from
    the landmarks `lm` [68, 2] where the surface faces forward; `px` is the pixel size in
    world units (edge softness)."""
    skin, hair = identity.skin, identity.hair
    col = np.tile(skin, (len(x), 1))
    soft = max(px, 0.002)
    front = np.clip((z - 0.06) / 0.05, 0, 1)

    def paint(mask: np.ndarray, colour) -> None:
        m = (mask * front)[:, None]
        col[:] = col * (1 - m) + np.asarray(colour) * m

    for sx in (-1, 1):  # cheeks a little redder
        blush = np.exp(-(((x - sx * 0.085) / 0.04) ** 2 + ((y + 0.065) / 0.03) ** 2))
        paint(0.25 * blush, skin * np.array([1.05, 0.8, 0.78]))
    for eye in (range(36, 42), range(42, 48)):
        pts = lm[list(eye)]
        c = pts.mean(0)
        half_w = (pts[:, 0].max() - pts[:, 0].min()) / 2
        socket = np.exp(-(((x - c[0]) / (1.5 * half_w)) ** 2 + ((y - c[1] - 0.005) / 0.03) ** 2))
        paint(0.35 * socket, skin * 0.78)
        # the opening between the upper lid (37, 38 / 43, 44) and the lower lid (40, 41 / 46, 47)
        top, bottom = pts[1:3, 1].mean(), pts[4:6, 1].mean()
        open_h = max(top - bottom, 1e-4)
        cy = (top + bottom) / 2
        inside = _soft(_ellipse(x, y, c[0], cy, half_w, open_h / 2 + 1e-4), soft)
        r = np.hypot(x - c[0], y - cy)
        iris, pupil = _soft(r - 0.0115, soft)[:, None], _soft(r - 0.006, soft)[:, None]
        eye_col = np.array([0.93, 0.92, 0.88]) * (1 - iris) + np.array([0.3, 0.2, 0.12]) * iris
        eye_col = eye_col * (1 - pupil) + 0.03 * pupil
        m = (inside * front)[:, None]
        col[:] = col * (1 - m) + eye_col * m
        # lash line along the upper lid (stays, thin, when the eye closes)
        lash = _soft(np.abs(y - (cy + open_h / 2)) - 0.0035, soft) * _soft(
            np.abs(x - c[0]) - half_w * 1.05, soft
        )
        paint(0.9 * lash, hair * 0.5)
    for brow in (lm[17:22], lm[22:27]):
        paint(0.92 * _soft(_segment_distance(x, y, brow) - 0.0075, soft), hair * 0.85)
    for sx in (-1, 1):  # nostrils
        paint(
            0.8 * _soft(_ellipse(x, y, sx * 0.0135, lm[33, 1] + 0.004, 0.008, 0.004), soft),
            skin * 0.35,
        )
    # mouth: lips between the outer (48-59) and inner (60-67) contours, a dark interior inside
    cx, half = (lm[48, 0] + lm[54, 0]) / 2, (lm[54, 0] - lm[48, 0]) / 2
    u = np.clip((x - cx) / half, -1.2, 1.2)
    mid = (lm[62, 1] + lm[66, 1]) / 2
    bend = np.maximum(1 - u**2, 0)
    line = lm[48, 1] - (lm[48, 1] - mid) * bend  # through the corners and the middle of the lips
    inner_top = line + (lm[62, 1] - mid) * bend
    inner_bot = line - (mid - lm[66, 1]) * bend
    outer_top = inner_top + (lm[51, 1] - lm[62, 1]) * np.sqrt(bend) + 0.002
    outer_bot = inner_bot - (lm[66, 1] - lm[57, 1]) * np.sqrt(bend) - 0.002
    within = _soft(np.abs(u) - 1, soft / half)
    lip = 0.7 * skin * np.array([0.95, 0.62, 0.62]) + 0.3 * np.array([0.62, 0.33, 0.33])
    paint(0.95 * within * _soft(y - outer_top, soft) * _soft(outer_bot - y, soft), lip)
    opening = np.clip((lm[62, 1] - lm[66, 1] - 0.004) / 0.006, 0, 1)
    interior = opening * within * _soft(y - inner_top, soft) * _soft(inner_bot - y, soft)
    teeth = interior * _soft((inner_top - 0.006) - y, soft) * _soft(np.abs(u) - 0.55, 0.1)
    paint(interior, [0.07, 0.02, 0.03])
    paint(0.9 * teeth, [0.86, 0.84, 0.78])
    # hair last: its own colour wherever the hair surface is the nearest part
    hw = hair_w[:, None]
    streak = 1.0 + 0.08 * np.sin(x * 180 + 30 * y)[:, None]
    return np.clip(col * (1 - hw) + hair * streak * hw, 0, 1)


_LIGHT = (np.array([-0.35, 0.45, 1.0]) / np.linalg.norm([-0.35, 0.45, 1.0])).astype(np.float32)
_TETRA = np.array([[1, -1, -1], [-1, -1, 1], [-1, 1, -1], [1, 1, 1]], np.float32)


def render_heads(
    identity: HeadIdentity, expressions, labels, size: int, supersample: int = 2
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render one head with per-frame expressions [F, 4] from cameras `labels` [F, 25].

    Returns images uint8 [F, size, size, 3], depth float32 [F, size, size] (distance along
    the ray; 0 where the ray misses) and landmarks float32 [F, 68, 2] (pixel coordinates,
    x right, y down, pixel centres at +0.5). `supersample` renders at that many times the
    size and averages, for smooth edges."""
    expressions = np.asarray(expressions, np.float64)
    if expressions.ndim != 2 or expressions.shape[1] != 4 or not np.isfinite(expressions).all():
        raise ValueError(
            f"expressions must be finite [F, 4] ({', '.join(EXPRESSION_NAMES)}), "
            f"got shape {list(expressions.shape)}"
        )
    labels = torch.as_tensor(labels, dtype=torch.float32).reshape(-1, 25)
    if expressions.shape[0] != labels.shape[0]:
        raise ValueError(
            "expressions [F, 4] and labels [F, 25] must have the same F, got "
            f"{expressions.shape[0]} "
            f"and {labels.shape[0]}"
        )
    if not isinstance(size, int) or size < 8:
        raise ValueError(f"size must be an int >= 8, got {size!r}")
    ss = max(1, int(supersample))
    res = size * ss
    origins, dirs = (
        a.numpy() for a in generate_rays(labels, res)
    )  # float32: twice as fast as float64
    F = len(labels)
    images = np.zeros((F, size, size, 3), np.uint8)
    depths = np.zeros((F, size, size), np.float32)
    marks = np.zeros((F, 68, 2), np.float32)
    bg = np.asarray(identity.background, np.float32)
    rows = np.repeat(np.linspace(0, 1, res, dtype=np.float32), res)[:, None]
    # one pixel in world units at the face's distance (2.5): edge softness of the painted features
    px = 2.5 / (float(labels[0, 16]) * res)
    for f in range(F):
        e = expressions[f]
        head = _head(identity, e)
        o, d = origins[f], dirs[f]
        # Marched in float64, as the clips always were (rays are float32, the distances float64).
        hit, t = _trace(head, o.astype(np.float64), d.astype(np.float64), eps=min(3e-4, 0.1 * px))
        img = bg * (1.08 - 0.16 * rows)
        idx = np.nonzero(hit)[0]
        if idx.size:
            p = o[idx] + d[idx] * t[idx, None]
            x, y, z = p[:, 0], p[:, 1], p[:, 2]
            n = sum(_TETRA[i] * head.sdf(p + 1e-3 * _TETRA[i])[:, None] for i in range(4))
            n /= np.linalg.norm(n, axis=-1, keepdims=True) + 1e-12
            parts = head.parts(p)
            skin_d, hair_d = parts["skin"], parts["hair"]
            hair_w = np.clip((skin_d - hair_d) / 0.004 + 0.5, 0, 1)
            alb = _albedo(identity, head_landmarks2d(identity, e), x, y, z, hair_w, px)
            diffuse = np.maximum(n @ _LIGHT, 0)[:, None]
            facing = np.clip(-(n * d[idx]).sum(-1), 0, 1)[:, None]
            half_vec = _LIGHT - d[idx]
            half_vec /= np.linalg.norm(half_vec, axis=-1, keepdims=True)
            spec = np.maximum((n * half_vec).sum(-1), 0)[:, None] ** 24
            img = img.copy()
            img[idx] = np.clip(
                alb * (0.32 + 0.72 * diffuse - 0.15 * (1 - facing) ** 3)
                + 0.08 * spec * (1 - hair_w[:, None]),
                0,
                1,
            )
        dep = np.where(hit, t, 0.0)
        img = img.reshape(size, ss, size, ss, 3).mean((1, 3))
        images[f] = (img * 255 + 0.5).astype(np.uint8)
        depths[f] = dep.reshape(size, ss, size, ss).max((1, 3))
        marks[f] = _project(head_landmarks3d(identity, e), labels[f].double().numpy(), size)
    return images, depths, marks


def _project(points: np.ndarray, label: np.ndarray, size: int) -> np.ndarray:
    """World points [K, 3] -> pixel coordinates [K, 2] of a `size` image through an EG3D label."""
    c2w = label[:16].reshape(4, 4)
    K = label[16:].reshape(3, 3)
    cam = (points - c2w[:3, 3]) @ c2w[:3, :3]
    uv = cam[:, :2] / cam[:, 2:3]
    u = K[0, 0] * uv[:, 0] + K[0, 1] * uv[:, 1] + K[0, 2]
    v = K[1, 1] * uv[:, 1] + K[1, 2]
    return np.stack([u, v], 1) * size


# -- clips -------------------------------------------------------------------------------------
def _smooth_curve(
    rng: np.random.Generator, T: int, key_every: float, low: float, high: float
) -> np.ndarray:
    """Random keyframes every ~key_every frames, cosine-interpolated; frame 0 = 0."""
    n = max(2, int(math.ceil(T / key_every)) + 1)
    keys = rng.uniform(low, high, n)
    keys[0] = 0.0
    pos = np.linspace(0, T - 1, n)
    t = np.arange(T)
    j = np.clip(np.searchsorted(pos, t, side="right") - 1, 0, n - 2)
    w = (t - pos[j]) / (pos[j + 1] - pos[j])
    w = (1 - np.cos(np.pi * w)) / 2
    return keys[j] * (1 - w) + keys[j + 1] * w


def expression_trajectory(rng: np.random.Generator, T: int) -> np.ndarray:
    """A clip's expressions [T, 4] (jaw, smile, brow, blink) in [0, 1]: smooth talking-like jaw
    motion, slower smile and brow changes, short blinks; frame 0 is neutral."""
    jaw = np.clip(_smooth_curve(rng, T, 3.0, -0.3, 1.1), 0, 1)
    smile = np.clip(_smooth_curve(rng, T, 8.0, -0.4, 1.1), 0, 1)
    brow = np.clip(_smooth_curve(rng, T, 7.0, -0.5, 1.1), 0, 1)
    blink = np.zeros(T)
    t = int(rng.integers(3, 10))
    while t < T:
        for k, v in zip(range(-1, 2), (0.55, 1.0, 0.55)):
            if 0 < t + k < T:
                blink[t + k] = max(blink[t + k], v)
        t += int(rng.integers(8, 20))
    return np.stack([jaw, smile, brow, blink], 1)


def _camera_path(
    rng: np.random.Generator, T: int, yaw_std: float, pitch_std: float
) -> tuple[np.ndarray, np.ndarray]:
    yaw0 = float(np.clip(rng.normal(0, yaw_std), -2 * yaw_std, 2 * yaw_std))
    pitch0 = float(np.clip(rng.normal(0, pitch_std), -2 * pitch_std, 2 * pitch_std))
    yaw = yaw0 + _smooth_curve(rng, T, 10.0, -0.06, 0.06)
    pitch = pitch0 + _smooth_curve(rng, T, 12.0, -0.03, 0.03)
    return yaw, pitch


def audio_expressions(
    rng: np.random.Generator, beta: np.ndarray, delay: int = 1, noise: float = 0.04
) -> np.ndarray:
    """What an audio-to-expression tool might give for true expressions beta [T, 64]: delayed
    by `delay` frames, smoothed over 3 frames, with Gaussian noise on the used channels."""
    T = beta.shape[0]
    used = np.abs(beta).max(0) > 0
    shifted = (
        np.concatenate([np.repeat(beta[:1], delay, 0), beta[: T - delay]], 0)
        if 0 < delay < T
        else beta.copy()
    )
    pad = np.concatenate([shifted[:1], shifted, shifted[-1:]], 0)
    smooth = (pad[:-2] + pad[1:-1] + pad[2:]) / 3
    return (smooth + rng.normal(0, noise, beta.shape) * used).astype(np.float32)


def _save_png(path: Path, image: np.ndarray) -> None:
    from PIL import Image

    atomic_write(path, lambda t: Image.fromarray(image).save(t, format="PNG"))


def write_synthetic_video_dataset(
    root: str | os.PathLike,
    clips: int = 24,
    frames: int = 32,
    size: int = 64,
    seed: int = 0,
    audio: bool = True,
    depth: bool = False,
    mat: bool = False,
    heldout: int = 0,
    yaw_std: float = 0.2,
    pitch_std: float = 0.08,
    supersample: int = 2,
    progress: bool = False,
) -> Path:
    """Write `clips` clips of `frames` procedural talking-head frames (size x size) to `root`
    in the real dataset layout (docs/datasets.md): frames/*.png, coeffs.npy [T, 257] (or,
    mat=True, coeffs/*.mat per frame), dataset.json, landmarks.npy [T, 68, 2],
    audio_exp.npy [T, 64] (audio=True), depth/*.npy (depth=True), heldout.txt naming the last
    `heldout` clips (heldout > 0) and synthetic.json (what alpha[:8] and beta[:4] mean).

    Coefficients: id[:8] = the identity, exp[:4] = the expression, angle/trans = the camera
    through eg3d_label_to_deep3d (so labels derived from them match dataset.json).
    Deterministic: the same arguments give the same files."""
    for name, v, lo in (("clips", clips, 1), ("frames", frames, 2), ("size", size, 8)):
        if not isinstance(v, int) or v < lo:
            raise ValueError(f"{name} must be an int >= {lo}, got {v!r}")
    if not 0 <= heldout < clips:
        raise ValueError(f"heldout must be in [0, clips), got {heldout}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    names = [f"clip{c:04d}" for c in range(clips)]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=clips * frames, desc="rendering clips", unit="frame")
    for c, name in enumerate(names):
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), c]))
        ident = HeadIdentity.random(rng)
        expr = expression_trajectory(rng, frames)
        yaw, pitch = _camera_path(rng, frames, yaw_std, pitch_std)
        labels = default_label(
            torch.tensor(yaw, dtype=torch.float32), torch.tensor(pitch, dtype=torch.float32)
        )
        images, depths, marks = render_heads(ident, expr, labels, size, supersample)
        d = root / name
        frame_names = [f"{i:05d}.png" for i in range(frames)]
        for i, fn in enumerate(frame_names):
            _save_png(d / "frames" / fn, images[i])
            if depth:
                atomic_write(
                    d / "depth" / f"{i:05d}.npy",
                    lambda t, i=i, depths=depths: np.save(t, depths[i]),
                )
        lab64 = labels.double().numpy()
        coeff = np.zeros((frames, DEEP3D_WIDTH), np.float32)
        coeff[:, DEEP3D_SLICES["id"].start : DEEP3D_SLICES["id"].start + len(IDENTITY_NAMES)] = (
            ident.params
        )
        coeff[:, DEEP3D_SLICES["exp"].start : DEEP3D_SLICES["exp"].start + 4] = expr
        for i in range(frames):
            angle, trans = eg3d_label_to_deep3d(lab64[i])
            coeff[i, DEEP3D_SLICES["angle"]] = angle
            coeff[i, DEEP3D_SLICES["trans"]] = trans
        if mat:
            save_deep3d_folder(d / "coeffs", coeff, [Path(fn).stem for fn in frame_names])
        else:
            save_deep3d(d / "coeffs.npy", coeff)
        write_dataset_json(d / "dataset.json", [(fn, lab64[i]) for i, fn in enumerate(frame_names)])
        atomic_write(d / "landmarks.npy", lambda t, marks=marks: np.save(t, marks))
        if audio:
            save_expression(
                d / "audio_exp.npy", audio_expressions(rng, coeff[:, DEEP3D_SLICES["exp"]])
            )
        if bar is not None:
            bar.update(frames)
    if bar is not None:
        bar.close()
    if heldout:
        atomic_write_text(root / "heldout.txt", "\n".join(names[-heldout:]) + "\n")
    meta = {
        "generator": "nofa.train.procedural_heads",
        "seed": int(seed),
        "clips": clips,
        "frames": frames,
        "size": size,
        "alpha": list(IDENTITY_NAMES),
        "beta": list(EXPRESSION_NAMES),
    }
    atomic_write_text(root / "synthetic.json", json.dumps(meta, indent=1) + "\n")
    return root
