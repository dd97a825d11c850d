"""Training NOFA++ (paper 3.4): a trainer with typed TOML configs, exact resume, DDP through
torchrun, TensorBoard/CSV logs, and pluggable stages: `encoder`, `detail` (synthetic 3D data)
and `deformation`, `hybrid`, `audio` (face videos; nofa/train/video_stages.py).

    nofa train configs/encoder_tiny.toml run.steps=200
    nofa train configs/deformation_tiny.toml
    torchrun --nproc-per-node 4 -m nofa.train configs/encoder.toml
"""

from .cli import main
from .config import ConfigError, TrainConfig, load_config, to_toml
from .data import SyntheticBatch, SyntheticSource
from .stages import STAGES, Stage, get_stage, register_stage
from .trainer import Trainer, build_model, train

__all__ = [
    "ConfigError",
    "STAGES",
    "Stage",
    "SyntheticBatch",
    "SyntheticSource",
    "TrainConfig",
    "Trainer",
    "build_model",
    "get_stage",
    "load_config",
    "main",
    "register_stage",
    "to_toml",
    "train",
]
