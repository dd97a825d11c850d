"""Training checkpoints (`step-XXXXXXXX.nofa-ckpt`, format "nofa-train-checkpoint"; a nofa
file, :mod:`nofa.io.nofa_file`): atomic, the last K kept, each with its resolved config as
TOML beside it, and everything an exact resume needs (model, optimiser, step, data position,
RNG states of torch CPU/CUDA, Python and NumPy). Checkpoints named `step-XXXXXXXX.pt` (the
older name) are found and resumed from too."""

from __future__ import annotations

import os
import random
import re
import tempfile
from pathlib import Path

import numpy as np
import torch

from ..io.nofa_file import (
    TRAINING_CHECKPOINT,
    NofaFile,
    NofaFileError,
    read_nofa_file,
    tensor_stats,
    to_device,
    write_nofa_file,
)

__all__ = [
    "FORMAT",
    "CheckpointFileError",
    "atomic_write_text",
    "checkpoint_paths",
    "describe_checkpoint",
    "get_rng_state",
    "latest_checkpoint",
    "load_training_checkpoint",
    "save_training_checkpoint",
    "set_rng_state",
]

FORMAT = TRAINING_CHECKPOINT.format
VERSION = TRAINING_CHECKPOINT.version
SUFFIX = TRAINING_CHECKPOINT.suffix
# step-XXXXXXXX.nofa-ckpt, and step-XXXXXXXX.pt as checkpoints were named before
_NAME = re.compile(r"^step-(\d{8,})(\.nofa-ckpt|\.pt)$")


class CheckpointFileError(NofaFileError):
    """A file that is not a readable nofa training checkpoint."""


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write `text` to a temp file in the same folder, fsync, rename over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def get_rng_state() -> dict:
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    # plain tensors and numbers only, so checkpoints load with torch.load(weights_only=True)
    state = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(_tuplify(state["python"]))
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _tuplify(x):
    return tuple(_tuplify(v) for v in x) if isinstance(x, (list, tuple)) else x


def checkpoint_paths(folder: str | os.PathLike) -> list[Path]:
    """Checkpoints in `folder`, oldest first (of one step, a .pt before the .nofa-ckpt)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [
        (int(m.group(1)), m.group(2) == SUFFIX, p)
        for p in folder.iterdir()
        if (m := _NAME.match(p.name))
    ]
    return [p for *_, p in sorted(found)]


def latest_checkpoint(folder: str | os.PathLike) -> Path | None:
    paths = checkpoint_paths(folder)
    return paths[-1] if paths else None


def save_training_checkpoint(
    folder: str | os.PathLike, step: int, state: dict, config_toml: str, keep: int
) -> Path:
    """Write step-XXXXXXXX.nofa-ckpt (+ .toml) atomically, then delete all but the last
    `keep` (older step-XXXXXXXX.pt checkpoints count and go the same way)."""
    folder = Path(folder)
    path = folder / f"step-{step:08d}{SUFFIX}"
    atomic_write_text(path.with_suffix(".toml"), config_toml)
    write_nofa_file(path, TRAINING_CHECKPOINT, {"step": step, **state})
    kept = checkpoint_paths(folder)[-keep:]
    for old in checkpoint_paths(folder)[:-keep]:
        old.unlink(missing_ok=True)
        if not any(k.stem == old.stem for k in kept):  # a .pt and a .nofa-ckpt share the .toml
            old.with_suffix(".toml").unlink(missing_ok=True)
    return path


def load_training_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device = "cpu"
) -> dict:
    """The checkpoint's dict (format, version, step, stage, preset, config, model_config,
    model, optimizer, rng, data_position, world_batch) with its tensors on `map_location`.
    Raises CheckpointFileError (a ValueError) naming the path for anything unreadable."""
    f = read_nofa_file(
        path, [TRAINING_CHECKPOINT], what="nofa training checkpoint", error=CheckpointFileError
    )
    return to_device(f.payload, map_location, "checkpoint")


def describe_checkpoint(f: NofaFile) -> list[tuple[str, str]]:
    """(label, text) lines for `nofa info`: step, stage, preset, model and optimiser sizes."""
    p = f.payload
    model = p.get("model") if isinstance(p.get("model"), dict) else {}
    optim = p.get("optimizer") if isinstance(p.get("optimizer"), dict) else {}
    cfg = p.get("model_config") if isinstance(p.get("model_config"), dict) else {}
    g = cfg.get("generator", {})
    res = g.get("plane_resolution", "?")
    return [
        ("step", f"{p.get('step')} (data position {p.get('data_position')})"),
        ("stage", f"{p.get('stage')}, preset {p.get('preset')}, batch {p.get('world_batch')}"),
        ("model", f"{tensor_stats(model)[1]:,d} parameters ({len(model)} tensors)"),
        ("planes", f"[3, {g.get('plane_channels', '?')}, {res}, {res}] per avatar"),
        ("optimiser", f"{tensor_stats(optim)[1]:,d} numbers of state"),
    ]
