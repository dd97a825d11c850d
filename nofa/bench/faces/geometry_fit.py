"""How well the demo's geometry fit puts the template's landmarks on a photo's (docs/faces.md).

For each photo (default: the astronaut), as the demo does: align it, find its 68 landmarks and
estimate its camera (nofa.faces.prepare_face); fit the landmark warp (nofa.pipelines.template_fit.
warp). Reported, RMS over the 68 landmarks in pixels of the 512 crop:
  model:  the 3D landmark template (nofa.faces.LANDMARKS_3D) projected through the camera,
          before the fit and after it (the warped head's landmarks);
  dlib:   dlib's landmarks on an exact render (sphere-traced, --resolution, scaled to 512) of
          the template and of the warped template at the photo's camera, against the photo's.

    python -m nofa.bench.faces.geometry_fit [PHOTO ...] [--resolution 256]
"""

from __future__ import annotations

import argparse

import numpy as np

from ...faces import load_photo, prepare_face
from ...faces.prepare import crop_landmarks
from ...pipelines.template_fit.template import TemplateHead, trace_template
from ...pipelines.template_fit.warp import fit_head_to_landmarks


def main(argv: list[str] | None = None) -> None:
    """Print one line per photo: camera, model and dlib landmark errors before/after the fit."""
    ap = argparse.ArgumentParser(
        prog="python -m nofa.bench.faces.geometry_fit",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("photos", nargs="*")
    ap.add_argument("--resolution", type=int, default=256)
    args = ap.parse_args(argv)
    for path in args.photos or [None]:
        if path is None:
            from skimage import data

            photo, name = data.astronaut(), "astronaut"
        else:
            photo, name = load_photo(path), path.rsplit("/", 1)[-1]
        face = prepare_face(photo, 512, name=name)
        lm, label = face.aligned.landmarks, face.camera.label
        head, info = fit_head_to_landmarks(lm, label, 512)
        row = [
            f"{name}: yaw {face.camera.yaw:+.1f} pitch {face.camera.pitch:+.1f}",
            f"model {info['rms_px_before']:.1f} -> {info['rms_px_after']:.1f} px",
        ]
        dl = []
        for h in (TemplateHead(), head):
            rgb, _, _ = trace_template(label, args.resolution, h)
            img = ((rgb.permute(1, 2, 0).numpy() + 1) * 127.5).clip(0, 255).astype(np.uint8)
            found = crop_landmarks(img) * (512 / args.resolution)
            dl.append(float(np.sqrt(((found - lm) ** 2).sum(1).mean())))
        row.append(f"dlib on renders {dl[0]:.1f} -> {dl[1]:.1f} px")
        print("; ".join(row), flush=True)


if __name__ == "__main__":
    main()
