"""Regenerate nofa.faces.landmarks3d.LANDMARKS_3D from nofa's template head (prints the array).

Multi-view triangulation of dlib's landmarks on the template head:
1. The template is sphere-traced at calibration cameras `default_label(yaw, pitch)` for
   yaw in --yaws x pitch in --pitches (by default yaw +-15, +-30, +-45 and pitch +-12, +-28
   degrees: none of them on the 5 x 3 grid over [-40, 40] x [-20, 20] that measures the
   accuracy); views where dlib finds no face are skipped (3 of the 24).
2. Each render goes through the same chain as a photo (`prepare_face`: detect, 68 points,
   align, re-detect on the aligned crop); the crop's landmarks are mapped back to the render.
3. Each of the 51 inner points is the 3D point whose projections through the known cameras
   best match dlib's points (linear least squares), then averaged with its mirror partner.
   The 17 jaw points, a silhouette that slides as the head turns (unusable for pose), are
   lifted from the frontal render through its depth instead, as before.
It also prints each point's reprojection rms over the views. The result is where dlib "sees"
each landmark on this head from every side: its regression
trees pull turned faces towards the frontal shape, so the points come out flatter than the
surface points they name, and a template lifted from one frontal view makes the camera
fit under-estimate yaw and pitch (docs/faces.md, Accuracy).

    PYTHONPATH=. python tools/make_landmark_template.py --resolution 256
"""

from __future__ import annotations

import argparse
import math
import warnings

import numpy as np

from nofa.faces import MIRROR, NoFaceError, find_face, prepare_face
from nofa.pipelines.template_fit.template import trace_template
from nofa.render.cameras import default_label
from nofa.render.rays import generate_rays


def render(label, res: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rgb, depth, hit = trace_template(label, res)
    img = ((rgb.permute(1, 2, 0).numpy() + 1) * 127.5).clip(0, 255).astype(np.uint8)
    return img, depth.numpy(), hit.numpy()


def jaw_from_frontal(res: int) -> np.ndarray:
    """The 17 jaw points [17, 3] lifted from the frontal render through its depth."""
    label = default_label()
    img, depth, hit = render(label, res)
    lm = find_face(img).landmarks
    origins, dirs = (t[0].numpy() for t in generate_rays(label[None], res))
    ys, xs = np.nonzero(hit)
    points = []
    for u, v in lm[:17]:
        px, py = int(u), int(v)
        qx, qy = (
            (px, py)
            if hit[py, px]
            else (lambda k: (xs[k], ys[k]))(np.argmin((xs - px) ** 2 + (ys - py) ** 2))
        )
        r = py * res + px
        points.append(origins[r] + depth[qy, qx] * dirs[r])
    jaw = np.array(points, np.float64)
    jaw = (jaw + jaw[MIRROR[:17]] * np.array([-1.0, 1.0, 1.0])) / 2
    z = jaw[:, 2].copy()
    jaw[1:16, 2] = (z[:-2] + 2 * z[1:-1] + z[2:]) / 4
    return jaw


def triangulate(views: list[tuple[np.ndarray, np.ndarray]], res: int) -> np.ndarray:
    """Points [68, 3] from views [(label [25], landmarks [68, 2] in render pixels)]."""
    rows = [[] for _ in range(68)]
    rhs = [[] for _ in range(68)]
    for label, lm in views:
        w2c = np.linalg.inv(label[:16].reshape(4, 4))[:3]
        focal, principal = label[16], label[18]
        uv = (lm / res - principal) / focal  # normalised image coordinates x/z, y/z
        for i in range(68):
            for axis in (0, 1):
                a = w2c[axis] - uv[i, axis] * w2c[2]
                rows[i].append(a[:3])
                rhs[i].append(-a[3])
    return np.array(
        [np.linalg.lstsq(np.array(a), np.array(b), rcond=None)[0] for a, b in zip(rows, rhs)]
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--resolution", type=int, default=256)
    ap.add_argument("--yaws", default="-45,-30,-15,15,30,45")
    ap.add_argument("--pitches", default="-28,-12,12,28")
    args = ap.parse_args()
    res = args.resolution
    views = []
    for yaw in map(float, args.yaws.split(",")):
        for pitch in map(float, args.pitches.split(",")):
            label = default_label(math.radians(yaw), math.radians(pitch))
            img, _, _ = render(label, res)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    face = prepare_face(img)
            except NoFaceError:
                print(f"# yaw {yaw:g} pitch {pitch:g}: no face found, view skipped")
                continue
            m = face.aligned.crop_to_photo
            views.append((label.double().numpy(), face.aligned.landmarks @ m[:2, :2].T + m[:2, 2]))
    p = triangulate(views, res)
    p[:17] = jaw_from_frontal(max(res, 512))
    sym = (p + p[MIRROR] * np.array([-1.0, 1.0, 1.0])) / 2
    errs = []
    for label, lm in views:  # reprojection error, pixels at `res`
        w2c = np.linalg.inv(label[:16].reshape(4, 4))
        cam = sym @ w2c[:3, :3].T + w2c[:3, 3]
        errs.append(np.hypot(*((label[16] * cam[:, :2] / cam[:, 2:] + label[18]) * res - lm).T))
        print(
            f"# view: inner-point reprojection rms {np.sqrt((errs[-1][17:] ** 2).mean()):.2f} px "
            f"at {res}"
        )
    rms = np.sqrt((np.array(errs) ** 2).mean(0))
    rms = (rms + rms[MIRROR]) / 2
    print("# per-point reprojection rms over the views (px at 512):")
    print("# " + np.array2string((rms * 512 / res).round(2), separator=", ", max_line_width=200))
    print(
        np.array2string(
            sym.round(4),
            separator=", ",
            max_line_width=100,
            formatter={"float_kind": lambda x: f"{x: .4f}"},
        )
    )


if __name__ == "__main__":
    main()
