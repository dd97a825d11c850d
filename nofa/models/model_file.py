"""The NOFA++ model file (suffix ``.nofa-model``; format "nofa-model"; docs/files.md).

The whole :class:`NOFAAvatar` — generator, SR, encoder, detail, fusion (gamma, eta),
deformation, decoder — with its config (which holds the rendering options), the preset it was
built from and free metadata, as a nofa file (:mod:`nofa.io.nofa_file`)::

    {"format": "nofa-model", "version": 1,
     "header": "<JSON: preset, config, rendering, metadata>",
     "weights": {"generator": {...}, "superres": {...}, "encoder": {...}, "detail": {...},
                 "fusion": {...}, "deformation": {...}, "decoder": {...}}}

It holds only tensors, strings and numbers: it loads with ``torch.load(weights_only=True)``
(no code from the file runs) and is written atomically (temp file + rename). Files of the
older format ``{"format": "nofa-avatar-model", "version": 1, "config": ..., "state_dict":
...}`` (what ``NOFAAvatar.save``, the trainer and ``nofa import-eg3d`` wrote before) still load,
with a note saying to convert them (``nofa upgrade FILE``).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import torch

from ..io.nofa_file import (
    LEGACY_MODEL,
    MODEL,
    NofaFile,
    NofaFileError,
    check_device,
    read_nofa_file,
    tensor_stats,
    write_nofa_file,
)
from ..render import RenderOptions
from .avatar import NOFAAvatar

__all__ = [
    "COMPONENTS",
    "LEGACY_MODEL_FORMAT",
    "MODEL_FORMAT",
    "MODEL_VERSION",
    "ModelFileError",
    "ModelWeights",
    "describe_model",
    "load_model",
    "model_from_weights",
    "read_model_file",
    "save_model",
    "weights_from_file",
]

MODEL_FORMAT = MODEL.format
MODEL_VERSION = MODEL.version
LEGACY_MODEL_FORMAT = LEGACY_MODEL.format

# component name -> the NOFAAvatar state_dict prefixes it holds
COMPONENTS: dict[str, tuple[str, ...]] = {
    "generator": ("generator.",),
    "superres": ("superres.",),
    "encoder": ("encoder.",),
    "detail": ("detail.",),
    "fusion": ("gamma.", "eta."),
    "deformation": ("deformation.",),
    "decoder": ("renderer.decoder.",),
}


class ModelFileError(NofaFileError):
    """A file that is not a readable nofa model / animatable avatar (truncated, foreign, too new,
    incomplete)."""


@dataclasses.dataclass
class ModelWeights:
    """What a model file holds, either format: header (preset, config, rendering — None for
    the older format: the config's — and metadata) and the NOFAAvatar state_dict (CPU)."""

    path: Path
    header: dict[str, Any]
    state: dict[str, torch.Tensor]


_AVATAR_HINT = " (that is an avatar file: pass it as the source, not as --model)"


def save_model(
    path: str | os.PathLike, model: NOFAAvatar, preset: str | None = None, **metadata: Any
) -> Path:
    """Write the whole model atomically: weights grouped by component + JSON header
    (preset name, full config incl. rendering options, `metadata`)."""
    state = model.state_dict()
    weights: dict[str, dict[str, torch.Tensor]] = {c: {} for c in COMPONENTS}
    for name, t in state.items():
        comp = next((c for c, prefixes in COMPONENTS.items() if name.startswith(prefixes)), None)
        if comp is None:
            raise ValueError(
                f"state_dict entry {name!r} belongs to no model-file component {list(COMPONENTS)}"
            )
        weights[comp][name] = t.detach().cpu().contiguous()
    header = {
        "preset": preset,
        "config": model.config,
        "rendering": model.renderer.options.to_dict(),
        "metadata": metadata,
    }
    return write_nofa_file(
        path, MODEL, {"header": json.dumps(header, sort_keys=True), "weights": weights}
    )


def weights_from_file(f: NofaFile) -> ModelWeights:
    """Header + state_dict of a model file of either format read by `read_nofa_file`
    (ModelFileError naming the path when damaged)."""
    path, payload = f.path, f.payload
    if f.kind is LEGACY_MODEL:
        config, state = payload.get("config"), payload.get("state_dict")
        if not isinstance(config, dict) or not isinstance(state, dict):
            raise ModelFileError(
                f"{path}: damaged model file (no config or state_dict entry)", path
            )
        header = {"preset": None, "config": config, "rendering": None, "metadata": {}}
        return ModelWeights(path, header, state)
    try:
        header = json.loads(payload["header"])
        weights = payload["weights"]
        if not isinstance(header.get("config"), dict):
            raise KeyError("config")
        if not isinstance(weights, dict):
            raise TypeError(f"weights is a {type(weights).__name__}, not a dict")
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ModelFileError(
            f"{path}: damaged model-file header ({type(e).__name__}: {e})", path
        ) from e
    missing = [c for c in COMPONENTS if not weights.get(c)]
    if missing:
        raise ModelFileError(f"{path}: model file lacks the component(s) {missing}", path)
    state = {k: v for comp in weights.values() for k, v in comp.items()}
    return ModelWeights(path, header, state)


def read_model_file(path: str | os.PathLike) -> ModelWeights:
    """Header + weights of a model file (either format) without building the model; raises
    ModelFileError naming the path for anything unreadable, FileNotFoundError when missing."""
    f = read_nofa_file(
        path,
        [MODEL, LEGACY_MODEL],
        what="nofa model file",
        error=ModelFileError,
        hints={"nofa-avatar": _AVATAR_HINT, "nofa-animatable": _AVATAR_HINT},
    )
    return weights_from_file(f)


def model_from_weights(weights: ModelWeights) -> NOFAAvatar:
    """The NOFAAvatar (CPU, training mode) of a read model file, with `file_header` (dict:
    preset, config, rendering, metadata)."""
    path, header = weights.path, weights.header
    try:
        model = NOFAAvatar(header["config"])
    except (KeyError, TypeError, ValueError) as e:
        raise ModelFileError(
            f"{path}: damaged model-file header ({type(e).__name__}: {e})", path
        ) from e
    try:
        model.load_state_dict(weights.state)
    except RuntimeError as e:
        raise ModelFileError(
            f"{path}: weights do not fit the stored config: {str(e).splitlines()[0]}", path
        ) from e
    if header.get("rendering") is not None:  # None: the older format, the config's options
        model.renderer.options = RenderOptions.from_dict(header["rendering"])
    model.file_header = {**header, "rendering": model.renderer.options.to_dict()}
    return model


def load_model(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> NOFAAvatar:
    """Read a model file (also the older `nofa-avatar-model` files, with a NofaFileWarning
    saying to convert them) onto `map_location`. The returned model has `file_header` (dict:
    preset, config, rendering, metadata) and is in eval mode."""
    device = check_device(map_location)
    return model_from_weights(read_model_file(path)).to(device).eval()


def describe_model(f: NofaFile) -> list[tuple[str, str]]:
    """(label, text) lines for `nofa info`: preset, sizes, parameters per component."""
    w = weights_from_file(f)
    cfg = w.header["config"]
    g, r = cfg.get("generator", {}), cfg.get("render", {})
    per = {c: 0 for c in COMPONENTS}
    for name, t in w.state.items():
        comp = next((c for c, prefixes in COMPONENTS.items() if name.startswith(prefixes)), None)
        if comp is not None:
            per[comp] += t.numel()
    c, res = g.get("plane_channels", "?"), g.get("plane_resolution", "?")
    lines = [
        ("preset", str(w.header.get("preset") or "not recorded")),
        ("parameters", f"{tensor_stats(w.state)[1]:,d} (weights and buffers)"),
        ("planes", f"[3, {c}, {res}, {res}] per avatar"),
        (
            "images",
            f"{cfg.get('image_size', '?')} px in and out (neural rendering "
            f"{r.get('resolution', '?')} px, then SR)",
        ),
        ("components", ", ".join(f"{k} {n:,d}" for k, n in per.items())),
    ]
    if w.header.get("metadata"):
        lines.append(("metadata", ", ".join(sorted(w.header["metadata"]))))
    return lines
