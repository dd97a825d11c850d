"""ArcFace's IResNet face-recognition backbone (Deng et al., "ArcFace", CVPR 2019), the
architecture InsightFace's `arcface_torch` trains, re-implemented here so that its
`backbone.pth` (a plain state_dict) loads from a user path (docs/metrics.md, "CSIM").

Input: aligned 112 x 112 RGB faces normalised to [-1, 1]; output: a 512-d embedding
(compare with cosine similarity). Layout (names match the state_dict keys):

    conv1 3x3 (3 -> 64) | bn1 | prelu | layer1..layer4 (IBasicBlocks, stride 2 each:
    112 -> 56 -> 28 -> 14 -> 7) | bn2 | flatten | dropout | fc (512*7*7 -> 512) | features (BN1d)
    IBasicBlock: bn1 | conv1 3x3 | bn2 | prelu | conv2 3x3 (stride) | bn3, + (downsample) identity

Depths: r18 [2, 2, 2, 2], r34 [3, 4, 6, 3], r50 [3, 4, 14, 3], r100 [3, 13, 30, 3],
r200 [6, 26, 60, 6]. No weights ship with nofa.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["ARCH_LAYERS", "IResNet", "load_arcface"]

ARCH_LAYERS: dict[str, tuple[int, int, int, int]] = {
    "r18": (2, 2, 2, 2),
    "r34": (3, 4, 6, 3),
    "r50": (3, 4, 14, 3),
    "r100": (3, 13, 30, 3),
    "r200": (6, 26, 60, 6),
}
_EPS = 1e-5


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


class IBasicBlock(nn.Module):
    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes, eps=_EPS)
        self.conv1 = _conv3x3(inplanes, planes)
        self.bn2 = nn.BatchNorm2d(planes, eps=_EPS)
        self.prelu = nn.PReLU(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn3 = nn.BatchNorm2d(planes, eps=_EPS)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        return out + (self.downsample(x) if self.downsample is not None else x)


class IResNet(nn.Module):
    """IResNet: faces [N, 3, S, S] in [-1, 1] (S = 16 * spatial, 112 for the published nets)
    -> embeddings [N, num_features].

    `widths` (64, 128, 256, 512 published) and `spatial` (7 published) exist so tests can
    build small nets; `load_arcface` infers them from a state_dict.
    """

    def __init__(
        self,
        layers: tuple[int, ...] = ARCH_LAYERS["r50"],
        num_features: int = 512,
        widths: tuple[int, ...] = (64, 128, 256, 512),
        spatial: int = 7,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if len(layers) != 4 or len(widths) != 4:
            raise ValueError(f"layers and widths need 4 entries, got {layers} and {widths}")
        self.input_size = 16 * spatial
        self.inplanes = widths[0]
        self.conv1 = nn.Conv2d(3, widths[0], 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0], eps=_EPS)
        self.prelu = nn.PReLU(widths[0])
        for i, (n, w) in enumerate(zip(layers, widths)):
            setattr(self, f"layer{i + 1}", self._make_layer(w, n, stride=2))
        self.bn2 = nn.BatchNorm2d(widths[-1], eps=_EPS)
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(widths[-1] * spatial * spatial, num_features)
        self.features = nn.BatchNorm1d(num_features, eps=_EPS)
        nn.init.constant_(self.features.weight, 1.0)
        self.features.weight.requires_grad = False

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes, eps=_EPS),
            )
        mods = [IBasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        mods += [IBasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(
                f"faces must have shape [N, 3, {self.input_size}, {self.input_size}], got "
                f"{list(x.shape)}"
            )
        if x.shape[-2:] != (self.input_size, self.input_size):
            x = F.interpolate(
                x,
                size=(self.input_size, self.input_size),
                mode="bilinear",
                align_corners=False,
                antialias=True,
            )
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.dropout(torch.flatten(self.bn2(x), 1))
        return self.features(self.fc(x))


def _arch_from_state(state: dict[str, torch.Tensor]) -> dict:
    layers = []
    for i in range(1, 5):
        idx = {int(m.group(1)) for k in state if (m := re.match(rf"layer{i}\.(\d+)\.", k))}
        if not idx:
            raise KeyError(f"layer{i}")
        layers.append(max(idx) + 1)
    widths = tuple(int(state[f"layer{i}.0.conv1.weight"].shape[0]) for i in range(1, 5))
    fc = state["fc.weight"]
    spatial = int(round((fc.shape[1] / widths[-1]) ** 0.5))
    return {
        "layers": tuple(layers),
        "widths": widths,
        "spatial": spatial,
        "num_features": int(fc.shape[0]),
    }


def load_arcface(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> IResNet:
    """Load an arcface_torch `backbone.pth` (any IResNet depth; inferred from the keys) in eval
    mode."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"ArcFace weights not found: {path} (give the backbone.pth that InsightFace's "
            "arcface_torch produces, e.g. its ms1mv3 r50/r100 models)"
        )
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        raise ValueError(
            f"{path} is not a readable torch state_dict ({type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''})"
        ) from e
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected an IResNet state_dict, got {type(state).__name__}")
    state = {k.removeprefix("module.").removeprefix("backbone."): v for k, v in state.items()}
    try:
        arch = _arch_from_state(state)
    except KeyError as e:
        raise ValueError(
            f"{path} is not an ArcFace IResNet state_dict (no {e.args[0]} weights; keys start "
            f"{sorted(state)[:5]})"
        ) from e
    net = IResNet(**arch)
    missing, unexpected = net.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"{path}: IResNet weights do not match the architecture inferred from them ({arch}): "
            f"missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    return net.eval()
