"""Calibrate and compare 3D landmark models for the camera fit (docs/faces.md, "Camera estimation").

dlib's points lag behind the turn on renders of the template head with its procedural albedo,
far less with a photo's face on it (--skin photo: nofa.pipelines.template_fit.PhotoSkinHead,
the default). This script tries
landmark models whose 3D points move with the view direction, X_i(yaw, pitch) =
sum_k phi_k(yaw, pitch) B_ik (phi: the bases below; "rigid" is one constant term), fitted by
linear multi-view triangulation to dlib's points on calibration renders (none on the
accuracy grid; each view also mirrored), and reports for each:
  - leave-one-view-out pose errors on the calibration views with |yaw| <= 40,
  - the errors on the 5 x 3 accuracy grid (nofa.bench.faces.camera's),
  - the pitch each gives on real photos (the astronaut, plus --photos).
"rigid template" is nofa.faces.LANDMARKS_3D (calibrated on the procedural look), "shipped"
nofa.faces.LANDMARK_VIEW_MODEL (what estimate_camera uses, the "lin" basis). --print lin
prints the coefficients of the "lin" model fitted on all calibration views as
LANDMARK_VIEW_MODEL holds them ([3, 68, 3]; basis 1, yaw, pitch in radians). --ridge adds
"<model> ridge R" rows (see fit()).

    python -m nofa.bench.faces.landmark_models [--skin photo|procedural] [--photos
    'DIR/*.png'] [--print lin]
"""

from __future__ import annotations

import argparse
import glob
import math
import warnings
from collections.abc import Callable, Sequence

import numpy as np
from scipy.optimize import least_squares
from scipy.spatial.transform import Rotation

from ...faces import (
    INNER,
    LANDMARK_VIEW_MODEL,
    LANDMARK_WEIGHTS,
    LANDMARKS_3D,
    MIRROR,
    NoFaceError,
    prepare_face,
    view_angles,
    view_basis,
)
from ...faces.photo import load_photo
from ...pipelines.template_fit.photo_skin import PhotoSkinHead, render_uint8
from ...render.cameras import default_label

Basis = Callable[[float, float], np.ndarray]  # (yaw, pitch) in radians -> [K] weights
RES = 256
FOCAL, PRINCIPAL = 4.2647, 0.5
BASES = {
    "rigid": lambda y, p: np.array([1.0]),
    "lin": view_basis,
    "lin+p2": lambda y, p: np.array([1.0, y, p, p * p]),
    "quad": lambda y, p: np.array([1.0, y, p, y * y, p * p, y * p]),
}


def collect(
    yaws: Sequence[float], pitches: Sequence[float], head: PhotoSkinHead | None = None
) -> list[dict]:
    """dlib's landmarks on a render of the head at each (yaw, pitch) in degrees where it finds
    a face: {"yaw", "label" [25], "crop_lm" [68, 2] (512 crop), "render_lm" [68, 2] (render)}."""
    recs = []
    for yaw in yaws:
        for pitch in pitches:
            lab = default_label(math.radians(yaw), math.radians(pitch))
            img = render_uint8(lab, RES, head)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    face = prepare_face(img)
            except NoFaceError:
                continue
            m = face.aligned.crop_to_photo
            recs.append(
                dict(
                    yaw=yaw,
                    label=lab.double().numpy(),
                    crop_lm=face.aligned.landmarks,
                    render_lm=face.aligned.landmarks @ m[:2, :2].T + m[:2, 2],
                )
            )
    return recs


def views_of(recs: list[dict]) -> list[tuple[np.ndarray, np.ndarray]]:
    """(cam2world, render landmarks) of each view and of its mirror image (the head is
    symmetric)."""
    M = np.diag([-1.0, 1.0, 1.0])
    out = []
    for r in recs:
        c2w, lm = r["label"][:16].reshape(4, 4), r["render_lm"]
        cm = np.eye(4)
        cm[:3, :3], cm[:3, 3] = M @ c2w[:3, :3] @ M, M @ c2w[:3, 3]
        lmm = lm[MIRROR].copy()
        lmm[:, 0] = RES - lmm[:, 0]
        out += [(c2w, lm), (cm, lmm)]
    return out


def fit(views: list[tuple[np.ndarray, np.ndarray]], basis: Basis, ridge: float = 0.0) -> np.ndarray:
    """Coefficients [68, K, 3] by linear triangulation; the jaw stays LANDMARKS_3D's (unused).

    ridge: weight of a pull of the constant term towards LANDMARKS_3D and of the others
    towards 0 (the points' depth is weakly seen within +-48 degrees of yaw, and with
    quadratic terms it trades off between terms; a small pull keeps the model near a head).
    """
    k = len(basis(0.0, 0.0))
    A = [[] for _ in range(68)]
    b = [[] for _ in range(68)]
    for c2w, lm in views:
        phi = basis(*(math.radians(a) for a in view_angles(c2w)))
        w2c = np.linalg.inv(c2w)[:3]
        uv = (lm / RES - PRINCIPAL) / FOCAL
        for i in range(68):
            for ax in (0, 1):
                a = w2c[ax] - uv[i, ax] * w2c[2]
                A[i].append(np.kron(phi, a[:3]))
                b[i].append(-a[3])
    coef = np.zeros((68, k, 3))
    for i in range(68):
        Ai, bi = np.array(A[i]), np.array(b[i])
        if ridge > 0:
            prior = np.zeros((k, 3))
            prior[0] = LANDMARKS_3D[i]
            Ai = np.vstack([Ai, math.sqrt(ridge) * np.eye(3 * k)])
            bi = np.concatenate([bi, math.sqrt(ridge) * prior.ravel()])
        coef[i] = np.linalg.lstsq(Ai, bi, rcond=None)[0].reshape(k, 3)
    coef[:17] = 0
    coef[:17, 0] = LANDMARKS_3D[:17]
    return coef


def estimate(
    lm: np.ndarray, coef: np.ndarray, basis: Basis, size: int = 512
) -> tuple[float, float]:
    """nofa.faces.estimate_camera's fit (same weights, loss, starts) with view-dependent points."""
    obs = lm[INNER] / size
    wt = np.repeat(LANDMARK_WEIGHTS[INNER], 2)

    def resid(x):
        R = Rotation.from_rotvec(x[:3]).as_matrix()
        f = R[2]
        X = np.einsum(
            "k,ikd->id", basis(math.atan2(-f[0], -f[2]), math.asin(np.clip(f[1], -1, 1))), coef
        )[INNER]
        cam = X @ R.T + x[3:]
        z = np.maximum(cam[:, 2], 1e-3)
        return (
            np.stack([FOCAL * cam[:, 0] / z, FOCAL * cam[:, 1] / z], 1) + PRINCIPAL - obs
        ).ravel() * wt

    best = None
    for y0 in (0.0, -0.6, 0.6):
        pos = 2.7 * np.array([math.sin(y0), 0.0, math.cos(y0)])
        fwd = -pos / np.linalg.norm(pos)
        right = -np.cross([0.0, 1.0, 0.0], fwd)
        right /= np.linalg.norm(right)
        r = np.stack([right, np.cross(fwd, right), fwd])
        x0 = np.concatenate([Rotation.from_matrix(r).as_rotvec(), -r @ pos])
        s = least_squares(resid, x0, loss="soft_l1", f_scale=0.004, x_scale="jac")
        if best is None or s.cost < best.cost:
            best = s
    c2w = np.eye(4)
    c2w[:3, :3] = Rotation.from_rotvec(best.x[:3]).as_matrix().T
    return view_angles(c2w)


def errors(recs: list[dict], coef: np.ndarray, basis: Basis) -> np.ndarray:
    """|estimated - true| (yaw, pitch) in degrees per view: [len(recs), 2]."""
    out = []
    for r in recs:
        gy, gp = view_angles(r["label"][:16].reshape(4, 4))
        ey, ep = estimate(r["crop_lm"], coef, basis)
        out.append((ey - gy, ep - gp))
    return np.abs(np.array(out))


def summary(e: np.ndarray) -> str:
    return (
        f"yaw {np.median(e[:, 0]):.2f} / {e[:, 0].max():.2f}, "
        f"pitch {np.median(e[:, 1]):.2f} / {e[:, 1].max():.2f}"
    )


def main(argv: list[str] | None = None) -> None:
    """Fit and compare the landmark models; print one line each (and --print's coefficients)."""
    ap = argparse.ArgumentParser(
        prog="python -m nofa.bench.faces.landmark_models",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument(
        "--photos", default="", help="glob of extra real photos whose estimated pitch to report"
    )
    ap.add_argument("--skin", choices=("photo", "procedural"), default="photo")
    ap.add_argument("--print", dest="print_model", choices=tuple(BASES), default=None)
    ap.add_argument(
        "--ridge", default="", help="comma-separated ridge weights to also try with lin and quad"
    )
    args = ap.parse_args(argv)
    head = PhotoSkinHead.from_photo() if args.skin == "photo" else None
    cal = collect([-48, -35, -25, -10, 0, 10, 25, 35, 48], [-28, -14, -6, 6, 14, 28], head)
    grid = collect([-40, -20, 0, 20, 40], [-20, 0, 20], head)
    import skimage.data

    photos = [("astronaut", skimage.data.astronaut())]
    photos += (
        [(p.rsplit("/", 1)[-1], load_photo(p)) for p in sorted(glob.glob(args.photos))]
        if args.photos
        else []
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        real = [(n, prepare_face(img).aligned.landmarks) for n, img in photos]
    interior = [j for j, r in enumerate(cal) if abs(r["yaw"]) <= 40]
    print(
        f"{len(cal)} calibration views ({len(interior)} with |yaw| <= 40), {len(grid)}/15 grid "
        "views; "
        "errors |median| / max in degrees"
    )
    rigid = np.zeros((68, 1, 3))
    rigid[:, 0] = LANDMARKS_3D
    shipped = np.asarray(LANDMARK_VIEW_MODEL).transpose(1, 0, 2)  # [68, 3, 3], the "lin" basis
    models = [
        ("rigid template", rigid, BASES["rigid"], None),
        ("shipped", shipped, BASES["lin"], None),
    ]
    models += [(n, fit(views_of(cal), b), b, (b, 0.0)) for n, b in BASES.items()]
    for r in (float(x) for x in args.ridge.split(",") if x):
        models += [
            (f"{n} ridge {r:g}", fit(views_of(cal), BASES[n], r), BASES[n], (BASES[n], r))
            for n in ("lin", "quad")
        ]
    for name, coef, basis, refit in models:
        if refit is None:
            loo = errors([cal[j] for j in interior], coef, basis)
        else:
            loo = np.concatenate(
                [
                    errors([cal[j]], fit(views_of(cal[:j] + cal[j + 1 :]), *refit), basis)
                    for j in interior
                ]
            )
        dev = np.abs(coef[17:, 0] - LANDMARKS_3D[17:]).max()
        pitches = " ".join(f"{n} {estimate(lm, coef, basis)[1]:+.1f}" for n, lm in real)
        print(
            f"{name:14s} | const. vs LANDMARKS_3D {dev:.3f} | leave-one-out: {summary(loo)} | "
            f"grid: {summary(errors(grid, coef, basis))} | real photos, pitch: {pitches}",
            flush=True,
        )
    if args.print_model:
        coef = fit(views_of(cal), BASES[args.print_model]).transpose(1, 0, 2)
        print(
            np.array2string(
                coef.round(4),
                separator=", ",
                max_line_width=100,
                threshold=10**6,
                formatter={"float_kind": lambda x: f"{x: .4f}"},
            )
        )


if __name__ == "__main__":
    main()
