"""Training checkpoints: atomic, the last K kept, each with its resolved config as TOML
beside it, and everything an exact resume needs (model, optimiser, step, data position,
RNG states of torch CPU/CUDA, Python and NumPy)."""

from __future__ import annotations

import os
import random
import re
import tempfile
from pathlib import Path

import numpy as np
import torch

from ..io.atomic import atomic_torch_save

__all__ = [
    "FORMAT",
    "atomic_write_text",
    "checkpoint_paths",
    "get_rng_state",
    "latest_checkpoint",
    "load_training_checkpoint",
    "save_training_checkpoint",
    "set_rng_state",
]

FORMAT = "nofa-train-checkpoint"
VERSION = 1
_NAME = re.compile(r"^step-(\d{8,})\.pt$")


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
    """Checkpoints in `folder`, oldest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(folder: str | os.PathLike) -> Path | None:
    paths = checkpoint_paths(folder)
    return paths[-1] if paths else None


def save_training_checkpoint(
    folder: str | os.PathLike, step: int, state: dict, config_toml: str, keep: int
) -> Path:
    """Write step-XXXXXXXX.pt (+ .toml) atomically, then delete all but the last `keep`."""
    folder = Path(folder)
    path = folder / f"step-{step:08d}.pt"
    atomic_write_text(path.with_suffix(".toml"), config_toml)
    atomic_torch_save({"format": FORMAT, "version": VERSION, "step": step, **state}, path)
    for old in checkpoint_paths(folder)[:-keep]:
        old.unlink(missing_ok=True)
        old.with_suffix(".toml").unlink(missing_ok=True)
    return path


def load_training_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device = "cpu"
) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        raise ValueError(
            f"{path} is not a readable training checkpoint ({type(e).__name__}: {e})"
        ) from e
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ValueError(f"{path} is not a nofa training checkpoint (expected format {FORMAT!r})")
    if ckpt.get("version") != VERSION:
        raise ValueError(
            f"{path} has training checkpoint version {ckpt.get('version')}, this nofa reads "
            f"{VERSION}"
        )
    return ckpt
