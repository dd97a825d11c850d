"""Held-out evaluation: fixed latents and camera pairs from a stream never used for
training; the reconstruction from the source image is scored from the source view and from
the other view (PSNR and LPIPS of the SR image, L2 of the raw image, mean absolute depth
error), for the coarse volume V_c, the fine volume V_e, and the `w_avg` baseline (the
average face, no encoder)."""
from __future__ import annotations

import torch

from ..models import AvatarVolume, NOFAAvatar
from .data import HELDOUT_STREAM, SyntheticBatch, SyntheticSource
from .forward import reconstruct, render_views
from .losses import LPIPSLoss, psnr

__all__ = ["evaluate", "heldout_batches", "score"]


def heldout_batches(source: SyntheticSource, samples: int, batch_size: int) -> list[SyntheticBatch]:
    return [source.batch(range(i, min(i + batch_size, samples)), HELDOUT_STREAM) for i in range(0, samples, batch_size)]


def score(pred: dict, batch: SyntheticBatch, lpips: LPIPSLoss | None) -> dict[str, torch.Tensor]:
    """Per-sample metrics [N] for the source (s) and other (t) view."""
    out = {}
    for v in ("s", "t"):
        img, raw, dep = pred[f"image_{v}"], pred[f"raw_{v}"], pred[f"depth_{v}"]
        tgt_img, tgt_raw, tgt_dep = getattr(batch, f"image_{v}"), getattr(batch, f"raw_{v}"), getattr(batch, f"depth_{v}")
        name = "source" if v == "s" else "novel"
        out[f"psnr_{name}"] = psnr(img, tgt_img)
        out[f"l2_{name}"] = (img - tgt_img).pow(2).flatten(1).mean(1)
        out[f"l2raw_{name}"] = (raw - tgt_raw).pow(2).flatten(1).mean(1)
        out[f"depth_{name}"] = (dep - tgt_dep).abs().flatten(1).mean(1)
        if lpips is not None:
            out[f"lpips_{name}"] = torch.stack([lpips(img[i:i + 1], tgt_img[i:i + 1]) for i in range(img.shape[0])])
    return out


@torch.no_grad()
def evaluate(model: NOFAAvatar, batches: list[SyntheticBatch], lpips: LPIPSLoss | None, fine: bool,
             baseline: bool = False) -> tuple[dict[str, float], dict]:
    """Mean metrics over the held-out batches -> ({"eval/coarse/psnr_novel": ..., ...}, last
    predictions for an image grid). Rendering is deterministic and the global RNG is left
    untouched (a run's random stream must not depend on when it evaluates)."""
    opts = model.renderer.options
    model.renderer.options = opts.replace(deterministic=True)
    sums: dict[str, list[torch.Tensor]] = {}
    last: dict = {}
    try:
        with torch.random.fork_rng(devices=[]):
            for b in batches:
                kinds = {}
                vol, coarse = reconstruct(model, b.image_s, b.camera_s, fine=fine)
                kinds["coarse"] = render_views(model, vol if not fine else _coarse(model, vol), b.camera_s, b.camera_t,
                                               source=coarse)
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
    finally:
        model.renderer.options = opts
    return {k: float(torch.cat(v).mean()) for k, v in sums.items()}, last


def _coarse(model: NOFAAvatar, vol: AvatarVolume) -> AvatarVolume:
    return AvatarVolume(vol.planes_coarse, vol.ws, vol.feature, vol.skip)
