"""`evaluate_folders`: the Table 1 metrics over a folder of predictions and one of targets
(docs/metrics.md). Images are paired by file name stem; an image that cannot be read (or
whose size differs from its partner) is skipped with a warning and counted."""

from __future__ import annotations

import dataclasses
import os
import warnings
from pathlib import Path

import numpy as np

from ..io.coeffs import Coeffs, load_coeffs, natural_key
from .fid import FIDMetric
from .identity import IdentityMetric
from .image import psnr, ssim
from .lpips_metric import LPIPSMetric
from .motion import aed_apd

__all__ = ["EvalResult", "IMAGE_SUFFIXES", "evaluate_folders", "list_images"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


@dataclasses.dataclass
class EvalResult:
    """values: "self_PSNR" / "cross_CSIM" ... -> number (None when not computed);
    counts: pairs, skipped (unreadable / mismatched); notes: which embedder made CSIM, why a
    metric is missing, ..."""

    mode: str
    values: dict[str, float | None]
    counts: dict[str, int]
    notes: list[str]


def list_images(folder: str | os.PathLike) -> dict[str, Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise NotADirectoryError(f"image folder not found: {folder}")
    files = sorted(
        (p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES),
        key=lambda p: natural_key(p.name),
    )
    return {p.stem: p for p in files}


def _read(path: Path) -> np.ndarray | None:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB")).copy()
    except Exception as e:  # PIL raises many types for broken files
        warnings.warn(
            f"skipping unreadable image {path}: {type(e).__name__}: {e}",
            RuntimeWarning,
            stacklevel=3,
        )
        return None


def _coeff_rows(
    coeffs: Coeffs, names: list[str]
) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    """Rows of `coeffs` for image stems `names` (by frame name, else by position)."""
    if coeffs.names is not None:
        idx = {n: i for i, n in enumerate(coeffs.names)}
        keep = [n for n in names if n in idx]
        rows = [idx[n] for n in keep]
    else:
        if len(coeffs) != len(names):
            raise ValueError(
                f"{coeffs.source}: {len(coeffs)} coefficient rows for {len(names)} images (a "
                "sequence "
                "file is matched to the sorted images by position)"
            )
        keep, rows = list(names), list(range(len(names)))
    pose = coeffs.pose()[rows] if coeffs.has_pose else None
    return coeffs.exp[rows], pose, keep


def evaluate_folders(
    pred_dir: str | os.PathLike,
    target_dir: str | os.PathLike,
    mode: str = "self",
    *,
    lpips_weights: str | None = None,
    arcface_weights: str | None = None,
    inception_weights: str | None = None,
    pred_coeffs: str | None = None,
    target_coeffs: str | None = None,
    identity: str | None = None,
    device: str = "cpu",
    progress: bool = True,
    lpips_metric=None,
    identity_metric=None,
    fid_metric=None,
) -> EvalResult:
    """Table 1 metrics of `mode` "self" (pred vs target frame by frame) or "cross" (FID pred
    set vs target set; CSIM vs the `identity` image or folder — the source portraits —
    default the targets; AED/APD vs the target coefficients). Metrics whose weights are not
    given are None with a note. `*_metric` arguments inject ready metric objects (tests)."""
    from tqdm import tqdm

    if mode not in ("self", "cross"):
        raise ValueError(f"mode must be 'self' or 'cross', got {mode!r}")
    preds, targets = list_images(pred_dir), list_images(target_dir)
    if not preds:
        raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {pred_dir}")
    notes: list[str] = []
    cols = (
        ("FID", "LPIPS", "PSNR", "SSIM", "CSIM", "AED", "APD")
        if mode == "self"
        else ("FID", "CSIM", "AED", "APD")
    )
    values: dict[str, float | None] = {f"{mode}_{c}": None for c in cols}

    lp = lpips_metric
    if mode == "self" and lp is None:
        if lpips_weights:
            lp = LPIPSMetric(lpips_weights, device)
        else:
            notes.append("LPIPS not computed: no --lpips-weights")
    fid = fid_metric
    if fid is None:
        if inception_weights:
            fid = FIDMetric(inception_weights, device)
        else:
            notes.append("FID not computed: no --inception-weights")
    ident = identity_metric
    if ident is None:
        try:
            ident = IdentityMetric(arcface_weights, device)
        except RuntimeError as e:
            notes.append(f"CSIM not computed: {e}")
    if ident is not None:
        notes.append(f"CSIM embedder: {ident.name}")

    id_images: dict[str, Path] | Path | None = None
    if mode == "cross":
        if identity is None:
            id_images = targets
        elif Path(identity).is_dir():
            id_images = list_images(identity)
        else:
            id_images = Path(identity)
    id_cache: dict[str, np.ndarray] = {}

    names = list(preds) if mode == "cross" else [n for n in preds if n in targets]
    if mode == "self" and len(names) < len(preds):
        notes.append(f"{len(preds) - len(names)} prediction(s) have no target of the same name")
    sums: dict[str, list[float]] = {c: [] for c in ("PSNR", "SSIM", "LPIPS", "CSIM")}
    skipped, used = 0, []
    for name in tqdm(names, desc=f"eval ({mode})", unit="img", disable=not progress):
        p = _read(preds[name])
        if p is None:
            skipped += 1
            continue
        if mode == "self":
            t = _read(targets[name])
            if t is None:
                skipped += 1
                continue
            if t.shape != p.shape:
                warnings.warn(
                    f"skipping {preds[name]}: size {p.shape[:2]} differs from target {t.shape[:2]}",
                    RuntimeWarning,
                    stacklevel=2,
                )
                skipped += 1
                continue
            sums["PSNR"].append(psnr(p, t))
            sums["SSIM"].append(ssim(p, t))
            if lp is not None:
                sums["LPIPS"].append(lp(p, t))
            if ident is not None:
                sums["CSIM"].append(ident.csim(p, t))
            if fid is not None:
                fid.add("pred", p)
                fid.add("target", t)
        else:
            if fid is not None:
                fid.add("pred", p)
            if ident is not None:
                ref_path = id_images if isinstance(id_images, Path) else id_images.get(name)
                if ref_path is None:
                    notes.append(f"no identity image for {name}")
                else:
                    key = str(ref_path)
                    if key not in id_cache:
                        r = _read(ref_path)
                        id_cache[key] = ident.embed(r) if r is not None else None
                    if id_cache[key] is not None:
                        from .identity import cosine_similarity

                        sums["CSIM"].append(cosine_similarity(ident.embed(p), id_cache[key]))
        used.append(name)
    if mode == "cross" and fid is not None:
        for path in tqdm(
            targets.values(), desc="eval (FID targets)", unit="img", disable=not progress
        ):
            t = _read(path)
            if t is None:
                skipped += 1
                continue
            fid.add("target", t)
    for c, v in sums.items():
        if v and f"{mode}_{c}" in values:
            values[f"{mode}_{c}"] = float(np.mean(v))
    if fid is not None:
        values[f"{mode}_FID"] = fid.value()
    if pred_coeffs and target_coeffs:
        pc, tc = load_coeffs(pred_coeffs), load_coeffs(target_coeffs)
        pe, pp, keep_p = _coeff_rows(pc, used)
        te, tp, keep_t = _coeff_rows(tc, used)
        common = [n for n in keep_p if n in set(keep_t)]
        if len(common) != len(keep_p) or len(common) != len(keep_t):
            pi, ti = {n: i for i, n in enumerate(keep_p)}, {n: i for i, n in enumerate(keep_t)}
            pe, te = pe[[pi[n] for n in common]], te[[ti[n] for n in common]]
            pp = pp[[pi[n] for n in common]] if pp is not None else None
            tp = tp[[ti[n] for n in common]] if tp is not None else None
        if not common:
            notes.append("AED/APD not computed: no coefficient file matches an evaluated image")
        else:
            aed, apd = aed_apd(pe, te, pp, tp)
            values[f"{mode}_AED"], values[f"{mode}_APD"] = aed, apd
            if apd is None:
                notes.append("APD not computed: the coefficient files carry no pose")
    else:
        notes.append(
            "AED/APD not computed: give --pred-coeffs and --target-coeffs (3DMM coefficients of "
            "both)"
        )
    if ident is not None and getattr(ident, "no_face", 0):
        notes.append(
            f"CSIM: no face detected in {ident.no_face} image(s); the default face box was used"
        )
    if skipped:
        notes.append(f"{skipped} unreadable or mismatched image(s) skipped")
    counts = {"images": len(used), "skipped": skipped}
    return EvalResult(mode, values, counts, list(dict.fromkeys(notes)))
