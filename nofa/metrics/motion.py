"""AED and APD: motion accuracy from 3DMM coefficients (docs/metrics.md, "AED / APD").

The user's 3DMM estimator (e.g. Deep3DFaceRecon) is run on the predicted and the target
frames; nofa reads its coefficient files (:mod:`nofa.io.coeffs`) and computes, over the
frames matched by name,

    AED = mean_t  mean_{k<64} | exp_pred[t, k] - exp_target[t, k] |
    APD = mean_t  mean_{k<6}  | pose_pred[t, k] - pose_target[t, k] |,  pose = [angle (rad), trans]

i.e. the mean absolute difference per coefficient (an L1 distance divided by the width).
"""

from __future__ import annotations

import numpy as np

__all__ = ["aed_apd"]


def aed_apd(
    exp_pred: np.ndarray,
    exp_target: np.ndarray,
    pose_pred: np.ndarray | None = None,
    pose_target: np.ndarray | None = None,
) -> tuple[float, float | None]:
    """exp [T, 64] each, pose [T, 6] each (or None) -> (AED, APD or None)."""
    exp_pred, exp_target = np.asarray(exp_pred, np.float64), np.asarray(exp_target, np.float64)
    if exp_pred.shape != exp_target.shape or exp_pred.ndim != 2:
        raise ValueError(
            f"expression arrays must both be [T, K], got {list(exp_pred.shape)} and "
            f"{list(exp_target.shape)}"
        )
    aed = float(np.abs(exp_pred - exp_target).mean())
    apd = None
    if pose_pred is not None and pose_target is not None:
        pose_pred, pose_target = (
            np.asarray(pose_pred, np.float64),
            np.asarray(pose_target, np.float64),
        )
        if pose_pred.shape != pose_target.shape or pose_pred.shape[-1] != 6:
            raise ValueError(
                f"pose arrays must both be [T, 6], got {list(pose_pred.shape)} and "
                f"{list(pose_target.shape)}"
            )
        apd = float(np.abs(pose_pred - pose_target).mean())
    return aed, apd
