"""The volume avatar file (suffix `.nofa-avatar`): one tri-plane volume with everything needed
to render it.

On disk it is a nofa file (:mod:`nofa.io.nofa_file`) holding only plain tensors, strings and
ints:

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
from pathlib import Path
from typing import Any

import torch

from ..render.decoder import OSGDecoder
from ..render.renderer import RenderOptions, TriplaneRenderer
from .nofa_file import (
    VOLUME_AVATAR,
    NofaFile,
    NofaFileError,
    check_device,
    read_nofa_file,
    tensor_stats,
    write_nofa_file,
)

FORMAT = VOLUME_AVATAR.format
VERSION = VOLUME_AVATAR.version

__all__ = [
    "FORMAT",
    "VERSION",
    "Avatar",
    "AvatarFileError",
    "avatar_from_file",
    "check_avatar_contents",
    "describe_avatar",
    "load_avatar",
    "save_avatar",
]


class AvatarFileError(NofaFileError):
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
    def from_renderer(
        cls, planes: torch.Tensor, renderer: TriplaneRenderer, **metadata: Any
    ) -> Avatar:
        state = {k: v.detach().cpu().clone() for k, v in renderer.decoder.state_dict().items()}
        return cls(
            planes.detach().cpu().clone(),
            state,
            renderer.decoder.config(),
            dataclasses.replace(renderer.options),
            dict(metadata),
        )

    def decoder(self) -> OSGDecoder:
        dec = OSGDecoder(**self.decoder_config)
        dec.load_state_dict(self.decoder_state)
        return dec

    def renderer(self, **option_changes: Any) -> TriplaneRenderer:
        """A TriplaneRenderer with this avatar's decoder and options (overridable)."""
        return TriplaneRenderer(self.decoder(), self.options.replace(**option_changes))

    def to(self, device: torch.device | str) -> Avatar:
        return dataclasses.replace(
            self,
            planes=self.planes.to(device),
            decoder_state={k: v.to(device) for k, v in self.decoder_state.items()},
        )


_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def check_avatar_contents(
    planes: Any,
    decoder_state: Any,
    decoder_config: Any,
) -> None:
    """Raise ValueError naming the problem unless planes [N, 3, C, H, W] (floating point),
    decoder_config ({n_features, hidden, out_features} ints) and decoder_state (exactly the
    tensors of that OSGDecoder, with its shapes, floating point) make a renderable avatar."""
    if not isinstance(planes, torch.Tensor):
        raise ValueError(f"planes must be a tensor [N, 3, C, H, W], got {type(planes).__name__}")
    if planes.dim() != 5 or planes.shape[1] != 3 or 0 in planes.shape:
        raise ValueError(
            f"planes must be a tensor [N, 3, C, H, W] with no empty dim, got {list(planes.shape)}"
        )
    if planes.dtype not in _FLOAT_DTYPES:
        raise ValueError(f"planes must be a floating-point tensor, got dtype {planes.dtype}")
    if not isinstance(decoder_config, dict) or set(decoder_config) != {
        "n_features",
        "hidden",
        "out_features",
    }:
        got = (
            sorted(decoder_config)
            if isinstance(decoder_config, dict)
            else type(decoder_config).__name__
        )
        raise ValueError(
            f"decoder_config must have exactly the keys hidden, n_features, out_features; got {got}"
        )
    for key, low in (("n_features", 1), ("hidden", 1), ("out_features", 3)):
        v = decoder_config[key]
        if not isinstance(v, int) or isinstance(v, bool) or v < low:
            raise ValueError(
                f"decoder_config[{key!r}] must be an int >= {low} (the first 3 output features "
                f"are RGB), got {v!r}"
            )
    if planes.shape[2] != decoder_config["n_features"]:
        raise ValueError(
            f"planes have C={planes.shape[2]} channels but the decoder expects "
            f"{decoder_config['n_features']} (decoder_config['n_features'])"
        )
    if not isinstance(decoder_state, dict):
        raise ValueError(
            f"decoder_state must be a dict of tensors, got {type(decoder_state).__name__}"
        )
    with torch.device("meta"):
        want = {k: v.shape for k, v in OSGDecoder(**decoder_config).state_dict().items()}
    missing, extra = sorted(set(want) - set(decoder_state)), sorted(set(decoder_state) - set(want))
    if missing or extra:
        raise ValueError(
            f"decoder_state does not match the decoder config {decoder_config}: "
            f"missing tensors {missing}, unexpected {extra}"
        )
    for k, shape in want.items():
        v = decoder_state[k]
        if not isinstance(v, torch.Tensor):
            raise ValueError(f"decoder_state[{k!r}] must be a tensor, got {type(v).__name__}")
        if v.shape != shape:
            raise ValueError(
                f"decoder_state[{k!r}] has shape {list(v.shape)}, expected {list(shape)} "
                f"for decoder config {decoder_config}"
            )
        if v.dtype not in _FLOAT_DTYPES:
            raise ValueError(f"decoder_state[{k!r}] must be floating point, got dtype {v.dtype}")


def save_avatar(path: str | os.PathLike, avatar: Avatar) -> Path:
    """Write `avatar` to `path` atomically (temp file in the same folder + os.replace).

    Raises ValueError (naming the problem) before writing anything when the avatar could not
    be rendered after loading: missing or misshapen decoder tensors, integer planes, ...
    """
    path = Path(path)
    check_avatar_contents(avatar.planes, avatar.decoder_state, avatar.decoder_config)
    header = {
        "box_warp": avatar.options.box_warp,
        "rendering": avatar.options.to_dict(),
        "decoder_config": avatar.decoder_config,
        "metadata": avatar.metadata,
    }
    payload = {
        "header": json.dumps(header, sort_keys=True),
        "planes": avatar.planes.detach().cpu().contiguous(),
        "decoder": {k: v.detach().cpu().contiguous() for k, v in avatar.decoder_state.items()},
    }
    return write_nofa_file(path, VOLUME_AVATAR, payload)


def load_avatar(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Avatar:
    """Read an avatar file onto `map_location`; raises AvatarFileError with the reason when it
    is not a complete, renderable avatar, and ValueError naming map_location when that device
    is unknown or unavailable."""
    device = check_device(map_location)
    f = read_nofa_file(
        path,
        [VOLUME_AVATAR],
        what="nofa avatar file",
        error=AvatarFileError,
        hints={
            "nofa-model": " (that is a model file: this needs a volume avatar, such as `nofa "
            "demo`'s avatar.nofa-avatar)",
            "nofa-animatable": " (that is an animatable avatar: drive it with `nofa animate`)",
        },
    )
    avatar = avatar_from_file(f)
    if device.type != "cpu":
        try:
            avatar = avatar.to(device)
        except (RuntimeError, AssertionError) as e:  # e.g. "Torch not compiled with CUDA enabled"
            raise ValueError(
                f"map_location={str(map_location)!r}: cannot put the avatar on that device "
                f"({str(e).splitlines()[0] if str(e) else type(e).__name__})"
            ) from None
    return avatar


def avatar_from_file(f: NofaFile) -> Avatar:
    """The Avatar (on the CPU) of a volume avatar file read by `read_nofa_file`; raises
    AvatarFileError naming the path when the file is damaged or not renderable."""
    path, payload = f.path, f.payload
    try:
        header = json.loads(payload["header"])
        planes, decoder_state = payload["planes"], dict(payload["decoder"])
        options = RenderOptions.from_dict(header["rendering"])
        config = dict(header["decoder_config"])
        metadata = header.get("metadata", {})
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise AvatarFileError(
            f"{path}: damaged avatar header or missing entry ({type(e).__name__}: {e})", path
        ) from e
    try:
        check_avatar_contents(planes, decoder_state, config)
    except ValueError as e:
        raise AvatarFileError(f"{path}: {e}", path) from None
    return Avatar(planes, decoder_state, config, options, metadata)


def describe_avatar(f: NofaFile) -> list[tuple[str, str]]:
    """(label, text) lines for `nofa info`: plane shape, decoder, rendering, metadata."""
    avatar = avatar_from_file(f)
    n = tensor_stats(avatar.decoder_state)[1]
    cfg = avatar.decoder_config
    opts = avatar.options
    return [
        ("planes", f"{list(avatar.planes.shape)} {str(avatar.planes.dtype).replace('torch.', '')}"),
        (
            "decoder",
            f"{n:,d} parameters (features {cfg['n_features']}, hidden {cfg['hidden']}, "
            f"outputs {cfg['out_features']})",
        ),
        (
            "rendering",
            f"box_warp {opts.box_warp}, {opts.coarse_samples} + {opts.importance_samples} "
            "samples per ray",
        ),
        ("metadata", ", ".join(sorted(avatar.metadata)) or "none"),
    ]
