"""Deep3DFaceRecon's coefficient regressor (ReconNet), for weights the user brings.

Architecture (the facts of Deep3DFaceRecon's published code, MIT; re-implemented here, see
docs/faces.md): a ResNet-50 in torchvision's layout without its fc layer (global average
pool -> [N, 2048, 1, 1]) followed by seven 1x1 convolutions with biases,
2048 -> 80 identity, 64 expression, 80 texture, 3 angle, 27 gamma (SH lighting), 2 (tx, ty)
and 1 tz, whose outputs concatenated in that order are the 257 coefficients
(`nofa.io.coeffs.DEEP3D_SLICES`). Input: the 224 x 224 crop of Deep3DFaceRecon's
five-point alignment (`nofa.faces.eg3d_crop.deep3d_crop`, rescale 102), RGB in [0, 1], no
mean/std normalisation.

Weights: Deep3DFaceRecon's `epoch_20.pth`, a dict whose key `net_recon` holds the network's
state dict (`backbone.conv1.weight`, ..., `backbone.layer4.2.bn3.*`, `final_layers.0..6.*`).
Nothing is downloaded; the file is read with `torch.load(weights_only=True)` (tensors and
plain containers only, no arbitrary pickled code).

    net = load_deep3d_net("checkpoints/face_recon/epoch_20.pth")
    coeff = coefficients_from_photo(photo, landmarks68, net)     # [257]
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import torch
from torch import nn

__all__ = [
    "DEEP3D_INPUT_SIZE",
    "DEEP3D_OUTPUT_WIDTHS",
    "Deep3DReconNet",
    "Deep3DWeightsError",
    "coefficients_from_crops",
    "coefficients_from_photo",
    "load_deep3d_net",
]

DEEP3D_INPUT_SIZE = 224
# Widths of final_layers.0..6, in the order their outputs are concatenated (= DEEP3D_SLICES).
DEEP3D_OUTPUT_WIDTHS = (80, 64, 80, 3, 27, 2, 1)
_BLOCKS = (3, 4, 6, 3)  # ResNet-50: bottleneck blocks per stage
_WIDTHS = (64, 128, 256, 512)  # bottleneck inner widths; outputs are 4x
_EXPANSION = 4
_FEATURES = 2048


class Deep3DWeightsError(ValueError):
    """A Deep3DFaceRecon checkpoint that is missing, unreadable or of another network; the
    message names the file and what was expected."""


class _Bottleneck(nn.Module):
    """torchvision's ResNet v1.5 bottleneck: the stride sits on the 3x3 convolution."""

    def __init__(self, inplanes: int, width: int, stride: int) -> None:
        super().__init__()
        out = width * _EXPANSION
        self.conv1 = nn.Conv2d(inplanes, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or inplanes != out:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, out, 1, stride=stride, bias=False), nn.BatchNorm2d(out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        idt = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        return self.relu(self.bn3(self.conv3(y)) + idt)


class _ResNet50(nn.Module):
    """ResNet-50 trunk in torchvision's module layout (so the state-dict keys are the same),
    without the fc layer: [N, 3, H, W] -> average-pooled features [N, 2048, 1, 1]."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        inplanes = 64
        for i, (n, width) in enumerate(zip(_BLOCKS, _WIDTHS)):
            blocks = []
            for b in range(n):
                blocks.append(_Bottleneck(inplanes, width, 2 if (b == 0 and i > 0) else 1))
                inplanes = width * _EXPANSION
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.avgpool(x)


class Deep3DReconNet(nn.Module):
    """Deep3DFaceRecon's coefficient regressor: [N, 3, 224, 224] RGB in [0, 1] -> [N, 257]
    (id 0:80, exp 80:144, tex 144:224, angle 224:227, gamma 227:254, trans 254:257).

    Built with random weights; :func:`load_deep3d_net` loads a checkpoint into it. Call
    `.eval()` before inference (BatchNorm uses its running statistics then)."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = _ResNet50()
        self.final_layers = nn.ModuleList(
            nn.Conv2d(_FEATURES, w, 1, bias=True) for w in DEEP3D_OUTPUT_WIDTHS
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if image.ndim != 4 or image.shape[1] != 3:
            raise ValueError(
                f"image must be [N, 3, H, W] RGB in [0, 1] (Deep3DFaceRecon's 224 crop), got "
                f"{list(image.shape)}"
            )
        f = self.backbone(image)
        return torch.cat([layer(f) for layer in self.final_layers], 1).flatten(1)


def _state_dict_of(obj: object, path: Path) -> dict[str, torch.Tensor]:
    """The network's state dict inside a loaded checkpoint: Deep3DFaceRecon's {'net_recon':
    ...} file, or a bare state dict; a 'module.' prefix (saved from DataParallel) is dropped."""
    if not isinstance(obj, dict):
        raise Deep3DWeightsError(
            f"{path}: expected Deep3DFaceRecon's checkpoint (a dict with key 'net_recon'), got "
            f"{type(obj).__name__}"
        )
    sd = obj.get("net_recon", obj)
    if not isinstance(sd, dict) or not any(str(k).endswith("conv1.weight") for k in sd):
        raise Deep3DWeightsError(
            f"{path}: not a Deep3DFaceRecon checkpoint: expected a dict with key 'net_recon' "
            f"holding the ReconNet state dict (backbone.*, final_layers.*); top-level keys: "
            f"{sorted(map(str, obj))[:8]}"
        )
    return {str(k).removeprefix("module."): v for k, v in sd.items()}


def load_deep3d_net(path: str | os.PathLike, device: str | torch.device = "cpu") -> Deep3DReconNet:
    """Deep3DFaceRecon's regressor with the weights of `path` (its `epoch_20.pth`), in eval
    mode on `device`.

    Raises Deep3DWeightsError naming the file when it is missing, unreadable, holds pickled
    objects beyond tensors and plain containers, or does not fit the architecture (the
    message lists the first missing / unexpected / wrongly shaped keys)."""
    path = Path(path)
    if not path.is_file():
        raise Deep3DWeightsError(
            f"Deep3DFaceRecon weights not found: {path} (expected its checkpoint "
            "checkpoints/<name>/epoch_20.pth, which you download from Deep3DFaceRecon_pytorch)"
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "Unsupported global" in str(e):  # a real pickle that names classes or functions
            raise Deep3DWeightsError(
                f"{path}: holds pickled Python objects beyond tensors and plain containers, so "
                "it is not loaded (torch.load weights_only=True); expected Deep3DFaceRecon's "
                "epoch_20.pth, a dict of state dicts"
            ) from e
        raise Deep3DWeightsError(
            f"{path}: not a PyTorch checkpoint (unreadable as one); expected Deep3DFaceRecon's "
            "epoch_20.pth"
        ) from e
    except (RuntimeError, OSError, EOFError, ValueError) as e:
        raise Deep3DWeightsError(
            f"{path}: not a readable PyTorch checkpoint ({type(e).__name__}"
            f"{': ' + str(e).splitlines()[0] if str(e) else ''}); expected Deep3DFaceRecon's "
            "epoch_20.pth"
        ) from e
    sd = _state_dict_of(obj, path)
    net = Deep3DReconNet()
    want = net.state_dict()
    # BatchNorm's num_batches_tracked counters do not change inference: a checkpoint saved by
    # an old PyTorch without them is fine.
    missing = [k for k in want if k not in sd and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in sd if k not in want]
    shapes = [
        f"{k} {list(sd[k].shape)} (expected {list(want[k].shape)})"
        for k in want
        if k in sd and tuple(sd[k].shape) != tuple(want[k].shape)
    ]
    if missing or unexpected or shapes:
        parts = []
        for what, keys in (("missing", missing), ("unexpected", unexpected), ("shape", shapes)):
            if keys:
                parts.append(f"{len(keys)} {what}: {', '.join(keys[:4])}")
        raise Deep3DWeightsError(
            f"{path}: not Deep3DFaceRecon's ResNet-50 ReconNet (" + "; ".join(parts) + ")"
        )
    bad = [k for k, v in sd.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise Deep3DWeightsError(f"{path}: non-finite values in {', '.join(bad[:4])}")
    net.load_state_dict(sd, strict=False)
    return net.to(device).eval()


def _crops_tensor(crops: np.ndarray, device: torch.device) -> torch.Tensor:
    a = np.asarray(crops)
    if a.ndim == 3:
        a = a[None]
    if (
        a.ndim != 4
        or a.shape[1:] != (DEEP3D_INPUT_SIZE, DEEP3D_INPUT_SIZE, 3)
        or a.dtype != np.uint8
    ):
        raise ValueError(
            f"crops must be uint8 [N, 224, 224, 3] (Deep3DFaceRecon's aligned crops), got "
            f"{a.dtype} {list(a.shape)}"
        )
    t = torch.from_numpy(np.ascontiguousarray(a)).to(device)
    return t.permute(0, 3, 1, 2).float() / 255.0  # RGB in [0, 1], as Deep3DFaceRecon feeds it


def coefficients_from_crops(crops: np.ndarray, net: Deep3DReconNet, batch: int = 16) -> np.ndarray:
    """Coefficients [N, 257] (float32) of Deep3DFaceRecon crops uint8 [N, 224, 224, 3] (or one
    [224, 224, 3]), `batch` at a time on the network's device."""
    device = next(net.parameters()).device
    x = _crops_tensor(crops, torch.device("cpu"))
    out = []
    with torch.no_grad():
        for s in range(0, x.shape[0], max(1, int(batch))):
            out.append(net(x[s : s + batch].to(device)).float().cpu())
    return torch.cat(out).numpy()


def coefficients_from_photo(
    image: np.ndarray, landmarks68: np.ndarray, net: Deep3DReconNet
) -> np.ndarray:
    """Deep3DFaceRecon's 257 coefficients [257] (float32) of the face whose 68 landmarks
    [68, 2] (photo pixels, x right, y down) are given, from a photo (uint8 [H, W, 3] or any
    array `as_rgb8` accepts): the photo is aligned exactly as Deep3DFaceRecon aligns it
    (`deep3d_crop`, 224 px, rescale 102) and fed to `net`."""
    from .eg3d_crop import deep3d_crop
    from .photo import as_rgb8

    lm = np.asarray(landmarks68, dtype=np.float64)
    if lm.shape != (68, 2) or not np.isfinite(lm).all():
        raise ValueError(
            f"landmarks68 must be 68 finite (x, y) pixel positions [68, 2], got {list(lm.shape)}"
        )
    crop, _ = deep3d_crop(as_rgb8(image, "image"), lm)
    return coefficients_from_crops(crop, net)[0]
