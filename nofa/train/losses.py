"""Reconstruction losses of the paper (eqs. 5-9): LPIPS, L2, depth L2, and the metrics of
the held-out evaluation (PSNR).

LPIPS runs through the `lpips` package. Its learned linear heads ship inside the package;
the trunk needs torchvision's ImageNet weights, which nofa never downloads: they are read
from `loss.lpips_backbone` (or the torch hub cache when the file is already there), and a
missing file is an error before training starts that names the file."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    "BACKBONE_FILES",
    "LPIPSLoss",
    "build_lpips",
    "depth_l2",
    "l2",
    "psnr",
    "resolve_backbone",
]

# torchvision's file names for the ImageNet weights of each LPIPS trunk.
BACKBONE_FILES = {
    "alex": "alexnet-owt-7be5be79.pth",
    "vgg": "vgg16-397923af.pth",
    "squeeze": "squeezenet1_1-b8a52dc0.pth",
}


def resolve_backbone(net: str, path: str) -> Path:
    """The trunk weights file for `net`: `path` if given, else the torch hub cache. Raises
    FileNotFoundError naming the file that is needed."""
    if net not in BACKBONE_FILES:
        raise ValueError(f"loss.lpips_net must be one of {sorted(BACKBONE_FILES)}, got {net!r}")
    name = BACKBONE_FILES[net]
    if path:
        p = Path(path).expanduser()
        if p.is_dir():
            p = p / name
        if not p.is_file():
            raise FileNotFoundError(
                f"LPIPS backbone weights not found at {p}: loss.lpips_backbone must point to "
                f"torchvision's ImageNet {net} weights ({name}); nofa does not download them"
            )
        return p
    cached = Path(torch.hub.get_dir()) / "checkpoints" / name
    if cached.is_file():
        return cached
    raise FileNotFoundError(
        f"LPIPS needs torchvision's ImageNet {net} weights ({name}); set loss.lpips_backbone="
        f"/path/to/{name} (not found in the torch hub cache {cached.parent} either; nofa does "
        f"not download them). For tests only: loss.lpips_random_backbone=true"
    )


def build_lpips(
    net: str = "alex", backbone: str = "", random_backbone: bool = False, seed: int = 0
) -> nn.Module:
    """lpips.LPIPS with the package's linear heads and the trunk from `backbone` (or random
    when `random_backbone`: drawn from `seed`, so a resumed run gets the same trunk). Frozen,
    eval mode. The global RNG is left as it was."""
    import lpips

    weights = None if random_backbone else resolve_backbone(net, backbone)
    with warnings.catch_warnings(), torch.random.fork_rng(devices=[]):
        warnings.simplefilter("ignore")  # torchvision's `pretrained=` deprecation inside lpips
        torch.manual_seed(seed)
        model = lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False)
    if weights is not None:
        sd = torch.load(weights, map_location="cpu", weights_only=True)
        _load_trunk(model.net, sd, weights)
    model.eval().requires_grad_(False)
    return model


def _load_trunk(trunk: nn.Module, sd: dict, where: Path) -> None:
    # lpips splits torchvision's `features.{i}` into slices named `slice{k}.{i}`: map by index i.
    # (squeezenet and vgg have the same `features.{i}` layout in torchvision.)
    targets = {}
    for name in trunk.state_dict():
        _, idx, rest = name.split(".", 2)
        targets[f"features.{idx}.{rest}"] = name
    missing = [k for k in targets if k not in sd]
    if missing:
        raise ValueError(
            f"{where} is not torchvision's ImageNet weights for this LPIPS trunk: missing "
            f"{missing[:4]}"
        )
    trunk.load_state_dict({t: sd[s] for s, t in targets.items()})


class LPIPSLoss(nn.Module):
    """Mean LPIPS distance of images in [-1, 1] [N, 3, H, W]; inputs smaller than `min_size`
    are bilinearly resized up first (the trunks need >= 64 px; raw 16-128 px renders)."""

    def __init__(self, net: nn.Module, min_size: int = 64) -> None:
        super().__init__()
        self.net, self.min_size = net, min_size

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if pred.shape[-1] < self.min_size:
            size = (self.min_size, self.min_size)
            pred = F.interpolate(
                pred, size=size, mode="bilinear", align_corners=False, antialias=False
            )
            target = F.interpolate(
                target, size=size, mode="bilinear", align_corners=False, antialias=False
            )
        return self.net(pred.float(), target.float()).mean()


def l2(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error (the paper's ||.||_2 terms, averaged over pixels)."""
    return F.mse_loss(pred.float(), target.float())


def depth_l2(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared depth error [N, 1, r, r] (world units)."""
    return F.mse_loss(pred.float(), target.float())


def psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB of images in [-1, 1] [N, 3, H, W] (peak-to-peak 2) -> [N]."""
    mse = (pred.float() - target.float()).pow(2).flatten(1).mean(1).clamp_min(1e-10)
    return 10 * torch.log10(4.0 / mse)
