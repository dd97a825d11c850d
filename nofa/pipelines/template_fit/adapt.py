"""Fast adaptation of a tri-plane to one portrait (paper 3.4, eq. 14).

Only the tri-plane features are optimised (the decoder stays fixed), with
    L = lambda_rec * L_rec(render(front), portrait) + lambda_reg * ||D_opt - D_org||^2
where D_org is the depth rendered from the starting tri-plane. L_rec is the L2 term of
eq. 10 (LPIPS needs backbone weights, which nofa does not ship). The loss is taken over
the pixels the starting avatar covers (its accumulated weight > `mask_threshold`), because
a template's silhouette does not match the portrait's background.
"""

from __future__ import annotations

import dataclasses
import time

import torch

from ...io.avatar import Avatar
from ...render.renderer import RenderOptions

__all__ = ["AdaptConfig", "AdaptResult", "fast_adapt"]


@dataclasses.dataclass
class AdaptConfig:
    steps: int = 120
    resolution: int = 64
    lr: float = 0.02
    lambda_rec: float = 1.0
    lambda_reg: float = 1.0
    mask_threshold: float = 0.5
    coarse_samples: int = 24
    importance_samples: int = 24
    planes: str = "all"  # "all": the whole tri-plane (paper); "xy": only plane 0, see fast_adapt
    progress: bool = True


@dataclasses.dataclass
class AdaptResult:
    avatar: Avatar
    losses: list[float]
    seconds: float
    start_rgb: torch.Tensor  # [3, H, W] render of the starting avatar
    mask: torch.Tensor  # [1, H, W] pixels the loss used


def fast_adapt(
    avatar: Avatar, portrait: torch.Tensor, label: torch.Tensor, cfg: AdaptConfig | None = None
) -> AdaptResult:
    """Optimise avatar.planes so the render from `label` [25] matches `portrait` [3, H, W] in [-1,
    1].

    The portrait is resized to cfg.resolution. Returns a new Avatar (the input is untouched).

    cfg.planes = "xy" updates only plane 0 (x, y), the one facing the camera: from a single
    frontal view the (x, z) and (z, x) planes only see column sums of the image gradient,
    which shows up as vertical streaks in side views; restricting the update to the (x, y)
    plane projects the portrait onto the template along z instead.
    """
    cfg = AdaptConfig() if cfg is None else cfg
    if cfg.planes not in ("all", "xy"):
        raise ValueError(f"cfg.planes must be 'all' or 'xy', got {cfg.planes!r}")
    if not isinstance(cfg.steps, int) or cfg.steps < 0:
        raise ValueError(f"cfg.steps must be an int >= 0, got {cfg.steps!r}")
    if not isinstance(cfg.resolution, int) or cfg.resolution < 1:
        raise ValueError(f"cfg.resolution must be an int >= 1, got {cfg.resolution!r}")
    if portrait.dim() != 3 or portrait.shape[0] != 3:
        raise ValueError(f"portrait must be [3, H, W] in [-1, 1], got {list(portrait.shape)}")
    res = cfg.resolution
    target = torch.nn.functional.interpolate(portrait[None].float(), size=(res, res), mode="area")
    opts: RenderOptions = avatar.options.replace(
        deterministic=True,
        coarse_samples=cfg.coarse_samples,
        importance_samples=cfg.importance_samples,
    )
    renderer = avatar.renderer(**dataclasses.asdict(opts))
    renderer.decoder.requires_grad_(False)
    labels = label.reshape(1, 25).float()
    with torch.no_grad():
        start = renderer(avatar.planes, labels, res)
    mask = (start.weight > cfg.mask_threshold).float()
    if mask.sum() == 0:
        raise ValueError("the starting avatar covers no pixel from this camera: nothing to adapt")
    depth0 = start.depth.clone()
    base = avatar.planes.detach().clone()
    trainable = torch.nn.Parameter(base[:, :1].clone() if cfg.planes == "xy" else base.clone())
    opt = torch.optim.Adam([trainable], lr=cfg.lr)

    def current() -> torch.Tensor:
        return torch.cat([trainable, base[:, 1:]], 1) if cfg.planes == "xy" else trainable

    bar = _bar(cfg)
    losses: list[float] = []
    t0 = time.perf_counter()
    for _ in range(cfg.steps):
        out = renderer(current(), labels, res)
        rec = (((out.rgb - target) ** 2) * mask).sum() / (mask.sum() * 3)
        reg = (((out.depth - depth0) ** 2) * mask).sum() / mask.sum()
        loss = cfg.lambda_rec * rec + cfg.lambda_reg * reg
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if bar is not None:
            bar.update(1)
            bar.set_postfix(rec=f"{rec.item():.4f}", depth=f"{reg.item():.2e}")
    if bar is not None:
        bar.close()
    seconds = time.perf_counter() - t0
    meta = {
        **avatar.metadata,
        "adapted": True,
        "adapt_steps": cfg.steps,
        "adapt_resolution": res,
        "adapt_planes": cfg.planes,
        "adapt_seconds": round(seconds, 2),
        "adapt_loss_start": losses[0] if losses else None,
        "adapt_loss_end": losses[-1] if losses else None,
    }
    new = dataclasses.replace(avatar, planes=current().detach().clone(), metadata=meta)
    return AdaptResult(new, losses, seconds, start.rgb[0], mask[0])


def _bar(cfg: AdaptConfig):
    if not cfg.progress:
        return None
    from tqdm import tqdm

    return tqdm(total=cfg.steps, desc="fast adaptation", unit="step", dynamic_ncols=True)
