"""Training stages: which parts of NOFAAvatar train, where the data comes from, the loss.

A stage is a class registered under a name (`@register_stage("encoder")`); the trainer asks
`get_stage(name)` for it. The video stages (deformation, hybrid, audio) plug in the same
way (nofa/train/video_stages.py): subclass `Stage`, set `trained`, implement
`data_sources`, `forward`, the criterion and the evaluation.

encoder (paper eqs. 5-8): G (generator, decoder, SR) frozen; E trains. The coarse volume
    V_c = G(E(I_s) + w_avg) is rendered from the source and the other camera.
detail (eq. 9): E and G frozen; the detail network C and the fusion networks gamma, eta
    train; the fine volume V_e is rendered from both cameras.
Both: L = l_lpips * LPIPS + l_l2 * L2 + l_depth * L_depth over SR images, raw images
(both views) and depths (both views), defaults 1, 1, 2.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..models import NOFAAvatar
from .config import TrainConfig
from .data import SyntheticBatch, SyntheticSource
from .forward import reconstruct, render_views
from .losses import LPIPSLoss, depth_l2, l2
from .registry import STAGES, get_stage, register_stage

__all__ = [
    "STAGES",
    "DetailStage",
    "EncoderStage",
    "ReconstructionLoss",
    "Stage",
    "StageModule",
    "get_stage",
    "register_stage",
]


class ReconstructionLoss(nn.Module):
    """Eqs. 5-8: LPIPS + L2 over {SR, raw} x {source, other view}, depth L2 over both views."""

    def __init__(
        self,
        lpips: LPIPSLoss | None,
        w_lpips: float = 1.0,
        w_l2: float = 1.0,
        w_depth: float = 2.0,
        lpips_raw: bool = True,
    ) -> None:
        super().__init__()
        self.lpips, self.w_lpips, self.w_l2, self.w_depth = lpips, w_lpips, w_l2, w_depth
        self.lpips_raw = lpips_raw

    def forward(self, pred: dict, batch: SyntheticBatch) -> tuple[torch.Tensor, dict[str, float]]:
        pairs = [
            (pred["image_s"], batch.image_s),
            (pred["image_t"], batch.image_t),
            (pred["raw_s"], batch.raw_s),
            (pred["raw_t"], batch.raw_t),
        ]
        terms = {
            "l2": sum(l2(p, t) for p, t in pairs),
            "depth": depth_l2(pred["depth_s"], batch.depth_s)
            + depth_l2(pred["depth_t"], batch.depth_t),
        }
        total = self.w_l2 * terms["l2"] + self.w_depth * terms["depth"]
        if self.lpips is not None and self.w_lpips > 0:
            terms["lpips"] = sum(
                self.lpips(p, t) for p, t in (pairs if self.lpips_raw else pairs[:2])
            )
            total = total + self.w_lpips * terms["lpips"]
        scalars = {f"loss/{k}": float(v.detach()) for k, v in terms.items()}
        scalars["loss/total"] = float(total.detach())
        return total, scalars


class Stage:
    """One training stage. `trained`: names of NOFAAvatar's child modules that train (None: all
    of them); all other parameters are frozen (requires_grad False, never handed to the
    optimiser).

    The trainer asks the stage for everything that differs between stages: its data sources
    (`data_sources`, a dict of objects with `batch(indices)`), which source and which data
    position a step uses (`schedule`), the parts that train in that step (`prepare`), the
    criterion (`build_criterion`), the forward and the loss, the columns of the training image
    grid (`train_images`), the held-out batches (`heldout`) and their evaluation (`evaluate`)."""

    name = "base"
    trained: tuple[str, ...] | None = ()
    fine = True

    def check_config(self, cfg: TrainConfig) -> None:
        """Raise ConfigError when `cfg` lacks something this stage needs (before any work)."""

    def trained_parts(self, model: NOFAAvatar) -> tuple[str, ...]:
        return tuple(n for n, _ in model.named_children()) if self.trained is None else self.trained

    def configure(self, model: NOFAAvatar) -> list[nn.Parameter]:
        """Freeze everything but `trained`; returns the trained parameters."""
        children = dict(model.named_children())
        parts = self.trained_parts(model)
        unknown = [n for n in parts if n not in children]
        if unknown:
            raise ValueError(
                f"stage {self.name!r} trains unknown parts {unknown}; parts: {sorted(children)}"
            )
        model.requires_grad_(False)
        params = []
        for n in parts:
            children[n].requires_grad_(True)
            params += [p for p in children[n].parameters() if p.requires_grad]
        return params

    def data_source(self, model: NOFAAvatar, cfg: TrainConfig) -> SyntheticSource:
        d = cfg.data
        return SyntheticSource(
            model, cfg.run.seed, d.truncation, d.yaw_std, d.pitch_std, d.max_sigma
        )

    def data_sources(self, model: NOFAAvatar, cfg: TrainConfig) -> dict[str, object]:
        """{kind: source}; the first one is the stage's main source (`Trainer.source`)."""
        return {"synthetic": self.data_source(model, cfg)}

    def schedule(self, step: int) -> tuple[str, int]:
        """(source kind, data position) of optimiser step `step`: the position counts the batches
        drawn from that source before this step, so a resumed run draws what it would have."""
        return "synthetic", step

    def prepare(self, model: NOFAAvatar, kind: str) -> None:
        """Called before the forward of each step with the step's source kind (hybrid switches
        the trained parts here)."""

    def build_criterion(
        self, cfg: TrainConfig, lpips: LPIPSLoss | None, device: torch.device
    ) -> nn.Module:
        return ReconstructionLoss(
            lpips, cfg.loss.lpips, cfg.loss.l2, cfg.loss.depth, cfg.loss.lpips_raw
        )

    def forward(self, model: NOFAAvatar, batch, amp: bool = False) -> dict:
        raise NotImplementedError

    def loss(self, criterion: nn.Module, pred: dict, batch):
        return criterion(pred, batch)

    def train_images(self, batch, pred: dict) -> list[torch.Tensor]:
        """Columns of the training image grid."""
        return [batch.image_s, batch.image_t, pred["image_t"], batch.depth_t, pred["depth_t"]]

    def heldout(self, sources: dict[str, object], cfg: TrainConfig) -> list:
        """The held-out batches (drawn once per run)."""
        from .evaluation import heldout_batches

        return heldout_batches(sources["synthetic"], cfg.eval.samples, cfg.eval.batch_size)

    def evaluate(
        self, model: NOFAAvatar, batches: list, lpips: LPIPSLoss | None, cache: dict, rows: int = 4
    ) -> tuple[dict[str, float], list[torch.Tensor]]:
        """Held-out metrics and the columns of the evaluation image grid. `cache` lives as long
        as the trainer (the w_avg baseline does not change during a stage: scored once)."""
        from .evaluation import evaluate

        if not batches:
            return {}, []
        first = "wavg" not in cache
        metrics, last = evaluate(model, batches, lpips, self.fine, baseline=first)
        if first:
            cache["wavg"] = {k: v for k, v in metrics.items() if k.startswith("eval/wavg/")}
        metrics.update(cache["wavg"])
        b = last["batch"]
        p = last["fine" if self.fine else "coarse"]
        cols = [b.image_s, b.image_t, p["image_t"], b.depth_t, p["depth_t"]]
        if self.fine:
            cols.insert(2, last["coarse"]["image_t"])
        return metrics, cols


@register_stage("encoder")
class EncoderStage(Stage):
    trained = ("encoder",)
    fine = False

    def forward(self, model: NOFAAvatar, batch: SyntheticBatch, amp: bool = False) -> dict:
        vol, coarse = reconstruct(model, batch.image_s, batch.camera_s, fine=False, amp=amp)
        return render_views(model, vol, batch.camera_s, batch.camera_t, source=coarse)


@register_stage("detail")
class DetailStage(Stage):
    trained = ("detail", "gamma", "eta")
    fine = True

    def forward(self, model: NOFAAvatar, batch: SyntheticBatch, amp: bool = False) -> dict:
        vol, _ = reconstruct(
            model, batch.image_s, batch.camera_s, fine=True, amp=amp, coarse_grad=False
        )
        return render_views(model, vol, batch.camera_s, batch.camera_t)


class StageModule(nn.Module):
    """The model + a stage as one module whose forward is the stage's training forward (what
    DistributedDataParallel wraps)."""

    def __init__(self, model: NOFAAvatar, stage: Stage, amp: bool = False) -> None:
        super().__init__()
        self.model, self.stage, self.amp = model, stage, amp

    def forward(self, batch) -> dict:
        return self.stage.forward(self.model, batch, self.amp)
