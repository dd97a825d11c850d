"""The avatar file: one tri-plane volume with everything needed to render it.

On disk it is a `torch.save` zip holding only plain tensors, strings and ints:

    {"format": "nofa-avatar", "version": 1,
     "header": "<JSON: box_warp, rendering options, decoder config, metadata>",
     "planes": Tensor [N, 3, C, H, W], "decoder": {name: Tensor}}

so it loads with `torch.load(weights_only=True)` (no code from the file ever runs). Writes
go to a temporary file in the same folder that is then renamed over the target
(`os.replace`), so an interrupted save leaves any previous file intact.
"""
from __future__ import annotations

import dataclasses
import json
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from ..render.decoder import OSGDecoder
from .atomic import atomic_torch_save
from ..render.renderer import RenderOptions, TriplaneRenderer

FORMAT = "nofa-avatar"
VERSION = 1

__all__ = ["FORMAT", "VERSION", "Avatar", "AvatarFileError", "load_avatar", "save_avatar"]


class AvatarFileError(ValueError):
    """A file that is not a readable nofa avatar (truncated, corrupt, foreign or too new)."""


@dataclasses.dataclass
class Avatar:
    """A renderable volume: planes [N, 3, C, H, W] + OSG decoder weights + render options."""

    planes: torch.Tensor
    decoder_state: dict[str, torch.Tensor]
    decoder_config: dict[str, int]
    options: RenderOptions = dataclasses.field(default_factory=RenderOptions)
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_renderer(cls, planes: torch.Tensor, renderer: TriplaneRenderer, **metadata: Any) -> "Avatar":
        state = {k: v.detach().cpu().clone() for k, v in renderer.decoder.state_dict().items()}
        return cls(planes.detach().cpu().clone(), state, renderer.decoder.config(),
                   dataclasses.replace(renderer.options), dict(metadata))

    def decoder(self) -> OSGDecoder:
        dec = OSGDecoder(**self.decoder_config)
        dec.load_state_dict(self.decoder_state)
        return dec

    def renderer(self, **option_changes: Any) -> TriplaneRenderer:
        """A TriplaneRenderer with this avatar's decoder and options (overridable)."""
        return TriplaneRenderer(self.decoder(), self.options.replace(**option_changes))

    def to(self, device: torch.device | str) -> "Avatar":
        return dataclasses.replace(self, planes=self.planes.to(device),
                                   decoder_state={k: v.to(device) for k, v in self.decoder_state.items()})


def save_avatar(path: str | os.PathLike, avatar: Avatar) -> Path:
    """Write `avatar` to `path` atomically (temp file in the same folder + os.replace)."""
    path = Path(path)
    header = {
        "box_warp": avatar.options.box_warp,
        "rendering": avatar.options.to_dict(),
        "decoder_config": avatar.decoder_config,
        "metadata": avatar.metadata,
    }
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "header": json.dumps(header, sort_keys=True),
        "planes": avatar.planes.detach().cpu().contiguous(),
        "decoder": {k: v.detach().cpu().contiguous() for k, v in avatar.decoder_state.items()},
    }
    return atomic_torch_save(payload, path)


def load_avatar(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Avatar:
    """Read an avatar file; raises AvatarFileError with the reason when it is not one."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"avatar file not found: {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError, ValueError, OSError) as e:
        raise AvatarFileError(
            f"{path} is not a readable nofa avatar file: it is truncated, corrupt or not a file "
            f"written by nofa.io.save_avatar (torch.load said: {str(e).splitlines()[0] if str(e) else type(e).__name__})"
        ) from e
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        kind = f"keys {sorted(payload)[:6]}" if isinstance(payload, dict) else type(payload).__name__
        raise AvatarFileError(f"{path} is a torch file but not a nofa avatar (no format={FORMAT!r}; it holds {kind})")
    version = payload.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise AvatarFileError(f"{path} has avatar format version {version!r}; this nofa reads up to {VERSION}: upgrade nofa")
    try:
        header = json.loads(payload["header"])
        planes, decoder_state = payload["planes"], dict(payload["decoder"])
        options = RenderOptions.from_dict(header["rendering"])
        config = {k: int(v) for k, v in header["decoder_config"].items()}
    except (KeyError, TypeError, ValueError) as e:
        raise AvatarFileError(f"{path}: damaged avatar header or missing entry ({type(e).__name__}: {e})") from e
    if not isinstance(planes, torch.Tensor) or planes.dim() != 5 or planes.shape[1] != 3:
        shape = list(planes.shape) if isinstance(planes, torch.Tensor) else type(planes).__name__
        raise AvatarFileError(f"{path}: planes must be a tensor [N, 3, C, H, W], got {shape}")
    if planes.shape[2] != config.get("n_features"):
        raise AvatarFileError(f"{path}: planes have C={planes.shape[2]} channels but the decoder expects "
                              f"{config.get('n_features')}")
    return Avatar(planes, decoder_state, config, options, header.get("metadata", {}))
