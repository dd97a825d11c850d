"""Fit the template head's geometry to one person's landmarks: a smooth warp of space.

The person's 3D landmarks come from their 68 image landmarks and the estimated camera: each 2D
landmark is back-projected along its camera ray onto the camera depth of the posed template
landmark (nofa.faces.LANDMARKS_3D), so the targets differ from the template only across the
viewing direction (one photo says nothing about depth), optionally made left-right symmetric.

The warp maps template space to the person's: a global part (per-axis scale about the
landmarks' centroid plus a translation; the depth scale is the geometric mean of the width
and height scales, again because one view says nothing about depth) and a Gaussian RBF
displacement fitted to what the global part leaves, ridge-regularised (`smoothing`) so that
close, noisy landmarks (lids, lips) do not fold space. Far from the face (back of the head)
the RBF part decays to zero and only the global part remains.

The warped head is evaluated backwards: density and colour at p are the template's at B(p),
where B is the warp fitted from the targets back to the template landmarks, so its landmarks
land on the targets (exactly up to the smoothing) without inverting anything.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from .template import TemplateHead

__all__ = [
    "LandmarkWarp",
    "WarpConfig",
    "WarpedHead",
    "backproject_landmarks",
    "fit_head_to_landmarks",
    "invert_warp",
    "project_points",
    "symmetrise",
]


@dataclasses.dataclass
class WarpConfig:
    sigma: float = 0.05  # Gaussian RBF width (world units; the eyes are 0.14 apart)
    smoothing: float = 0.05  # ridge on the RBF weights, relative to the kernel's diagonal (1)
    symmetry: float = (
        1.0  # 0: the photo's landmarks as they are; 1: their left-right symmetric part
    )
    jaw_weight: float = 0.5  # trust in the jaw (silhouette) points relative to the inner ones
    max_gradient: float = (
        0.5  # the RBF part is scaled down until its spatial gradient is below this
    )


class LandmarkWarp:
    """A smooth map of space fitted on landmark pairs: points [M, 3] -> warped points [M, 3].

    `LandmarkWarp(src, dst)(src) ~= dst` (up to the ridge smoothing); identity when dst == src.
    src, dst: [N, 3] (numpy or torch); weights [N]: trust per pair (smoothing / weight per point).
    """

    def __init__(
        self,
        src,
        dst,
        sigma: float = 0.05,
        smoothing: float = 0.05,
        weights=None,
        max_gradient: float | None = 0.5,
    ) -> None:
        src = np.asarray(src, np.float64)
        dst = np.asarray(dst, np.float64)
        if src.ndim != 2 or src.shape[1] != 3 or src.shape != dst.shape or len(src) < 4:
            raise ValueError(
                f"src and dst must both be [N, 3] with N >= 4, got {list(src.shape)} and "
                f"{list(dst.shape)}"
            )
        if not (np.isfinite(src).all() and np.isfinite(dst).all()):
            raise ValueError("src and dst must be finite")
        if sigma <= 0 or smoothing < 0:
            raise ValueError(f"sigma must be > 0 and smoothing >= 0, got {sigma!r}, {smoothing!r}")
        w = np.ones(len(src)) if weights is None else np.asarray(weights, np.float64)
        if w.shape != (len(src),) or not (w > 0).all():
            raise ValueError(f"weights must be [N] positive numbers, got shape {list(w.shape)}")
        # Global part: per-axis scale about the centroid, weighted least squares in x and y.
        c_src = (w[:, None] * src).sum(0) / w.sum()
        c_dst = (w[:, None] * dst).sum(0) / w.sum()
        a, b = src - c_src, dst - c_dst
        scale = np.ones(3)
        for k in (0, 1):
            den = (w * a[:, k] ** 2).sum()
            scale[k] = (w * a[:, k] * b[:, k]).sum() / den if den > 1e-12 else 1.0
        scale[:2] = np.clip(scale[:2], 0.5, 2.0)
        scale[2] = float(np.sqrt(scale[0] * scale[1]))
        self.c_src, self.c_dst, self.scale = c_src, c_dst, scale
        rest = dst - self._global(src)
        kernel = self._kernel(src, src, sigma)
        self.weights = np.linalg.solve(kernel + np.diag(smoothing / w), rest)
        self.src, self.sigma = src, sigma
        self.damping = 1.0
        if max_gradient is not None:
            g = self._max_gradient()
            if g > max_gradient:
                self.damping = max_gradient / g

    def _global(self, p: np.ndarray) -> np.ndarray:
        return (p - self.c_src) * self.scale + self.c_dst

    @staticmethod
    def _kernel(p: np.ndarray, q: np.ndarray, sigma: float) -> np.ndarray:
        d2 = ((p[:, None, :] - q[None, :, :]) ** 2).sum(-1)
        return np.exp(-d2 / (2 * sigma**2))

    def _max_gradient(self) -> float:
        """Largest spectral norm of the RBF displacement's Jacobian on a grid around the
        landmarks."""
        lo, hi = self.src.min(0) - 2 * self.sigma, self.src.max(0) + 2 * self.sigma
        axes = [np.linspace(lo[k], hi[k], 9) for k in range(3)]
        grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
        grid = np.concatenate([grid, self.src])
        diff = grid[:, None, :] - self.src[None]  # [G, N, 3]
        k = np.exp(-(diff**2).sum(-1) / (2 * self.sigma**2))  # [G, N]
        jac = (
            -np.einsum("gn,gnj,nk->gkj", k, diff, self.weights) / self.sigma**2
        )  # d disp_k / d p_j
        return float(np.linalg.norm(jac, ord=2, axis=(1, 2)).max())

    def displacement_rbf(self, points: torch.Tensor) -> torch.Tensor:
        src = points.new_tensor(self.src)
        wts = points.new_tensor(self.weights) * self.damping
        k = torch.exp(-(torch.cdist(points, src) ** 2) / (2 * self.sigma**2))
        return k @ wts

    def __call__(self, points):
        """points [M, 3] (torch or numpy, same type back) -> warped points [M, 3]."""
        if isinstance(points, np.ndarray):
            return self(torch.from_numpy(np.array(points, np.float64))).numpy()
        g = (points - points.new_tensor(self.c_src)) * points.new_tensor(
            self.scale
        ) + points.new_tensor(self.c_dst)
        return g + self.displacement_rbf(points)


def invert_warp(warp: LandmarkWarp, targets, iterations: int = 30):
    """Points q with warp(q) = targets [M, 3], by fixed-point iteration (the warp is near a
    scaling)."""
    t = (
        torch.from_numpy(np.array(targets, np.float64))
        if not torch.is_tensor(targets)
        else targets.double()
    )
    scale = t.new_tensor(warp.scale)
    q = (t - t.new_tensor(warp.c_dst)) / scale + t.new_tensor(warp.c_src)
    for _ in range(iterations):
        q = q - (warp(q) - t) / scale
    return q.numpy()


def project_points(points: np.ndarray, label, size: int) -> np.ndarray:
    """World points [M, 3] -> pixel coordinates [M, 2] in a size x size image of camera `label`
    [25]."""
    lab = np.asarray(label, np.float64).reshape(25)
    w2c = np.linalg.inv(lab[:16].reshape(4, 4))
    k = lab[16:].reshape(3, 3)
    cam = np.asarray(points, np.float64) @ w2c[:3, :3].T + w2c[:3, 3]
    uv = np.stack(
        [k[0, 0] * cam[:, 0] / cam[:, 2] + k[0, 2], k[1, 1] * cam[:, 1] / cam[:, 2] + k[1, 2]], 1
    )
    return uv * size


def backproject_landmarks(
    landmarks: np.ndarray, label, size: int, template: np.ndarray | None = None
) -> np.ndarray:
    """The person's 3D landmarks [68, 3]: each 2D landmark [68, 2] (pixels of a size x size crop)
    back-projected along its ray of camera `label` [25] onto the camera depth of the template's
    landmark (default nofa.faces.LANDMARKS_3D)."""
    from ...faces import LANDMARKS_3D

    template = LANDMARKS_3D if template is None else np.asarray(template, np.float64)
    lm = np.asarray(landmarks, np.float64)
    if lm.shape != template[:, :2].shape or not np.isfinite(lm).all():
        raise ValueError(
            f"landmarks must be finite [{len(template)}, 2] pixels, got shape {list(lm.shape)}"
        )
    lab = np.asarray(label, np.float64).reshape(25)
    c2w = lab[:16].reshape(4, 4)
    k = lab[16:].reshape(3, 3)
    w2c = np.linalg.inv(c2w)
    depth = (template @ w2c[:3, :3].T + w2c[:3, 3])[:, 2]
    uv = lm / size
    rays = np.stack(
        [(uv[:, 0] - k[0, 2]) / k[0, 0], (uv[:, 1] - k[1, 2]) / k[1, 1], np.ones(len(uv))], 1
    )
    return (rays * depth[:, None]) @ c2w[:3, :3].T + c2w[:3, 3]


def symmetrise(points: np.ndarray, amount: float = 1.0) -> np.ndarray:
    """Blend 68 landmarks [68, 3] towards their left-right symmetric part (x -> -x, partner
    swap)."""
    from ...faces.landmarks3d import MIRROR

    mirrored = np.asarray(points, np.float64)[MIRROR] * np.array([-1.0, 1.0, 1.0])
    return (1 - amount) * points + amount * 0.5 * (points + mirrored)


def fit_head_to_landmarks(
    landmarks: np.ndarray,
    label,
    size: int,
    cfg: WarpConfig | None = None,
    head: TemplateHead | None = None,
) -> tuple[WarpedHead, dict]:
    """The template head warped so its 3D landmarks land on the person's (see module doc).

    landmarks [68, 2]: the person's, in pixels of the size x size aligned crop; label [25]: its
    camera. Returns (warped head, info) with info: the targets [68, 3], the warped head's landmarks
    [68, 3] and the landmark reprojection error (RMS px at `size`) before and after.
    """
    from ...faces import LANDMARKS_3D

    cfg = cfg or WarpConfig()
    targets = symmetrise(backproject_landmarks(landmarks, label, size), cfg.symmetry)
    weights = np.ones(68)
    weights[:17] = cfg.jaw_weight
    # Backward warp (person -> template): the warped head reads the template at backward(p).
    backward = LandmarkWarp(
        targets, LANDMARKS_3D, cfg.sigma, cfg.smoothing, weights, cfg.max_gradient
    )
    moved = invert_warp(backward, LANDMARKS_3D)
    lm = np.asarray(landmarks, np.float64)

    def rms(points: np.ndarray) -> float:
        return float(np.sqrt(((project_points(points, label, size) - lm) ** 2).sum(1).mean()))

    info = {
        "targets": targets,
        "landmarks": moved,
        "rms_px_before": rms(LANDMARKS_3D),
        "rms_px_after": rms(moved),
        "rms_px_targets": rms(targets),
        "scale": (1 / backward.scale).tolist(),
        "damping": backward.damping,
    }
    return WarpedHead(backward, head), info


class WarpedHead:
    """The template head seen through a backward warp: field(p) = head(backward(p)).

    Same interface as TemplateHead (sdf, density, hair_weight, density_and_colour, __call__).
    The sdf is the template's at the warped point: not an exact distance, but within the warp's
    gradient bound of one (enough for sphere tracing and for the colour shell).
    """

    def __init__(self, backward: LandmarkWarp, head: TemplateHead | None = None) -> None:
        self.backward = backward
        self.head = head or TemplateHead()

    def _b(self, p: torch.Tensor) -> torch.Tensor:
        return self.backward(p.double()).to(p.dtype)

    def sdf(self, p: torch.Tensor) -> torch.Tensor:
        return self.head.sdf(self._b(p))

    def density(self, p: torch.Tensor) -> torch.Tensor:
        return self.head.density(self._b(p))

    def hair_weight(self, p: torch.Tensor) -> torch.Tensor:
        return self.head.hair_weight(self._b(p))

    def density_and_colour(self, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.head.density_and_colour(self._b(p))

    def __call__(self, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.head(self._b(p))
