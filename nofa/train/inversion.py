"""Per-sample optimisation of the frozen generator: the baseline a one-shot encoder is
measured against (PTI, Roich et al. 2022: invert the portrait to a latent w of the
generator, then tune the generator itself around that pivot).

NOFA++'s point is quality close to such test-time optimisation without it; the training
proof (benchmarks/train_proof.py) reports both with the time per sample. The budget follows
PTI's published defaults (450 latent steps at lr 5e-3 in W, then 350 generator steps at
lr 3e-4, LPIPS + L2 on the source view), fixed before any result was seen.
"""

from __future__ import annotations

import copy
import dataclasses

import torch

from ..models import AvatarVolume, NOFAAvatar
from .evaluation import held_out_mode
from .losses import LPIPSLoss

__all__ = ["InversionBudget", "invert"]


@dataclasses.dataclass(frozen=True)
class InversionBudget:
    latent_steps: int = 450  # Adam steps on w (one W code broadcast to every layer)
    latent_lr: float = 5e-3
    tune_steps: int = 350  # Adam steps on the generator and super-resolution weights
    tune_lr: float = 3e-4
    l2_weight: float = 1.0
    lpips_weight: float = 1.0

    def __post_init__(self) -> None:
        for name in ("latent_steps", "tune_steps"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 0:
                raise ValueError(f"{name} must be an int >= 0, got {v!r}")
        for name in ("latent_lr", "tune_lr"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")


def _volume(model: NOFAAvatar, ws: torch.Tensor) -> AvatarVolume:
    return model.volume_from_feature(*model.generator.head(ws), ws)


def invert(
    model: NOFAAvatar,
    image: torch.Tensor,
    camera: torch.Tensor,
    lpips: LPIPSLoss | None,
    budget: InversionBudget | None = None,
) -> tuple[NOFAAvatar, AvatarVolume]:
    """Fit the generator of `model` to one portrait: image [1, 3, S, S] in [-1, 1] seen from
    camera [1, 25]. Returns (a tuned copy of `model`, its volume for the portrait); `model`
    itself is left untouched. Rendering is deterministic; the global RNG is left as it was.
    """
    b = budget or InversionBudget()
    if image.dim() != 4 or image.shape[0] != 1:
        raise ValueError(f"image must have shape [1, 3, S, S], got {list(image.shape)}")
    if camera.shape != (1, 25):
        raise ValueError(f"camera must have shape [1, 25], got {list(camera.shape)}")
    tuned = copy.deepcopy(model).eval().requires_grad_(False)

    def loss(vol: AvatarVolume) -> torch.Tensor:
        pred = tuned.render(vol, camera)["image"]
        out = b.l2_weight * (pred - image).pow(2).mean()
        if lpips is not None and b.lpips_weight:
            out = out + b.lpips_weight * lpips(pred, image)
        return out

    with held_out_mode(tuned), torch.enable_grad():
        w = tuned.generator.w_avg.detach().clone()[None, None].requires_grad_(True)
        opt = torch.optim.Adam([w], lr=b.latent_lr)
        for _ in range(b.latent_steps):
            opt.zero_grad(set_to_none=True)
            loss(_volume(tuned, w.expand(1, tuned.num_ws, -1))).backward()
            opt.step()
        ws = w.detach().expand(1, tuned.num_ws, -1).contiguous()
        params = [*tuned.generator.parameters(), *tuned.superres.parameters()]
        for p in params:
            p.requires_grad_(True)
        opt = torch.optim.Adam(params, lr=b.tune_lr)
        for _ in range(b.tune_steps):
            opt.zero_grad(set_to_none=True)
            loss(_volume(tuned, ws)).backward()
            opt.step()
        tuned.requires_grad_(False)
        with torch.no_grad():
            vol = _volume(tuned, ws)
    return tuned, vol
