"""The reconstruction forward pass for training, composed from NOFAAvatar's public parts so
that reduced precision stays where it is safe.

Under `amp` (CUDA only) the image encoder E, the detail network C and the fusion networks
gamma/eta run in torch.autocast(bfloat16); their outputs are cast back to float32 before
the generator. The generator G (StyleGAN2 modulated convolutions with demodulation), the
renderer (every nofa.ops custom op: tri-plane sampling, decoding, compositing) and the SR
module always run in float32."""

from __future__ import annotations

import contextlib

import torch

from ..models import AvatarVolume, NOFAAvatar, fuse

__all__ = ["autocast", "reconstruct", "render_views"]


def autocast(enabled: bool, device: torch.device):
    """bfloat16 autocast on CUDA when enabled; a no-op otherwise (CPU training is float32)."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def reconstruct(
    model: NOFAAvatar,
    image: torch.Tensor,
    camera: torch.Tensor,
    fine: bool,
    amp: bool = False,
    coarse_grad: bool = True,
) -> tuple[AvatarVolume, dict]:
    """Same graph as `model.reconstruct` (eqs. 1-3). image [N, 3, S, S], camera [N, 25].

    Returns (volume, coarse): the fine volume V_e (V_c when not `fine`) and the render of V_c
    from `camera` (dict of image [N, 3, S, S], image_raw, depth [N, 1, r, r]). With
    `coarse_grad=False` the coarse path runs without autograd (the detail stage: E is frozen)."""
    dev = image.device
    grad = torch.enable_grad() if coarse_grad else torch.no_grad()
    with grad:
        with autocast(amp, dev):
            ws = model.encoder(image)
        ws = ws.float() + model.generator.w_avg.float()
        f_c, skip = model.generator.head(ws)
        coarse_vol = model.volume_from_feature(f_c, skip, ws)
        coarse = model.render(coarse_vol, camera)
    if not fine:
        return coarse_vol, coarse
    with autocast(amp, dev):
        f_res = model.detail(image - coarse["image"])
        f_e = fuse(f_c, f_res, model.gamma, model.eta)
    vol = model.volume_from_feature(f_e.float(), skip, ws)
    vol.planes_coarse, vol.coarse = coarse_vol.planes, coarse
    return vol, coarse


def render_views(
    model: NOFAAvatar,
    volume: AvatarVolume,
    camera_s: torch.Tensor,
    camera_t: torch.Tensor,
    source: dict | None = None,
) -> dict:
    """Render `volume` from both cameras -> dict of {image,raw,depth}_{s,t}; `source` reuses a
    render from camera_s already made."""
    out_s = source if source is not None else model.render(volume, camera_s)
    out_t = model.render(volume, camera_t)
    return {
        "image_s": out_s["image"],
        "raw_s": out_s["image_raw"],
        "depth_s": out_s["depth"],
        "image_t": out_t["image"],
        "raw_t": out_t["image_raw"],
        "depth_t": out_t["depth"],
    }
