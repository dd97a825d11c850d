"""LPIPS with the AlexNet backbone (Zhang et al. 2018; the `lpips` package).

The `lpips` package ships its linear calibration layers; the AlexNet backbone it would fetch
from the internet instead loads from a user path: either torchvision's ImageNet AlexNet
state_dict (`alexnet-owt-7be5be79.pth`, keys `features.*`) or a complete LPIPS state_dict
(keys `net.slice*`, `lin*`).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch

__all__ = ["LPIPSMetric"]

# torchvision AlexNet `features` index -> LPIPS slice holding it (lpips.pretrained_networks.alexnet)
_SLICE_OF = {0: 1, 3: 2, 6: 3, 8: 4, 10: 5}


class LPIPSMetric:
    """LPIPS distance of uint8 images [H, W, 3] (0 for identical images)."""

    def __init__(
        self, weights: str | os.PathLike | None, device: str | torch.device = "cpu"
    ) -> None:
        if weights is None:
            raise ValueError(
                "LPIPS needs AlexNet weights: pass --lpips-weights PATH (torchvision's "
                "alexnet-owt-7be5be79.pth or an LPIPS state_dict); nofa downloads nothing"
            )
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(f"LPIPS weights not found: {path}")
        try:
            import lpips
        except ImportError as e:
            raise RuntimeError("LPIPS needs the `lpips` package: pip install lpips") from e
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torchvision's `pretrained=` deprecation inside lpips
            self.net = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise ValueError(
                f"{path} is not a readable torch state_dict ({type(e).__name__})"
            ) from e
        if isinstance(state, dict) and any(k.startswith("features.") for k in state):
            own = self.net.state_dict()
            mapped = {}
            for k, v in state.items():
                parts = k.split(".")
                if parts[0] == "features" and int(parts[1]) in _SLICE_OF:
                    mapped[f"net.slice{_SLICE_OF[int(parts[1])]}.{parts[1]}.{parts[2]}"] = v
            missing = [k for k in own if k.startswith("net.") and k not in mapped]
            if missing:
                raise ValueError(f"{path}: AlexNet state_dict lacks {missing[:4]}")
            self.net.load_state_dict({**own, **mapped})
        elif isinstance(state, dict) and any(k.startswith("net.slice") for k in state):
            res = self.net.load_state_dict(state, strict=False)
            if res.missing_keys and any(k.startswith("net.") for k in res.missing_keys):
                raise ValueError(f"{path}: LPIPS state_dict lacks {res.missing_keys[:4]}")
        else:
            raise ValueError(
                f"{path} is neither a torchvision AlexNet nor an LPIPS state_dict "
                "(keys start "
                f"{sorted(state)[:4] if isinstance(state, dict) else type(state).__name__})"
            )
        self.device = torch.device(device)
        self.net.to(self.device).eval()

    @torch.no_grad()
    def __call__(self, pred: np.ndarray, target: np.ndarray) -> float:
        if np.asarray(pred).shape != np.asarray(target).shape:
            raise ValueError(
                f"pred and target shapes differ: {np.asarray(pred).shape} vs "
                f"{np.asarray(target).shape}"
            )

        def t(a: np.ndarray) -> torch.Tensor:
            return (
                torch.from_numpy(np.ascontiguousarray(a))
                .permute(2, 0, 1)[None]
                .float()
                .div(127.5)
                .sub(1)
                .to(self.device)
            )

        return float(self.net(t(pred), t(target)).item())
