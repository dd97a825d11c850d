"""Held-out evaluation.

Synthetic stages (encoder, detail): fixed latents and camera pairs from a stream never used
for training; the reconstruction from the source image is scored from the source view and
from the other view (PSNR and LPIPS of the SR image, L2 of the raw image, mean absolute
depth error), for the coarse volume V_c, the fine volume V_e, and the `w_avg` baseline (the
average face, no encoder).

Video stages (deformation, hybrid, audio): self-reenactment on held-out clips (source =
frame 0, targets = later frames): PSNR, SSIM and LPIPS of the SR image against the target
frame, on the full image and on the target's mouth box, for the deformed render (the
stage's alpha/beta) and for the undeformed canonical render of the same volume from the
same camera (alpha/beta None: the identity deformation), the baseline; and the render deformed
with the source frame's own expression (alpha_t, beta_s), which separates what the field
learned about expressions from a warp that does not depend on them."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import numpy as np
import torch

from ..metrics.image import ssim as ssim_uint8
from ..models import AvatarVolume, NOFAAvatar
from .boxes import REGIONS, crop_boxes, region_box
from .data import HELDOUT_STREAM, SyntheticBatch, SyntheticSource
from .forward import reconstruct, render_views
from .losses import LPIPSLoss, psnr
from .video_data import VideoBatch

__all__ = [
    "evaluate",
    "evaluate_reenactment",
    "held_out_mode",
    "heldout_batches",
    "image_scores",
    "score",
]


def heldout_batches(
    source: SyntheticSource, samples: int, batch_size: int, stream: int = HELDOUT_STREAM
) -> list[SyntheticBatch]:
    """Samples 0..samples-1 of `stream` (the validation stream by default; the proofs pass
    TEST_STREAM) in batches of `batch_size`."""
    return [
        source.batch(range(i, min(i + batch_size, samples)), stream)
        for i in range(0, samples, batch_size)
    ]


def score(pred: dict, batch: SyntheticBatch, lpips: LPIPSLoss | None) -> dict[str, torch.Tensor]:
    """Per-sample metrics [N] for the source (s) and other (t) view."""
    out = {}
    for v in ("s", "t"):
        img, raw, dep = pred[f"image_{v}"], pred[f"raw_{v}"], pred[f"depth_{v}"]
        tgt_img, tgt_raw, tgt_dep = (
            getattr(batch, f"image_{v}"),
            getattr(batch, f"raw_{v}"),
            getattr(batch, f"depth_{v}"),
        )
        name = "source" if v == "s" else "novel"
        out[f"psnr_{name}"] = psnr(img, tgt_img)
        out[f"l2_{name}"] = (img - tgt_img).pow(2).flatten(1).mean(1)
        out[f"l2raw_{name}"] = (raw - tgt_raw).pow(2).flatten(1).mean(1)
        out[f"depth_{name}"] = (dep - tgt_dep).abs().flatten(1).mean(1)
        if lpips is not None:
            out[f"lpips_{name}"] = torch.stack(
                [lpips(img[i : i + 1], tgt_img[i : i + 1]) for i in range(img.shape[0])]
            )
    return out


@torch.no_grad()
def evaluate(
    model: NOFAAvatar,
    batches: list[SyntheticBatch],
    lpips: LPIPSLoss | None,
    fine: bool,
    baseline: bool = False,
) -> tuple[dict[str, float], dict]:
    """Mean metrics over the held-out batches -> ({"eval/coarse/psnr_novel": ..., ...}, last
    predictions for an image grid). Rendering is deterministic and the global RNG is left
    untouched (a run's random stream must not depend on when it evaluates)."""
    sums: dict[str, list[torch.Tensor]] = {}
    last: dict = {}
    with held_out_mode(model):
        for b in batches:
            kinds = {}
            vol, coarse = reconstruct(model, b.image_s, b.camera_s, fine=fine)
            kinds["coarse"] = render_views(
                model,
                vol if not fine else _coarse(model, vol),
                b.camera_s,
                b.camera_t,
                source=coarse,
            )
            if fine:
                kinds["fine"] = render_views(model, vol, b.camera_s, b.camera_t)
            if baseline:
                ws = model.generator.w_avg.expand(len(b), model.num_ws, -1).contiguous()
                avg = model.volume_from_feature(*model.generator.head(ws), ws)
                kinds["wavg"] = render_views(model, avg, b.camera_s, b.camera_t)
            for kind, pred in kinds.items():
                for k, v in score(pred, b, lpips).items():
                    sums.setdefault(f"eval/{kind}/{k}", []).append(v)
            last = {"batch": b, **kinds}
    return {k: float(torch.cat(v).mean()) for k, v in sums.items()}, last


@contextlib.contextmanager
def held_out_mode(model: NOFAAvatar):
    """Deterministic rendering, and the global RNG left as it was (a run's random stream must
    not depend on when it evaluates); the render options are restored afterwards."""
    opts = model.renderer.options
    model.renderer.options = opts.replace(deterministic=True)
    try:
        with torch.random.fork_rng(devices=[]):
            yield
    finally:
        model.renderer.options = opts


def _coarse(model: NOFAAvatar, vol: AvatarVolume) -> AvatarVolume:
    return AvatarVolume(vol.planes_coarse, vol.ws, vol.feature, vol.skip)


def _uint8(img: torch.Tensor) -> np.ndarray:
    """[3, H, W] in [-1, 1] -> uint8 [H, W, 3]."""
    return (
        ((img.detach().float().clamp(-1, 1) + 1) * 127.5)
        .round()
        .byte()
        .permute(1, 2, 0)
        .cpu()
        .numpy()
    )


def image_scores(
    pred: torch.Tensor, target: torch.Tensor, lpips: LPIPSLoss | None
) -> dict[str, torch.Tensor]:
    """Per-image PSNR (dB, peak-to-peak 2 in [-1, 1]), SSIM (scikit-image on uint8, 7x7
    window) and LPIPS of images [N, 3, H, W] -> {name: [N]}."""
    out = {
        "psnr": psnr(pred, target),
        "ssim": torch.tensor([ssim_uint8(_uint8(p), _uint8(t)) for p, t in zip(pred, target)]),
    }
    if lpips is not None:
        out["lpips"] = torch.stack(
            [lpips(pred[i : i + 1], target[i : i + 1]) for i in range(pred.shape[0])]
        )
    return out


@torch.no_grad()
def evaluate_reenactment(
    model: NOFAAvatar,
    batches: list[VideoBatch],
    lpips: LPIPSLoss | None,
    beta: Callable[[VideoBatch], torch.Tensor] | None = None,
    margin: float = 0.25,
) -> tuple[dict[str, float], dict]:
    """Self-reenactment metrics over held-out VideoBatches -> ({"eval/deformed/psnr": ...,
    "eval/deformed/psnr_mouth": ..., "eval/canonical/...": ..., "eval/source_beta/...": ...},
    last batch's images dict(batch, deformed, canonical, source_beta [N, 3, S, S])). The source
    frame's fine volume is rendered from camera_t with (alpha_t, beta(batch)) (default beta_t),
    without deformation (canonical), and deformed with the source's own expression beta_s
    (source_beta: what the field does without the target's expression). Mouth
    metrics compare the target's mouth box (nofa/train/boxes.py) cropped from both images at
    64 x 64. Deterministic rendering; the global RNG is left untouched."""
    beta = beta or (lambda b: b.beta_t)
    sums: dict[str, list[torch.Tensor]] = {}
    last: dict = {}
    with held_out_mode(model):
        for b in batches:
            vol, _ = reconstruct(model, b.image_s, b.camera_s, fine=True)
            kinds = {
                "deformed": model.render(vol, b.camera_t, b.alpha_t, beta(b))["image"],
                "canonical": model.render(vol, b.camera_t)["image"],
                "source_beta": model.render(vol, b.camera_t, b.alpha_t, b.beta_s)["image"],
            }
            box = region_box(b.landmarks_t, "mouth", b.image_t.shape[-1], margin)
            size = REGIONS["mouth"][2]
            tgt_mouth = crop_boxes(b.image_t, box, size)
            for kind, img in kinds.items():
                for k, v in image_scores(img, b.image_t, lpips).items():
                    sums.setdefault(f"eval/{kind}/{k}", []).append(v.cpu())
                for k, v in image_scores(crop_boxes(img, box, size), tgt_mouth, lpips).items():
                    sums.setdefault(f"eval/{kind}/{k}_mouth", []).append(v.cpu())
            last = {"batch": b, **kinds}
    return {k: float(torch.cat(v).mean()) for k, v in sums.items()}, last
