"""Typed training configuration: a TOML file of sections, every field overridable from the
command line as `section.key=value` (or `key=value` when the key is unique), validated with
errors that name the key and the expected type. The resolved config is written next to
every checkpoint (`to_toml`), so a run can be reproduced from its checkpoint folder.

A file may start from another one: a top-level `base = "encoder.toml"` (a path relative to
the file) reads that file first, then this file's tables are merged into it key by key
(`read_config_file`); a base may have a base of its own.
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any

import tomllib

__all__ = ["BASE_KEY", "ConfigError", "TrainConfig", "load_config", "read_config_file", "to_toml"]

BASE_KEY = "base"  # top-level key of a config file: the file it overlays


class ConfigError(ValueError):
    """A bad training configuration (unknown key, wrong type, bad value)."""


@dataclasses.dataclass
class RunConfig:
    stage: str = "encoder"  # a registered stage (nofa.train.stages.STAGES)
    out_dir: str = "outputs/train"  # checkpoints/, logs/, images/ go below it
    steps: int = 1000  # optimiser steps in total (a resumed run continues to it)
    seed: int = 0  # data stream + initialisation of freshly built parts
    device: str = "auto"  # auto | cpu | cuda (torchrun: cuda:LOCAL_RANK)
    backend: str = "kernels"  # nofa.ops backend: kernels | torch
    amp: bool = True  # torch.autocast (bfloat16) for encoder/detail/fusion on CUDA only
    threads: int = 0  # torch CPU threads per process (0: torch's default)
    max_minutes: float = (
        0.0  # wall-clock budget: stop early (checkpoint, final evaluation) when spent; 0: none
    )


@dataclasses.dataclass
class ModelConfig:
    preset: str = "paper"  # nofa.models preset: paper | tiny
    weights: str = ""  # nofa model file to start from (e.g. `nofa import-eg3d` output)
    render_resolution: int = 0  # neural rendering resolution for training (0: the preset's)
    coarse_samples: int = 0  # 0: the preset's
    importance_samples: int = 0  # 0: the preset's (-1: none)
    deterministic_render: bool = False  # no sample jitter (tests, exact multi-process comparisons)
    chunk_checkpoint: bool = False  # recompute each ray chunk in backward (bounds render memory)
    chunk_rays: int = 0  # rays per render chunk (0: the preset's)
    teacher_gain: float = (
        0.0  # > 0 and no weights: random generator made a teacher (nofa/train/teacher.py)
    )


@dataclasses.dataclass
class DataConfig:
    batch_size: int = 4  # global batch: split evenly over the processes
    truncation: float = 0.7  # truncation psi of the synthetic latents
    yaw_std: float = 0.3  # radians; camera yaw ~ N(0, yaw_std) clipped at max_sigma
    pitch_std: float = 0.155  # radians; camera pitch ~ N(0, pitch_std) clipped at max_sigma
    max_sigma: float = 2.0
    root: str = ""  # video stages: dataset folder (docs/datasets.md layout)
    heldout_clips: int = (
        1  # video stages: the last K clips (natural order) are held out (ROOT/heldout.txt wins)
    )
    synth_clips: int = (
        0  # > 0 and data.root missing: first write that many procedural clips there (tiny configs)
    )
    synth_frames: int = 24  # frames per procedural clip (with synth_clips)


@dataclasses.dataclass
class OptimConfig:
    lr: float = 1e-4  # paper 4.x: 1e-4 for the encoder and the detail stage
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    grad_clip: float = 0.0  # max gradient norm (0: off)
    warmup_steps: int = 0  # linear lr warm-up from lr/warmup_steps (0: off; a function of the step)
    decay: str = (
        "none"  # none | cosine | linear: lr from `lr` after warm-up to lr * final_lr at run.steps
    )
    final_lr: float = 0.0  # the decay's end, as a fraction of lr


@dataclasses.dataclass
class LossConfig:
    lpips: float = 1.0  # lambda_LPIPS (eq. 5)
    l2: float = 1.0  # lambda_L2
    depth: float = 2.0  # lambda_depth
    lpips_raw: bool = True  # LPIPS also on the raw renders (eq. 6); false: SR images only (cheaper)
    lpips_net: str = "alex"  # alex | vgg | squeeze (lpips package trunks)
    lpips_backbone: str = ""  # torchvision ImageNet weights of the trunk (see docs/training.md)
    lpips_random_backbone: bool = False  # tests/CPU proofs only: random trunk, no file needed
    rec: float = 1.0  # video stages: lambda_rec (eq. 10: L2 + LPIPS of the target frame)
    bbox: float = 1.0  # video stages: lambda_bbox (eq. 11: L2 + LPIPS of the eye and mouth boxes)
    id: float = 0.1  # video stages: lambda_id (eq. 12: 1 - cos of ArcFace embeddings)
    box_margin: float = 0.25  # eye/mouth box margin, a fraction of the landmarks' extent per side
    arcface_weights: str = ""  # ArcFace IResNet backbone.pth (InsightFace arcface_torch) for L_id
    arcface_random: bool = False  # tests/CPU proofs only: a small random IResNet, no file needed


@dataclasses.dataclass
class CheckpointConfig:
    every: int = 1000  # steps between checkpoints (also written on SIGTERM/SIGINT and at the end)
    keep: int = 3  # keep the last K checkpoints


@dataclasses.dataclass
class LogConfig:
    every: int = 10  # steps between scalar log rows (TensorBoard + CSV)
    image_every: int = 500  # steps between training image grids (0: off)
    tensorboard: bool = True
    progress: bool = True  # tqdm bar on rank 0


@dataclasses.dataclass
class EvalConfig:
    every: int = 1000  # steps between held-out evaluations (0: only at start and end)
    samples: int = 8  # held-out samples (fixed latents + cameras, never trained on)
    targets: int = 4  # video stages: target frames per held-out clip (source = frame 0)
    batch_size: int = 4


@dataclasses.dataclass
class TrainConfig:
    run: RunConfig = dataclasses.field(default_factory=RunConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    loss: LossConfig = dataclasses.field(default_factory=LossConfig)
    checkpoint: CheckpointConfig = dataclasses.field(default_factory=CheckpointConfig)
    log: LogConfig = dataclasses.field(default_factory=LogConfig)
    eval: EvalConfig = dataclasses.field(default_factory=EvalConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict, where: str = "config") -> TrainConfig:
        cfg = cls()
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: expected a table of sections, got {type(data).__name__}")
        for section, values in data.items():
            if section not in _SECTIONS:
                raise ConfigError(
                    f"{where}: unknown section [{section}]; known sections: {sorted(_SECTIONS)}"
                )
            if not isinstance(values, dict):
                raise ConfigError(
                    f"{where}: [{section}] must be a table, got {type(values).__name__}"
                )
            for key, value in values.items():
                _set(cfg, section, key, value, where)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        def need(cond: bool, msg: str) -> None:
            if not cond:
                raise ConfigError(msg)

        need(self.run.max_minutes >= 0, f"run.max_minutes must be >= 0, got {self.run.max_minutes}")
        need(self.run.steps >= 0, f"run.steps must be >= 0, got {self.run.steps}")
        need(
            self.run.device in ("auto", "cpu", "cuda") or self.run.device.startswith("cuda:"),
            f"run.device must be auto, cpu or cuda[:i], got {self.run.device!r}",
        )
        need(
            self.run.backend in ("kernels", "torch"),
            f"run.backend must be kernels or torch, got {self.run.backend!r}",
        )
        need(self.data.batch_size >= 1, f"data.batch_size must be >= 1, got {self.data.batch_size}")
        need(
            0.0 <= self.data.truncation <= 1.0,
            f"data.truncation must be in [0, 1], got {self.data.truncation}",
        )
        need(self.optim.lr > 0, f"optim.lr must be > 0, got {self.optim.lr}")
        need(
            self.checkpoint.every >= 1 and self.checkpoint.keep >= 1,
            f"checkpoint.every and checkpoint.keep must be >= 1, got {self.checkpoint.every}, "
            f"{self.checkpoint.keep}",
        )
        need(
            self.optim.warmup_steps >= 0,
            f"optim.warmup_steps must be >= 0, got {self.optim.warmup_steps}",
        )
        need(
            self.optim.decay in ("none", "cosine", "linear"),
            f"optim.decay must be none, cosine or linear, got {self.optim.decay!r}",
        )
        need(
            0.0 <= self.optim.final_lr <= 1.0,
            f"optim.final_lr must be in [0, 1], got {self.optim.final_lr}",
        )
        need(self.log.every >= 1, f"log.every must be >= 1, got {self.log.every}")
        need(
            self.eval.samples >= 0 and self.eval.batch_size >= 1,
            f"eval.samples must be >= 0 and eval.batch_size >= 1, got {self.eval.samples}, "
            f"{self.eval.batch_size}",
        )
        need(
            self.loss.lpips_net in ("alex", "vgg", "squeeze"),
            f"loss.lpips_net must be alex, vgg or squeeze, got {self.loss.lpips_net!r}",
        )
        for k in ("lpips", "l2", "depth", "rec", "bbox", "id", "box_margin"):
            need(getattr(self.loss, k) >= 0, f"loss.{k} must be >= 0, got {getattr(self.loss, k)}")
        need(
            self.data.heldout_clips >= 0,
            f"data.heldout_clips must be >= 0, got {self.data.heldout_clips}",
        )
        need(
            self.data.synth_clips >= 0,
            f"data.synth_clips must be >= 0, got {self.data.synth_clips}",
        )
        need(
            self.data.synth_frames >= 2,
            f"data.synth_frames must be >= 2 (a source and a target), got {self.data.synth_frames}",
        )
        need(self.eval.targets >= 1, f"eval.targets must be >= 1, got {self.eval.targets}")

    def override(self, items: list[str]) -> TrainConfig:
        """Apply `section.key=value` (or unique `key=value`) strings; values are TOML literals,
        and anything that is not one (e.g. a bare path) is taken as a string."""
        for item in items:
            if "=" not in item:
                raise ConfigError(
                    f"override {item!r} must look like section.key=value (e.g. optim.lr=1e-4)"
                )
            name, raw = item.split("=", 1)
            name = name.strip()
            if "." in name:
                section, key = name.split(".", 1)
            else:
                owners = [s for s, t in _SECTIONS.items() if name in _fields(t)]
                if len(owners) != 1:
                    raise ConfigError(
                        f"override {name!r}: "
                        + (
                            "unknown key"
                            if not owners
                            else f"ambiguous key (in {owners}); write section.{name}"
                        )
                    )
                section, key = owners[0], name
            if section not in _SECTIONS:
                raise ConfigError(
                    f"override {name!r}: unknown section {section!r}; known: {sorted(_SECTIONS)}"
                )
            _set(self, section, key, _parse_value(raw), "command line")
        self.validate()
        return self


_SECTIONS = {f.name: f.type for f in dataclasses.fields(TrainConfig)}
_SECTIONS = {name: typing.get_type_hints(TrainConfig)[name] for name in _SECTIONS}


def _fields(section_type: type) -> dict[str, Any]:
    return typing.get_type_hints(section_type)


def _parse_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw  # a bare string such as a path


def _set(cfg: TrainConfig, section: str, key: str, value: Any, where: str) -> None:
    types = _fields(_SECTIONS[section])
    if key not in types:
        raise ConfigError(
            f"{where}: unknown key {section}.{key}; keys of [{section}]: {sorted(types)}"
        )
    want = types[key]
    ok = (
        isinstance(value, bool)
        if want is bool
        else isinstance(value, int) and not isinstance(value, bool)
        if want is int
        else isinstance(value, (int, float)) and not isinstance(value, bool)
        if want is float
        else isinstance(value, str)
        if want is str
        else False
    )
    if not ok:
        raise ConfigError(
            f"{where}: {section}.{key} must be {want.__name__}, got {type(value).__name__} "
            f"{value!r}"
        )
    setattr(getattr(cfg, section), key, float(value) if want is float else value)


def read_config_file(path: str | Path) -> dict:
    """A config file's tables with its `base` chain resolved: the base's tables (read the same
    way), then this file's merged into them key by key (a table into a table, anything else
    replaced). The result has no `base` key."""
    return _read_chain(Path(path), ())


def _read_chain(path: Path, chain: tuple[Path, ...]) -> dict:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    here = path.resolve()
    if here in chain:
        loop = " -> ".join(str(p) for p in (*chain[chain.index(here) :], here))
        raise ConfigError(f"{chain[-1]}: `{BASE_KEY}` makes a cycle: {loop}")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from e
    if BASE_KEY not in data:
        return data
    base = data.pop(BASE_KEY)
    if not isinstance(base, str):
        raise ConfigError(
            f"{path}: `{BASE_KEY}` must be a file name (a string), got {type(base).__name__}"
        )
    base_path = path.parent / base  # relative to this file, not to the working directory
    if not base_path.is_file():
        raise ConfigError(f"{path}: base config {base!r} not found ({base_path})")
    return _merged(_read_chain(base_path, (*chain, here)), data)


def _merged(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        both_tables = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = _merged(out[key], value) if both_tables else value
    return out


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> TrainConfig:
    """Read a TOML config (None: defaults; its `base` chain resolved, see
    :func:`read_config_file`) and apply command-line overrides."""
    data = read_config_file(path) if path is not None else {}
    return TrainConfig.from_dict(data, str(path) if path else "config").override(
        list(overrides or [])
    )


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def to_toml(cfg: TrainConfig) -> str:
    """The config as TOML text (tables of scalars only, which is all TrainConfig holds)."""
    lines = []
    for section, values in cfg.to_dict().items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in values.items()]
        lines.append("")
    return "\n".join(lines)
