"""Regenerate nofa.faces.landmarks3d.LANDMARKS_3D from nofa's template head (prints the array).

Sphere-traces the template's frontal view at the EG3D default camera, detects the 68 landmarks
with dlib, lifts each to 3D through the render's depth (nearest surface pixel when a jaw point
falls just off the silhouette), averages each point with its mirror partner and smooths the
jaw contour's depth. The shipped array came from --resolution 512.

    PYTHONPATH=. python tools/make_landmark_template.py --resolution 512
"""
from __future__ import annotations

import argparse

import numpy as np

from nofa.faces import MIRROR, find_face
from nofa.pipelines.template_fit.template import trace_template
from nofa.render.cameras import default_label
from nofa.render.rays import generate_rays


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--resolution", type=int, default=512)
    res = ap.parse_args().resolution
    label = default_label()
    rgb, depth, hit = trace_template(label, res)
    img = ((rgb.permute(1, 2, 0).numpy() + 1) * 127.5).clip(0, 255).astype(np.uint8)
    lm = find_face(img).landmarks
    origins, dirs = (t[0].numpy() for t in generate_rays(label[None], res))
    depth, hit = depth.numpy(), hit.numpy()
    ys, xs = np.nonzero(hit)
    points = []
    for u, v in lm:
        px, py = int(u), int(v)
        qx, qy = (px, py) if hit[py, px] else (lambda k: (xs[k], ys[k]))(np.argmin((xs - px) ** 2 + (ys - py) ** 2))
        r = py * res + px
        points.append(origins[r] + depth[qy, qx] * dirs[r])
    p = np.array(points, np.float64)
    sym = (p + p[MIRROR] * np.array([-1.0, 1.0, 1.0])) / 2
    z = sym[:17, 2].copy()
    sym[1:16, 2] = (z[:-2] + 2 * z[1:-1] + z[2:]) / 4
    print(np.array2string(sym.round(4), separator=", ", max_line_width=100,
                          formatter={"float_kind": lambda x: f"{x: .4f}"}))


if __name__ == "__main__":
    main()
