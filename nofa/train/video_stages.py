"""The video stages of paper 3.4 (eqs. 10-13 and the two paragraphs after them); see
docs/training.md, "Video stages".

deformation: the whole model trains on pairs of frames of one clip. The source frame I_s is
    reconstructed (fine volume V_e, eqs. 1-3), the deformation field bends the rays of the
    target camera with the target's coefficients, model.render(V_e, camera_t, alpha_t,
    beta_t) = I_hat, and L = l_rec L_rec + l_bbox L_bbox + l_id L_id (eq. 13; 1, 1, 0.1):
    L_rec = ||I_t - I_hat||_2 + LPIPS(I_t, I_hat) (eq. 10), L_bbox the same on the eye and
    mouth boxes of I_t's landmarks (eq. 11, nofa/train/boxes.py), L_id = 1 - cos(F(I_t),
    F(I_hat)) with ArcFace F (eq. 12, nofa/train/identity.py).
hybrid: after every two video iterations one synthetic iteration: step k is synthetic when
    k % 3 == 2 (the step number decides, so a resumed run keeps the order). Video
    iterations train the deformation field only (l_bbox 2, l_id 1, l_rec 0 in
    configs/hybrid.toml: the paper names eqs. 11 and 12 only); synthetic iterations train
    the whole model with the encoder stage's losses (eqs. 5-8) on renders of a frozen copy of
    the starting model's generator (the 3D GAN the synthetic data come from must not drift
    with the model).
audio: the deformation field only; beta from the audio-derived expressions
    (`beta_audio_t`), alpha and cameras from the video; mouth-box loss + identity loss
    (l_bbox 1 on the mouth box only, l_id 0.2, l_rec 0).
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import torch
import torch.nn as nn

from ..models import NOFAAvatar
from .boxes import REGIONS, crop_boxes, face_boxes
from .config import ConfigError, TrainConfig
from .data import SyntheticSource
from .forward import reconstruct, render_views
from .identity import IdentityLoss, build_face_recognizer
from .losses import LPIPSLoss, l2
from .stages import ReconstructionLoss, Stage, register_stage
from .video_data import VideoBatch, VideoDataset, VideoSource

__all__ = [
    "AudioStage",
    "DeformationStage",
    "HybridLoss",
    "HybridStage",
    "VideoLoss",
    "VideoStage",
    "ensure_dataset",
]


class VideoLoss(nn.Module):
    """l_rec (L2 + LPIPS of I_hat vs I_t) + l_bbox sum over `regions` (L2 + LPIPS of the box
    crops) + l_id (1 - cos of face embeddings); pred["image_t"] and batch.image_t [N, 3, S, S]."""

    def __init__(
        self,
        lpips: LPIPSLoss | None,
        w_rec: float = 1.0,
        w_bbox: float = 1.0,
        w_id: float = 0.1,
        identity: IdentityLoss | None = None,
        regions: tuple[str, ...] = ("eyes", "mouth"),
        margin: float = 0.25,
    ) -> None:
        super().__init__()
        if w_id > 0 and identity is None:
            raise ValueError("w_id > 0 needs an identity loss (IdentityLoss)")
        self.lpips, self.identity = lpips, identity
        self.w_rec, self.w_bbox, self.w_id = float(w_rec), float(w_bbox), float(w_id)
        self.regions, self.margin = tuple(regions), float(margin)

    def _rec(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        out = l2(pred, target)
        if self.lpips is not None:
            out = out + self.lpips(pred, target)
        return out

    def forward(self, pred: dict, batch: VideoBatch) -> tuple[torch.Tensor, dict[str, float]]:
        img, tgt = pred["image_t"], batch.image_t
        terms: dict[str, torch.Tensor] = {}
        total = img.new_zeros(())
        if self.w_rec > 0:
            terms["rec"] = self._rec(img, tgt)
            total = total + self.w_rec * terms["rec"]
        if self.w_bbox > 0:
            boxes = face_boxes(batch.landmarks_t, tgt.shape[-1], self.regions, self.margin)
            parts = []
            for r, box in boxes.items():
                size = REGIONS[r][2]
                term = self._rec(crop_boxes(img, box, size), crop_boxes(tgt, box, size))
                terms[f"bbox_{r}"] = term
                parts.append(term)
            terms["bbox"] = sum(parts)
            total = total + self.w_bbox * terms["bbox"]
        if self.w_id > 0:
            terms["id"] = self.identity(img, tgt)
            total = total + self.w_id * terms["id"]
        scalars = {f"loss/{k}": float(v.detach()) for k, v in terms.items()}
        scalars["loss/total"] = float(total.detach())
        return total, scalars


class HybridLoss(nn.Module):
    """The video loss for VideoBatch, the reconstruction loss (eqs. 5-8) for SyntheticBatch."""

    def __init__(self, video: VideoLoss, synthetic: ReconstructionLoss) -> None:
        super().__init__()
        self.video, self.synthetic = video, synthetic

    def forward(self, pred: dict, batch) -> tuple[torch.Tensor, dict[str, float]]:
        if isinstance(batch, VideoBatch):
            return self.video(pred, batch)
        total, scalars = self.synthetic(pred, batch)
        return total, {
            k.replace("loss/", "loss/synthetic_") if k != "loss/total" else k: v
            for k, v in scalars.items()
        }


def ensure_dataset(cfg: TrainConfig, image_size: int) -> Path:
    """data.root, first written with `data.synth_clips` procedural clips of `data.synth_frames`
    frames (image_size px, seed run.seed) when it does not exist and synth_clips > 0 (the tiny
    configs: runs from a fresh clone). Written to ROOT.partial and renamed: an interrupted
    write leaves no half dataset at data.root."""
    d = cfg.data
    root = Path(d.root)
    if root.is_dir():
        return root
    if d.synth_clips <= 0:
        raise FileNotFoundError(
            f"data.root {root} does not exist: prepare a video dataset there (docs/datasets.md; "
            f"`nofa dataset check {root}` validates it), or set data.synth_clips > 0 to write "
            f"procedural clips there first (or run `nofa dataset synth {root}`)"
        )
    import shutil

    from .procedural_heads import write_synthetic_video_dataset

    print(
        f"data.root {root} does not exist: writing {d.synth_clips} procedural clips of "
        f"{d.synth_frames} frames "
        f"({image_size} px) there first"
    )
    tmp = root.with_name(root.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    write_synthetic_video_dataset(
        tmp,
        clips=d.synth_clips,
        frames=d.synth_frames,
        size=image_size,
        seed=cfg.run.seed,
        audio=True,
        progress=cfg.log.progress,
    )
    os.replace(tmp, root)
    return root


class VideoStage(Stage):
    """Shared by the video stages: data from a VideoDataset, the VideoLoss, and the held-out
    self-reenactment evaluation (nofa/train/evaluation.py)."""

    audio = False  # beta from the audio-derived expressions
    regions: tuple[str, ...] = ("eyes", "mouth")
    deformation_only = False  # the reconstruction runs without autograd

    def check_config(self, cfg: TrainConfig) -> None:
        if not cfg.data.root:
            raise ConfigError(
                f"stage {self.name!r} trains on face videos: set data.root to a dataset folder "
                f"(layout: docs/datasets.md)"
            )
        if cfg.loss.rec + cfg.loss.bbox + cfg.loss.id <= 0:
            raise ConfigError(
                f"stage {self.name!r}: loss.rec, loss.bbox and loss.id are all 0: nothing to train"
            )
        if cfg.loss.id > 0 and not cfg.loss.arcface_random:
            w = cfg.loss.arcface_weights
            if not w:
                raise ConfigError(
                    "loss.id > 0 needs ArcFace weights: set "
                    "loss.arcface_weights=/path/to/backbone.pth "
                    "(InsightFace arcface_torch IResNet), or loss.id=0; tests only: "
                    "loss.arcface_random=true"
                )
            if not os.path.isfile(w):
                raise ConfigError(
                    f"loss.arcface_weights: file not found: {w} (the backbone.pth of InsightFace's "
                    f"arcface_torch; nofa does not download it)"
                )

    def beta(self, batch: VideoBatch) -> torch.Tensor:
        if not self.audio:
            return batch.beta_t
        if batch.beta_audio_t is None:
            raise ValueError(
                f"stage {self.name!r} needs audio-derived expressions (audio_exp.npy per clip)"
            )
        return batch.beta_audio_t

    def video_sources(self, cfg: TrainConfig, image_size: int) -> tuple[VideoSource, VideoSource]:
        root = ensure_dataset(cfg, image_size)
        train = VideoDataset(root, image_size, "train", cfg.data.heldout_clips, audio=self.audio)
        held = (
            VideoDataset(root, image_size, "heldout", cfg.data.heldout_clips, audio=self.audio)
            if train.heldout
            else None
        )
        return VideoSource(train, cfg.run.seed), (
            VideoSource(held, cfg.run.seed) if held is not None else None
        )

    def data_sources(self, model: NOFAAvatar, cfg: TrainConfig) -> dict[str, object]:
        train, held = self.video_sources(cfg, model.image_size)
        out: dict[str, object] = {"video": train}
        if held is not None:
            out["video_heldout"] = held
        return out

    def schedule(self, step: int) -> tuple[str, int]:
        return "video", step

    def build_criterion(
        self, cfg: TrainConfig, lpips: LPIPSLoss | None, device: torch.device
    ) -> nn.Module:
        lo = cfg.loss
        identity = None
        if lo.id > 0:
            identity = IdentityLoss(
                build_face_recognizer(lo.arcface_weights, lo.arcface_random, cfg.run.seed)
            )
            identity = identity.to(device)
        return VideoLoss(
            lpips if lo.lpips > 0 else None,
            lo.rec,
            lo.bbox,
            lo.id,
            identity,
            self.regions,
            lo.box_margin,
        )

    def video_forward(self, model: NOFAAvatar, batch: VideoBatch, amp: bool = False) -> dict:
        """I_hat = render(V_e(I_s), camera_t, alpha_t, beta) -> dict(image_t, raw_t, depth_t)."""
        grad = torch.no_grad() if self.deformation_only else torch.enable_grad()
        with grad:
            vol, _ = reconstruct(
                model,
                batch.image_s,
                batch.camera_s,
                fine=True,
                amp=amp,
                coarse_grad=not self.deformation_only,
            )
        out = model.render(vol, batch.camera_t, batch.alpha_t, self.beta(batch))
        return {"image_t": out["image"], "raw_t": out["image_raw"], "depth_t": out["depth"]}

    def forward(self, model: NOFAAvatar, batch, amp: bool = False) -> dict:
        return self.video_forward(model, batch, amp)

    def train_images(self, batch, pred: dict) -> list[torch.Tensor]:
        if isinstance(batch, VideoBatch):
            return [batch.image_s, batch.image_t, pred["image_t"]]
        return super().train_images(batch, pred)

    def heldout(self, sources: dict[str, object], cfg: TrainConfig) -> list:
        src = sources.get("video_heldout")
        return src.reenactment(cfg.eval.targets) if src is not None else []

    def evaluate(
        self, model: NOFAAvatar, batches: list, lpips: LPIPSLoss | None, cache: dict, rows: int = 4
    ) -> tuple[dict[str, float], list[torch.Tensor]]:
        from .evaluation import evaluate_reenactment

        video = [b for b in batches if isinstance(b, VideoBatch)]
        if not video:
            return {}, []
        metrics, last = evaluate_reenactment(model, video, lpips, self.beta)
        b = last["batch"]
        return metrics, [b.image_s, b.image_t, last["canonical"], last["deformed"]]


@register_stage("deformation")
class DeformationStage(VideoStage):
    trained = None  # the whole model (paper: "we jointly train the entire model")
    fine = True


@register_stage("audio")
class AudioStage(VideoStage):
    trained = ("deformation",)
    audio = True
    regions = ("mouth",)
    deformation_only = True


@register_stage("hybrid")
class HybridStage(VideoStage):
    """Video (deformation field only) twice, then synthetic (whole model) once; repeat."""

    trained = None
    video_parts = ("deformation",)
    unused_parameters = (
        True  # DDP: a video step leaves all but the deformation field without gradients
    )

    @staticmethod
    def is_synthetic(step: int) -> bool:
        return step % 3 == 2

    def schedule(self, step: int) -> tuple[str, int]:
        if self.is_synthetic(step):
            return "synthetic", step // 3
        return "video", step - (step + 1) // 3

    def data_sources(self, model: NOFAAvatar, cfg: TrainConfig) -> dict[str, object]:
        out = super().data_sources(model, cfg)
        # the synthetic data come from the starting model's generator, frozen: a copy, taken
        # before a resumed run loads its (trained) weights
        teacher = copy.deepcopy(model).requires_grad_(False).eval()
        d = cfg.data
        out["synthetic"] = SyntheticSource(
            teacher, cfg.run.seed, d.truncation, d.yaw_std, d.pitch_std, d.max_sigma
        )
        return out

    def prepare(self, model: NOFAAvatar, kind: str) -> None:
        model.requires_grad_(False)
        parts = self.video_parts if kind == "video" else self.trained_parts(model)
        children = dict(model.named_children())
        for n in parts:
            children[n].requires_grad_(True)
        self.deformation_only = kind == "video"

    def build_criterion(
        self, cfg: TrainConfig, lpips: LPIPSLoss | None, device: torch.device
    ) -> nn.Module:
        video = super().build_criterion(cfg, lpips, device)
        synthetic = ReconstructionLoss(
            lpips, cfg.loss.lpips, cfg.loss.l2, cfg.loss.depth, cfg.loss.lpips_raw
        )
        return HybridLoss(video, synthetic)

    def forward(self, model: NOFAAvatar, batch, amp: bool = False) -> dict:
        if isinstance(batch, VideoBatch):
            return self.video_forward(model, batch, amp)
        vol, _ = reconstruct(model, batch.image_s, batch.camera_s, fine=True, amp=amp)
        return render_views(model, vol, batch.camera_s, batch.camera_t)

    def heldout(self, sources: dict[str, object], cfg: TrainConfig) -> list:
        video = super().heldout(sources, cfg)
        return video + Stage.heldout(self, sources, cfg)

    def evaluate(
        self, model: NOFAAvatar, batches: list, lpips: LPIPSLoss | None, cache: dict, rows: int = 4
    ) -> tuple[dict[str, float], list[torch.Tensor]]:
        metrics, cols = super().evaluate(model, batches, lpips, cache, rows)
        synthetic = [b for b in batches if not isinstance(b, VideoBatch)]
        if synthetic:
            m, c = Stage.evaluate(self, model, synthetic, lpips, cache, rows)
            metrics.update(m)
            cols = cols or c
        return metrics, cols
