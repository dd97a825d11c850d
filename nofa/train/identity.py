"""The identity loss (paper eq. 12): L_id = 1 - cos(F(I_t), F(I_hat)), F a face-recognition
network (docs/training.md, "Identity loss").

F is ArcFace's IResNet (nofa.models.arcface), loaded from the `backbone.pth` that
InsightFace's `arcface_torch` recipes produce, given by the user (`loss.arcface_weights`);
nofa ships and downloads no weights. `loss.arcface_random = true` builds a small randomly
initialised IResNet instead (tests and CPU proofs only: it measures no identity).

Face crop: training frames are EG3D/FFHQ-aligned crops, so the face sits at a fixed place;
the box `face_box` (fractions of the image, default nofa.metrics' DEFAULT_FACE_BOX, the one
the CSIM metric uses: eyes and mouth land where ArcFace's 112 x 112 template has them) is
cropped from both images and resized to the network's input size (112 px for the published
nets) by bilinear sampling; images in [-1, 1] are what IResNet expects. The network is
frozen and in eval mode (BatchNorm uses its running statistics); gradients flow to I_hat.
"""

from __future__ import annotations

import os

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..metrics.identity import DEFAULT_FACE_BOX
from ..models.arcface import IResNet, load_arcface
from .boxes import crop_boxes

__all__ = ["IdentityLoss", "build_face_recognizer"]


def build_face_recognizer(
    weights: str | os.PathLike = "", random: bool = False, seed: int = 0
) -> IResNet:
    """ArcFace IResNet from `weights` (an arcface_torch backbone.pth), or with `random` a small
    random IResNet (layers 1,1,1,1, widths 8,16,16,32, 112 px input) drawn from `seed` without
    touching the global RNG. Frozen, eval mode."""
    if random:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = IResNet(layers=(1, 1, 1, 1), num_features=64, widths=(8, 16, 16, 32), spatial=7)
    else:
        if not weights:
            raise FileNotFoundError(
                "the identity loss needs ArcFace weights: set loss.arcface_weights=/path/to/"
                "backbone.pth (the IResNet state_dict InsightFace's arcface_torch produces, e.g. "
                "ms1mv3 r50/r100; nofa does not download it), or loss.id=0 to train without it. "
                "For tests only: loss.arcface_random=true"
            )
        net = load_arcface(weights)
    return net.eval().requires_grad_(False)


class IdentityLoss(nn.Module):
    """Mean of 1 - cos(F(target), F(pred)) over the batch, in [0, 2]; images [N, 3, S, S] in [-1,
    1]."""

    def __init__(
        self, net: IResNet, face_box: tuple[float, float, float, float] = DEFAULT_FACE_BOX
    ) -> None:
        super().__init__()
        l, t, r, b = face_box
        if not (0 <= l < r <= 1 and 0 <= t < b <= 1):
            raise ValueError(
                f"face_box must be (left, top, right, bottom) fractions in [0, 1], got {face_box}"
            )
        self.net, self.face_box = net, tuple(float(v) for v in face_box)

    def train(self, mode: bool = True) -> IdentityLoss:
        super().train(mode)
        self.net.eval()  # always running statistics: the recogniser is frozen
        return self

    def crop(self, images: torch.Tensor) -> torch.Tensor:
        """The face box of images [N, 3, S, S] resized to the network's input -> [N, 3, 112,
        112]."""
        n, _, h, w = images.shape
        l, t, r, b = self.face_box
        box = torch.tensor([[l * w, t * h, r * w, b * h]], device=images.device).expand(n, 4)
        size = self.net.input_size
        if images.shape[-1] * (r - l) > 2 * size:  # large frames: antialias before sampling
            images = F.interpolate(
                images.float(),
                scale_factor=2 * size / (images.shape[-1] * (r - l)),
                mode="bilinear",
                antialias=True,
                align_corners=False,
            )
            box = box * (images.shape[-1] / w)
        return crop_boxes(images, box, (size, size))

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(self.crop(images))

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if pred.shape != target.shape or pred.dim() != 4 or pred.shape[1] != 3:
            raise ValueError(
                f"pred and target must be images [N, 3, S, S] of one shape, got {list(pred.shape)} "
                f"and {list(target.shape)}"
            )
        with torch.no_grad():
            e_t = self.embed(target)
        e_p = self.embed(pred)
        cos = F.cosine_similarity(e_p.float(), e_t.float(), dim=1, eps=1e-8)
        return (1 - cos).clamp(0.0, 2.0).mean()
