"""PSNR and SSIM on uint8 RGB images (scikit-image's implementations)."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["PSNR_IDENTICAL", "psnr", "ssim"]

# PSNR of identical images is +inf; nofa reports inf (and the table prints "inf"), never a cap.
PSNR_IDENTICAL = math.inf


def _check(pred: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, target = np.asarray(pred), np.asarray(target)
    if pred.shape != target.shape or pred.ndim != 3 or pred.shape[2] != 3:
        raise ValueError(
            f"pred and target must be RGB images [H, W, 3] of one shape, got {list(pred.shape)} "
            f"and {list(target.shape)}"
        )
    return pred, target


def psnr(pred: np.ndarray, target: np.ndarray) -> float:
    """PSNR in dB of uint8 images [H, W, 3] (data range 255); inf for identical images."""
    from skimage.metrics import peak_signal_noise_ratio

    pred, target = _check(pred, target)
    if np.array_equal(pred, target):
        return PSNR_IDENTICAL
    return float(peak_signal_noise_ratio(target, pred, data_range=255))


def ssim(pred: np.ndarray, target: np.ndarray) -> float:
    """SSIM of uint8 images [H, W, 3]: scikit-image's structural_similarity over the colour
    channels (7x7 uniform window, data range 255), averaged over channels."""
    from skimage.metrics import structural_similarity

    pred, target = _check(pred, target)
    return float(structural_similarity(target, pred, data_range=255, channel_axis=-1))
