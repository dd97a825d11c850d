"""Camera accuracy against ground truth, and its self-consistency on real photos
(docs/faces.md, "Accuracy").

Ground truth (no part of nofa's estimator involved in making it): the 68 landmarks of the
Basel Face Model mean face, posed by known Deep3DFaceRecon angles (pitch, yaw on a grid, roll
random within +-10 degrees) and projected through Deep3DFaceRecon's published camera (z = 10,
focal 1015, principal point 112 on its 224 crop; rotation written out here from its
definition). The translation is the one that makes the projection its own five-point
alignment (the only poses Deep3DFaceRecon outputs on its aligned crops); the points are then
put on a photo at a random scale and offset and Gaussian noise of --noise px (at the 224
crop's scale, per coordinate) is added. The estimate (nofa.faces.estimate_camera) is compared
with the true pose converted by EG3D's rule (deep3d_to_eg3d_label): view yaw and pitch
errors and the angle between the two rotations.

Self-consistency on a real photo (dlib; --skip-dlib leaves it out; default: the astronaut,
public domain): the mirrored photo (yaw must be negated, pitch unchanged), the photo
rotated by +-20 degrees, scaled by 0.5 and 2, shifted and padded (one label: view yaw and
pitch unchanged), and its own 512 crop prepared again (the crop's transform must be the
identity: scale and centre).

    python -m nofa.bench.faces.camera [--noise 1.5] [--skip-dlib] [PHOTO ...]
"""

from __future__ import annotations

import argparse
import math
import time
import warnings

import numpy as np

from ...faces import estimate_camera, view_angles
from ...faces.eg3d_crop import FIVE_POINT_INDICES, bfm_landmarks68
from ...io.eg3d_labels import deep3d_to_eg3d_label


def _rotation(angle: np.ndarray) -> np.ndarray:
    """Deep3DFaceRecon's compute_rotation(angle): (Rz Ry Rx)^T, angles (x, y, z) radians."""
    x, y, z = angle
    rx = np.array([[1, 0, 0], [0, np.cos(x), -np.sin(x)], [0, np.sin(x), np.cos(x)]])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rz = np.array([[np.cos(z), -np.sin(z), 0], [np.sin(z), np.cos(z), 0], [0, 0, 1]])
    return (rz @ ry @ rx).T


def project(angle: np.ndarray, trans: np.ndarray) -> np.ndarray:
    """BFM mean landmarks [68, 2] on Deep3DFaceRecon's 224 crop (y up) at a pose."""
    v = bfm_landmarks68() @ _rotation(angle) + trans
    return 1015.0 * v[:, :2] / (10.0 - v[:, 2:]) + 112.0


def _five(p: np.ndarray) -> np.ndarray:
    return np.stack([p[list(i)].mean(0) for i in FIVE_POINT_INDICES])


def _pos(p2: np.ndarray, p3: np.ndarray) -> tuple[float, np.ndarray]:
    a = np.zeros((10, 8))
    a[0::2, :3], a[0::2, 3], a[1::2, 4:7], a[1::2, 7] = p3, 1, p3, 1
    k = np.linalg.lstsq(a, p2.reshape(-1), rcond=None)[0]
    return (np.linalg.norm(k[:3]) + np.linalg.norm(k[4:7])) / 2, k[[3, 7]]


def aligned_trans(angle: np.ndarray) -> np.ndarray:
    """The trans [3] whose projection is its own alignment (POS scale 102, centre 112)."""
    from scipy.optimize import least_squares

    ref = _five(bfm_landmarks68())

    def f(tr):
        s, t = _pos(_five(project(angle, tr)), ref)
        return [s / 102 - 1, (t[0] - 112) / 102, (t[1] - 112) / 102]

    return least_squares(f, np.zeros(3), xtol=1e-14, ftol=1e-14, gtol=1e-14).x


def synthetic_faces(yaws, pitches, noise: float, seed: int = 0):
    """Yield (true label [25], landmarks [68, 2] in photo pixels, photo (H, W)) per pose."""
    rng = np.random.default_rng(seed)
    h, w = 1000, 800
    for yaw in yaws:
        for pitch in pitches:
            angle = np.radians([pitch, yaw, rng.uniform(-10, 10)])
            trans = aligned_trans(angle)
            p = project(angle, trans) + rng.normal(0, noise, (68, 2))
            k = rng.uniform(0.5, 3.0)  # crop pixels per photo pixel
            cx, cy = rng.uniform(300, 500), rng.uniform(400, 600)
            # 224-crop pixels (y up) -> photo pixel indices (y up) -> nofa's convention
            x = (p[:, 0] - 112) / k + cx + 0.5
            y = h - 1 - ((p[:, 1] - 112) / k + cy) + 0.5
            yield deep3d_to_eg3d_label(angle, trans), np.stack([x, y], 1), (h, w)


def synthetic_errors(yaws, pitches, noise: float, seed: int = 0) -> np.ndarray:
    """[N, 3]: view yaw error, view pitch error, rotation angle error (degrees)."""
    rows = []
    for label, lm, shape in synthetic_faces(yaws, pitches, noise, seed):
        fit = estimate_camera(lm, shape, on_unreliable="ignore")
        gy, gp = view_angles(label[:16].reshape(4, 4))
        rel = label[:16].reshape(4, 4)[:3, :3].T @ fit.cam2world[:3, :3]
        geo = math.degrees(math.acos(np.clip((np.trace(rel) - 1) / 2, -1, 1)))
        rows.append((fit.yaw - gy, fit.pitch - gp, geo))
    return np.array(rows)


def _rotated(img: np.ndarray, deg: float) -> np.ndarray:
    from ...faces import warp_affine

    h, w = img.shape[:2]
    a = math.radians(deg)
    side = int(math.ceil(w * abs(math.cos(a)) + h * abs(math.sin(a))))
    m = (
        np.array([[1, 0, w / 2], [0, 1, h / 2], [0, 0, 1]])
        @ np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
        @ np.array([[1, 0, -side / 2], [0, 1, -side / 2], [0, 0, 1]])
    )
    return warp_affine(img, m[:2], (side, side), mode="constant")


def variants(photo: np.ndarray) -> dict[str, np.ndarray]:
    """The transformed copies of a photo whose label must be the photo's."""
    from PIL import Image

    h, w = photo.shape[:2]
    pil = Image.fromarray(photo)
    return {
        "rotate+20": _rotated(photo, 20),
        "rotate-20": _rotated(photo, -20),
        "scale0.5": np.asarray(pil.resize((w // 2, h // 2), Image.LANCZOS)),
        "scale2": np.asarray(pil.resize((2 * w, 2 * h), Image.BICUBIC)),
        "shift": np.pad(photo, ((0, 60), (70, 0), (0, 0)), mode="edge")[:h, :w],
        "pad": np.pad(photo, ((100, 20), (0, 150), (0, 0))),
    }


def photo_consistency(photo: np.ndarray, name: str) -> dict[str, float]:
    """Self-consistency figures of one photo (degrees, and the re-crop's scale and centre)."""
    from ...faces import prepare_face

    def prep(img):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return prepare_face(img, name=name)

    ref = prep(photo)
    mir = prep(photo[:, ::-1].copy())
    out = {
        "yaw": ref.camera.yaw,
        "pitch": ref.camera.pitch,
        "confidence": ref.camera.confidence,
        "mirror_yaw_sum": ref.camera.yaw + mir.camera.yaw,
        "mirror_pitch_diff": mir.camera.pitch - ref.camera.pitch,
    }
    spread = [
        (f.camera.yaw - ref.camera.yaw, f.camera.pitch - ref.camera.pitch)
        for f in map(prep, variants(photo).values())
    ]
    out["variants_max_yaw_diff"] = float(np.abs(np.array(spread)[:, 0]).max())
    out["variants_max_pitch_diff"] = float(np.abs(np.array(spread)[:, 1]).max())
    again = prep(ref.aligned.image)
    m = again.aligned.photo_to_crop  # crop of the crop: the identity if the crop is EG3D's
    size = ref.aligned.size
    out["recrop_scale"] = float(np.sqrt(abs(np.linalg.det(m[:2, :2]))))
    centre = m[:2, :2] @ [size / 2, size / 2] + m[:2, 2]
    out["recrop_centre_shift"] = float(np.hypot(*(centre - size / 2)) / size)
    out["recrop_yaw_diff"] = again.camera.yaw - ref.camera.yaw
    out["recrop_pitch_diff"] = again.camera.pitch - ref.camera.pitch
    return out


def main(argv: list[str] | None = None) -> None:
    """Print the ground-truth errors and the photos' self-consistency figures."""
    ap = argparse.ArgumentParser(
        prog="python -m nofa.bench.faces.camera",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("photos", nargs="*", help="real photos (default: the astronaut)")
    ap.add_argument("--noise", default="0,1,1.5,2", help="comma-separated px at 224")
    ap.add_argument("--yaws", default="-45,-30,-15,0,15,30,45")
    ap.add_argument("--pitches", default="-25,-12.5,0,12.5,25")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-dlib", action="store_true", help="ground truth only")
    args = ap.parse_args(argv)
    yaws = [float(v) for v in args.yaws.split(",")]
    pitches = [float(v) for v in args.pitches.split(",")]
    for noise in map(float, args.noise.split(",")):
        t = time.perf_counter()
        e = np.abs(synthetic_errors(yaws, pitches, noise, args.seed))
        print(
            f"ground truth, noise {noise:g} px at 224: {len(e)} poses; |yaw error| median "
            f"{np.median(e[:, 0]):.2f} max {e[:, 0].max():.2f}; |pitch error| median "
            f"{np.median(e[:, 1]):.2f} max {e[:, 1].max():.2f}; rotation error median "
            f"{np.median(e[:, 2]):.2f} max {e[:, 2].max():.2f} (degrees; "
            f"{(time.perf_counter() - t) / len(e) * 1000:.0f} ms per pose)",
            flush=True,
        )
    if args.skip_dlib:
        return
    from ...faces import load_photo

    if args.photos:
        photos = [(p.rsplit("/", 1)[-1], load_photo(p)) for p in args.photos]
    else:
        from skimage import data

        photos = [("astronaut", data.astronaut())]
    for name, photo in photos:
        r = photo_consistency(photo, name)
        print(
            f"{name}: yaw {r['yaw']:+.2f} pitch {r['pitch']:+.2f} (confidence "
            f"{r['confidence']:.2f}); mirrored: yaw sum {r['mirror_yaw_sum']:+.2f}, pitch "
            f"difference {r['mirror_pitch_diff']:+.2f}; rotated/scaled/shifted/padded: max "
            f"|yaw difference| {r['variants_max_yaw_diff']:.2f}, max |pitch difference| "
            f"{r['variants_max_pitch_diff']:.2f}; its own crop re-cropped: scale "
            f"{r['recrop_scale']:.4f}, centre moved {100 * r['recrop_centre_shift']:.2f} % of "
            f"the side, yaw {r['recrop_yaw_diff']:+.2f} pitch {r['recrop_pitch_diff']:+.2f} "
            "(degrees)",
            flush=True,
        )


if __name__ == "__main__":
    main()
