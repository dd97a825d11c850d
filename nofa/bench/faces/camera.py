"""Camera accuracy on renders of nofa's template head (docs/faces.md, "Camera estimation").

For each (yaw, pitch) on a grid, the template head (--skin photo: wearing the astronaut's
face, PhotoSkinHead, the default; --skin procedural: its own albedo) is sphere-traced at the
EG3D camera default_label(yaw, pitch) (radius 2.7 around the origin, looking at (0, 0, 0.2)),
then either
  dlib:       dlib detects the face and its 68 landmarks, the render is aligned like any photo
              (nofa.faces.prepare_face) and the camera estimated from the crop, or
  projected:  the landmark model (LANDMARK_VIEW_MODEL at the true view) is projected through
              the true camera, Gaussian noise
              of --noise px (at 512) added, and the camera estimated from those points.
Errors are view_angles() of the estimate minus those of the true cam2world.

    python -m nofa.bench.faces.camera --resolution 256
"""

from __future__ import annotations

import argparse
import math
import time
import warnings

import numpy as np

from ...faces import (
    LANDMARK_VIEW_MODEL,
    estimate_camera,
    landmarks_seen_from,
    prepare_face,
    view_angles,
)
from ...pipelines.template_fit.photo_skin import PhotoSkinHead, render_uint8
from ...render.cameras import default_label


def main(argv: list[str] | None = None) -> None:
    """Print the dlib and projected-landmark errors per pose and their summary."""
    ap = argparse.ArgumentParser(
        prog="python -m nofa.bench.faces.camera",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--resolution", type=int, default=256)
    ap.add_argument("--noise", type=float, default=1.5)
    ap.add_argument("--yaws", default="-40,-30,-20,-10,0,10,20,30,40")
    ap.add_argument("--pitches", default="-20,-10,0,10,20")
    ap.add_argument("--skip-dlib", action="store_true")
    ap.add_argument("--skin", choices=("photo", "procedural"), default="photo")
    args = ap.parse_args(argv)
    head = PhotoSkinHead.from_photo() if args.skin == "photo" and not args.skip_dlib else None
    rng = np.random.default_rng(0)
    rows = {"dlib": [], "projected": []}
    for yaw in map(float, args.yaws.split(",")):
        for pitch in map(float, args.pitches.split(",")):
            lab = default_label(math.radians(yaw), math.radians(pitch)).double().numpy()
            c2w = lab[:16].reshape(4, 4)
            gy, gp = view_angles(c2w)
            w2c = np.linalg.inv(c2w)
            pts = landmarks_seen_from(LANDMARK_VIEW_MODEL, math.radians(gy), math.radians(gp))
            cam = pts @ w2c[:3, :3].T + w2c[:3, 3]
            uv = (4.2647 * cam[:, :2] / cam[:, 2:] + 0.5) * 512 + rng.normal(0, args.noise, (68, 2))
            fit = estimate_camera(uv, 512)
            rows["projected"].append((yaw, pitch, fit.yaw - gy, fit.pitch - gp))
            if args.skip_dlib:
                continue
            t = time.perf_counter()
            img = render_uint8(lab, args.resolution, head)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    face = prepare_face(img)
            except ValueError as e:
                print(f"yaw {yaw:+5.0f} pitch {pitch:+5.0f}: dlib: {e}", flush=True)
                rows["dlib"].append((yaw, pitch, float("nan"), float("nan")))
                continue
            d = (yaw, pitch, face.camera.yaw - gy, face.camera.pitch - gp)
            rows["dlib"].append(d)
            print(
                f"yaw {yaw:+5.0f} pitch {pitch:+5.0f}: dlib error yaw {d[2]:+6.2f} pitch "
                f"{d[3]:+6.2f} "
                f"(rms {face.camera.rms_px:.1f} px, render {time.perf_counter() - t:.0f} s)",
                flush=True,
            )
    for name, r in rows.items():
        if not r:
            continue
        a = np.array(r)
        ok = np.isfinite(a[:, 2])
        e = np.abs(a[ok, 2:])
        print(
            f"{name}: {ok.sum()}/{len(a)} poses; |yaw error| median {np.median(e[:, 0]):.2f} max "
            f"{e[:, 0].max():.2f}; "
            f"|pitch error| median {np.median(e[:, 1]):.2f} max {e[:, 1].max():.2f} (degrees)"
        )


if __name__ == "__main__":
    main()
