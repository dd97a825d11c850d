"""The trainer every stage plugs into (see nofa/train/stages.py and docs/training.md).

One optimiser step: the rank's slice of the global batch is drawn from the stage's data
source by sample index, the stage's forward runs (inside DistributedDataParallel when
WORLD_SIZE > 1, which averages gradients), the stage's loss is back-propagated and Adam
steps the stage's trained parameters. Rank 0 logs, evaluates and writes checkpoints."""

from __future__ import annotations

import math
import signal
import time
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel

from .. import ops
from ..models import NOFAAvatar, get_config
from ..models.model_file import read_model_file, save_model
from ..models.presets import merge_config
from . import video_stages  # noqa: F401  (importing a stage module registers its stages)
from .checkpoint import (
    get_rng_state,
    latest_checkpoint,
    load_training_checkpoint,
    save_training_checkpoint,
    set_rng_state,
)
from .config import OptimConfig, TrainConfig, to_toml
from .distributed import DistInfo, all_reduce_flag, barrier, init_distributed, shutdown
from .logbook import RunLog, image_grid
from .losses import LPIPSLoss, build_lpips
from .registry import get_stage
from .stages import StageModule
from .teacher import make_random_teacher

__all__ = ["MODEL_FILE", "Trainer", "build_model", "learning_rate", "to_device", "train"]

MODEL_FILE = "model.nofa-model"  # written into run.out_dir at the end of a run


def to_device(batch, device: torch.device):
    """A batch (SyntheticBatch, VideoBatch, ...) with its tensors on `device`."""
    if hasattr(batch, "to"):
        return batch.to(device)
    return type(batch)(
        **{k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in vars(batch).items()}
    )


def learning_rate(optim: OptimConfig, step: int, steps: int) -> float:
    """The lr of optimiser step `step` (0-based) of a run of `steps` steps: a linear warm-up
    over `optim.warmup_steps`, then constant (`decay = "none"`) or falling from `optim.lr` to
    `optim.lr * optim.final_lr` at step `steps` (cosine or linear). A function of the step
    only, so a resumed run follows the same schedule."""
    lr = optim.lr
    if optim.warmup_steps:
        lr *= min(1.0, (step + 1) / optim.warmup_steps)
    if optim.decay != "none" and steps > optim.warmup_steps:
        t = min(1.0, max(0.0, (step - optim.warmup_steps) / (steps - optim.warmup_steps)))
        f = 0.5 * (1.0 + math.cos(math.pi * t)) if optim.decay == "cosine" else 1.0 - t
        lr *= optim.final_lr + (1.0 - optim.final_lr) * f
    return lr


def build_model(cfg: TrainConfig) -> NOFAAvatar:
    """The model of `cfg.model` with the training render settings: the weights and the
    architecture of `model.weights` when given (a model file: an imported EG3D, a previous
    stage's model.nofa-model), else a fresh `model.preset` (made a teacher when
    `model.teacher_gain` > 0)."""
    m = cfg.model
    render = {"deterministic": m.deterministic_render, "checkpoint": m.chunk_checkpoint}
    for key, val in (
        ("resolution", m.render_resolution),
        ("coarse_samples", m.coarse_samples),
        ("importance_samples", m.importance_samples),
        ("chunk_rays", m.chunk_rays),
    ):
        if val:
            render[key] = max(val, 0)
    if not m.weights:
        model = NOFAAvatar(get_config(m.preset, render=render))
        return (
            make_random_teacher(model, m.teacher_gain, seed=cfg.run.seed)
            if m.teacher_gain > 0
            else model
        )
    weights = read_model_file(m.weights)
    config = weights.header["config"]
    preset = get_config(m.preset)
    if config.get("image_size") != preset["image_size"]:
        raise ValueError(
            f"model.weights {m.weights} holds a {config.get('image_size')} px model, "
            f"model.preset {m.preset!r} is {preset['image_size']} px; set model.preset to match"
        )
    model = NOFAAvatar(merge_config(config, {"render": render}))
    model.load_state_dict(weights.state)
    return model


def _arch(config: dict) -> dict:
    return {k: v for k, v in config.items() if k != "render"}


class Trainer:
    """Builds everything from a TrainConfig; `run()` trains to `run.steps`.

    resume: None (fresh; refuses an out_dir that already has checkpoints), True (latest
    checkpoint in out_dir/checkpoints) or a checkpoint path."""

    def __init__(self, cfg: TrainConfig, resume: bool | str | None = None) -> None:
        self.cfg = cfg
        self.out = Path(cfg.run.out_dir)
        self.ckpt_dir = self.out / "checkpoints"
        self.stage = get_stage(cfg.run.stage)
        # Everything that can fail on user input fails here, before any work.
        self.stage.check_config(cfg)
        lpips = None
        if cfg.loss.lpips > 0:
            lpips = LPIPSLoss(
                build_lpips(
                    cfg.loss.lpips_net,
                    cfg.loss.lpips_backbone,
                    cfg.loss.lpips_random_backbone,
                    cfg.run.seed,
                )
            )
        ckpt_path = self._resume_path(resume)
        self.info: DistInfo = init_distributed(cfg.run.device)
        if cfg.data.batch_size % self.info.world_size:
            raise ValueError(
                f"data.batch_size ({cfg.data.batch_size}) must be divisible by the number of "
                f"processes ({self.info.world_size})"
            )
        if cfg.run.threads:
            torch.set_num_threads(cfg.run.threads)
        dev = self.info.device
        torch.manual_seed(cfg.run.seed)
        self.model = build_model(cfg).to(dev)
        self.params = self.stage.configure(self.model)
        self.lpips = lpips.to(dev) if lpips is not None else None
        self.criterion = self.stage.build_criterion(cfg, self.lpips, dev)
        o = cfg.optim
        self.optimizer = torch.optim.Adam(self.params, lr=o.lr, betas=(o.beta1, o.beta2), eps=o.eps)
        self.amp = cfg.run.amp and dev.type == "cuda"
        module = StageModule(self.model, self.stage, self.amp)
        if self.info.enabled:
            # a stage whose steps train different parts (hybrid) leaves parameters without gradients
            module = DistributedDataParallel(
                module,
                device_ids=[dev.index] if dev.type == "cuda" else None,
                find_unused_parameters=getattr(self.stage, "unused_parameters", False),
            )
        self.module = module
        self.sources = self.stage.data_sources(self.model, cfg)
        self.source = next(iter(self.sources.values()))
        self._skipped_seen = 0
        self._heldout: list | None = None
        self._eval_cache: dict = {}
        self.step = 0
        self.stop_requested = False
        if ckpt_path is not None:
            self._restore(ckpt_path)
        self.log = RunLog(self.out, cfg.log.tensorboard) if self.info.is_main else None

    # -- checkpoints ---------------------------------------------------------------------
    def _resume_path(self, resume: bool | str | None) -> Path | None:
        if resume is None or resume is False:
            if latest_checkpoint(self.ckpt_dir) is not None:
                raise FileExistsError(
                    f"{self.ckpt_dir} already holds checkpoints: pass --resume to continue that "
                    f"run, or choose another run.out_dir"
                )
            return None
        path = latest_checkpoint(self.ckpt_dir) if resume is True else Path(resume)
        if path is None:
            raise FileNotFoundError(f"--resume: no checkpoint in {self.ckpt_dir}")
        ckpt = load_training_checkpoint(path)
        self._check_compatible(ckpt, path)
        return path

    def _check_compatible(self, ckpt: dict, path: Path) -> None:
        if ckpt["stage"] != self.cfg.run.stage:
            raise ValueError(
                f"{path} is a checkpoint of stage {ckpt['stage']!r}, this run is stage "
                f"{self.cfg.run.stage!r}"
            )
        if ckpt["preset"] != self.cfg.model.preset:
            raise ValueError(
                f"{path} is a checkpoint of model preset {ckpt['preset']!r}, this run uses "
                f"{self.cfg.model.preset!r}"
            )
        if ckpt["world_batch"] != self.cfg.data.batch_size:
            raise ValueError(
                f"{path} was trained with data.batch_size {ckpt['world_batch']}, this run has "
                f"{self.cfg.data.batch_size}; the data position would not match"
            )

    def _restore(self, path: Path) -> None:
        ckpt = load_training_checkpoint(path, map_location=self.info.device)
        if _arch(ckpt["model_config"]) != _arch(self.model.config):
            raise ValueError(
                f"{path} holds a model of another architecture than this run's (model.preset / "
                f"model.weights differ)"
            )
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.step = int(ckpt["step"])
        rng = ckpt["rng"]
        set_rng_state(
            {k: (v.cpu() if isinstance(v, torch.Tensor) else v) for k, v in rng.items()}
            if "cuda" not in rng
            else {**rng, "torch": rng["torch"].cpu(), "cuda": [t.cpu() for t in rng["cuda"]]}
        )
        if self.info.is_main:
            print(f"resumed from {path} at step {self.step}")

    def save(self) -> Path | None:
        barrier(self.info)
        path = None
        if self.info.is_main:
            state = {
                "stage": self.cfg.run.stage,
                "preset": self.cfg.model.preset,
                "config": self.cfg.to_dict(),
                "model_config": self.model.config,
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "rng": get_rng_state(),
                "data_position": self.step * self.cfg.data.batch_size,
                "world_batch": self.cfg.data.batch_size,
            }
            path = save_training_checkpoint(
                self.ckpt_dir, self.step, state, to_toml(self.cfg), self.cfg.checkpoint.keep
            )
        barrier(self.info)
        return path

    def save_model(self) -> Path:
        """out_dir/model.nofa-model: the trained model, the next stage's model.weights."""
        return save_model(
            self.out / MODEL_FILE,
            self.model,
            preset=self.cfg.model.preset,
            stage=self.cfg.run.stage,
            step=self.step,
        )

    # -- one step ------------------------------------------------------------------------
    def batch_indices(self, step: int) -> range:
        """This rank's slice of the global batch of `step` (sample indices of the train stream)."""
        b = self.cfg.data.batch_size
        per = b // self.info.world_size
        start = step * b + self.info.rank * per
        return range(start, start + per)

    def batch_for_step(self, step: int) -> tuple[str, object]:
        """(source kind, this rank's batch) of optimiser step `step` (a function of the step
        only)."""
        kind, position = self.stage.schedule(step)
        return kind, to_device(
            self.sources[kind].batch(self.batch_indices(position)), self.info.device
        )

    def _report_skipped(self) -> None:
        """Log the items the data sources skipped since the last call (rank 0: logs/skipped.txt)."""
        skipped = [s for src in self.sources.values() for s in getattr(src, "skipped", [])]
        new, self._skipped_seen = skipped[self._skipped_seen :], len(skipped)
        if new and self.log is not None:
            self.log.skipped(self.step, new)

    def train_step(self) -> tuple[dict[str, float], object, dict]:
        kind, batch = self.batch_for_step(self.step)
        self._report_skipped()
        self.stage.prepare(self.model, kind)
        pred = self.module(batch)
        loss, scalars = self.stage.loss(self.criterion, pred, batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        lr = learning_rate(self.cfg.optim, self.step, self.cfg.run.steps)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        if self.cfg.optim.grad_clip > 0:
            scalars["grad_norm"] = float(
                torch.nn.utils.clip_grad_norm_(self.params, self.cfg.optim.grad_clip)
            )
        self.optimizer.step()
        self.step += 1
        return scalars, batch, pred

    # -- evaluation ----------------------------------------------------------------------
    def evaluate(self) -> dict[str, float]:
        """Held-out metrics of the stage (rank 0), logged with an image grid."""
        if self._heldout is None:
            self._heldout = [
                to_device(b, self.info.device) for b in self.stage.heldout(self.sources, self.cfg)
            ]
        metrics, cols = self.stage.evaluate(
            self.model, self._heldout, self.lpips, self._eval_cache, self.cfg.eval.batch_size
        )
        if cols:
            self.log.image("eval", image_grid(cols, max_rows=self.cfg.eval.batch_size), self.step)
        if metrics:
            self.log.scalars(self.step, metrics)
        return metrics

    # -- the loop ------------------------------------------------------------------------
    def _on_signal(self, signum, frame) -> None:
        self.stop_requested = True

    def run(self) -> int:
        cfg = self.cfg
        old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        bar = None
        start = time.monotonic()
        try:
            with ops.use_backend(cfg.run.backend):
                if self.info.is_main:
                    from tqdm import tqdm

                    bar = tqdm(
                        total=cfg.run.steps,
                        initial=self.step,
                        disable=not cfg.log.progress,
                        desc=f"train {cfg.run.stage}",
                        dynamic_ncols=True,
                    )
                    if self.step == 0:
                        self.evaluate()
                while self.step < cfg.run.steps:
                    if all_reduce_flag(self.stop_requested, self.info):
                        path = self.save()
                        if self.info.is_main:
                            print(f"\nstopped by signal at step {self.step}; checkpoint {path}")
                        return 0
                    over = (
                        cfg.run.max_minutes > 0
                        and time.monotonic() - start > 60 * cfg.run.max_minutes
                    )
                    if all_reduce_flag(over, self.info):
                        if self.info.is_main:
                            print(
                                f"\nrun.max_minutes ({cfg.run.max_minutes}) spent at step "
                                f"{self.step}"
                            )
                        self.save()
                        break
                    t0 = time.perf_counter()
                    scalars, batch, pred = self.train_step()
                    dt = time.perf_counter() - t0
                    if self.info.is_main:
                        scalars["images_per_s"] = cfg.data.batch_size / dt
                        scalars["lr"] = self.optimizer.param_groups[0]["lr"]
                        bar.update(1)
                        bar.set_postfix(loss=f"{scalars['loss/total']:.4f}")
                        if self.step % cfg.log.every == 0:
                            self.log.scalars(self.step, scalars)
                        if cfg.log.image_every and self.step % cfg.log.image_every == 0:
                            self.log.image(
                                "train", image_grid(self.stage.train_images(batch, pred)), self.step
                            )
                        if (
                            cfg.eval.every
                            and self.step % cfg.eval.every == 0
                            and self.step < cfg.run.steps
                        ):
                            self.evaluate()
                    if self.step % cfg.checkpoint.every == 0 or self.step == cfg.run.steps:
                        self.save()
                if self.info.is_main:
                    self.evaluate()
                    self.log.flush()
                    self.save_model()
            return 0
        finally:
            if bar is not None:
                bar.close()
            if self.log is not None:
                self.log.close()
            for s, h in old.items():
                signal.signal(s, h)


def train(cfg: TrainConfig, resume: bool | str | None = None) -> int:
    """Build a Trainer and run it (then leave the process group)."""
    trainer = Trainer(cfg, resume)
    try:
        return trainer.run()
    finally:
        shutdown(trainer.info)
