"""FID (Heusel et al. 2017) with torchvision's Inception v3, weights from a user path
(docs/metrics.md, "FID").

Features: the 2048-d average-pool output of Inception v3 (torchvision layout; e.g. its
ImageNet `inception_v3_google-0cc3c7bd.pth`), images resized to 299 x 299 (bilinear) and
scaled to [-1, 1]. Statistics are running sums in float64 (memory independent of the number
of images). The Frechet distance

    FID = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1^1/2 S2 S1^1/2)^1/2)

is computed exactly from the feature rows while both sets have <= 2048 images (singular
values of X1 X2^T: O(n1 n2 D), stable for the rank-deficient covariances of small sets), and
from running float64 sums with symmetric eigendecompositions beyond; a set against itself
gives 0 up to rounding either way. Numbers from these weights
are comparable among themselves, not with papers that used the TF-Inception FID weights.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    "FIDMetric",
    "FeatureStats",
    "frechet_distance",
    "frechet_distance_rows",
    "load_inception",
]


def load_inception(path: str | os.PathLike | None) -> nn.Module:
    """torchvision Inception v3 with the state_dict at `path`, classifier removed (-> 2048-d)."""
    if path is None:
        raise ValueError(
            "FID needs Inception v3 weights: pass --inception-weights PATH (a torchvision "
            "inception_v3 state_dict, e.g. inception_v3_google-0cc3c7bd.pth); nofa downloads "
            "nothing"
        )
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Inception weights not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"{path} is not a readable torch state_dict ({type(e).__name__})") from e
    if not isinstance(state, dict) or "Conv2d_1a_3x3.conv.weight" not in state:
        raise ValueError(
            f"{path} is not a torchvision inception_v3 state_dict (no Conv2d_1a_3x3.conv.weight)"
        )
    return inception_from_state(state)


def inception_from_state(state: dict | None) -> nn.Module:
    """Build the feature network; `state` None keeps random weights (tests)."""
    from torchvision.models import inception_v3

    aux = state is None or any(k.startswith("AuxLogits.") for k in state)
    net = inception_v3(weights=None, aux_logits=aux, transform_input=False, init_weights=False)
    if state is not None:
        net.load_state_dict(state)
    net.fc = nn.Identity()
    return net.eval()


class FeatureStats:
    """Mean / covariance of feature vectors [n, D]: the rows themselves while n <= `keep_rows`
    (exact low-rank FID for small sets), float64 running sums beyond."""

    def __init__(self, keep_rows: int = 2048) -> None:
        self.n, self.s, self.ss, self.keep_rows = 0, None, None, keep_rows
        self.rows: list[np.ndarray] | None = []

    def add(self, feats: np.ndarray) -> None:
        f = np.asarray(feats, np.float64)
        self.n += f.shape[0]
        if self.rows is not None:
            self.rows.append(f)
            if self.n <= self.keep_rows:
                return
            f, self.rows = np.concatenate(self.rows), None
        if self.s is None:
            self.s, self.ss = np.zeros(f.shape[1]), np.zeros((f.shape[1], f.shape[1]))
        self.s += f.sum(0)
        self.ss += f.T @ f

    def centred(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(mean [D], centred rows [n, D]) while rows are kept, else None."""
        if self.rows is None:
            return None
        x = np.concatenate(self.rows)
        mu = x.mean(0)
        return mu, x - mu

    def mean_cov(self) -> tuple[np.ndarray, np.ndarray]:
        if self.n < 2:
            raise ValueError(f"FID needs at least 2 images per set, got {self.n}")
        c = self.centred()
        if c is not None:
            return c[0], c[1].T @ c[1] / (self.n - 1)
        mu = self.s / self.n
        cov = (self.ss - self.n * np.outer(mu, mu)) / (self.n - 1)
        return mu, cov


def frechet_distance_rows(a: FeatureStats, b: FeatureStats) -> float:
    """The Frechet distance from kept rows, exactly, in O(n1 n2 D): with centred rows X1, X2,
    S_i = X_i^T X_i / (n_i - 1), the eigenvalues of S1 S2 are the squared singular values of
    X1 X2^T / sqrt((n1 - 1)(n2 - 1)), so tr((S1 S2)^1/2) is that matrix's nuclear norm."""
    for s in (a, b):
        if s.n < 2:
            raise ValueError(f"FID needs at least 2 images per set, got {s.n}")
    (m1, x1), (m2, x2) = a.centred(), b.centred()
    k = (x1 @ x2.T) / np.sqrt((a.n - 1) * (b.n - 1))
    tr_sqrt = np.linalg.svd(k, compute_uv=False).sum()
    return float(
        ((m1 - m2) ** 2).sum() + (x1**2).sum() / (a.n - 1) + (x2**2).sum() / (b.n - 1) - 2 * tr_sqrt
    )


def _sqrt_psd(m: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((m + m.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """Frechet distance of two Gaussians (mean [D], covariance [D, D])."""
    r1 = _sqrt_psd(cov1)
    inner = r1 @ cov2 @ r1
    w = np.linalg.eigvalsh((inner + inner.T) / 2)
    tr_sqrt = np.sqrt(np.clip(w, 0, None)).sum()
    return float(((mu1 - mu2) ** 2).sum() + np.trace(cov1) + np.trace(cov2) - 2 * tr_sqrt)


class FIDMetric:
    """Add uint8 images [H, W, 3] to set "pred" or "target", then `value()`."""

    def __init__(
        self,
        weights: str | os.PathLike | None = None,
        device: str | torch.device = "cpu",
        net: nn.Module | None = None,
        batch: int = 16,
        input_size: int = 299,
    ) -> None:
        """input_size: the side images are resized to (299, Inception's; smaller only for tests)."""
        self.net = (net if net is not None else load_inception(weights)).to(device).eval()
        self.device, self.batch, self.input_size = torch.device(device), batch, input_size
        self.stats = {"pred": FeatureStats(), "target": FeatureStats()}
        self._pending: dict[str, list[np.ndarray]] = {"pred": [], "target": []}

    @torch.no_grad()
    def features(self, images: list[np.ndarray]) -> np.ndarray:
        x = torch.stack(
            [torch.from_numpy(np.ascontiguousarray(i)).permute(2, 0, 1) for i in images]
        )
        x = x.float().div(127.5).sub(1).to(self.device)
        x = F.interpolate(
            x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False
        )
        return self.net(x).double().cpu().numpy()

    def add(self, which: str, image: np.ndarray) -> None:
        pend = self._pending[which]
        pend.append(np.asarray(image))
        if len(pend) >= self.batch:
            self._flush(which)

    def _flush(self, which: str) -> None:
        by_shape: dict[tuple, list[np.ndarray]] = {}
        for im in self._pending[which]:
            by_shape.setdefault(im.shape, []).append(im)
        for ims in by_shape.values():
            self.stats[which].add(self.features(ims))
        self._pending[which] = []

    def value(self) -> float:
        for k in self._pending:
            self._flush(k)
        p, t = self.stats["pred"], self.stats["target"]
        if p.rows is not None and t.rows is not None:
            return frechet_distance_rows(p, t)
        return frechet_distance(*p.mean_cov(), *t.mean_cov())
