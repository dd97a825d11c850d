"""The animatable avatar (suffix ``.nofa-anim``; format "nofa-animatable"; docs/animate.md).

One portrait encoded once (the fine canonical tri-plane V_e, the W code the SR module reads,
the source's identity coefficients alpha and camera) plus what driving needs (decoder,
deformation field, SR, rendering options), so a source is reconstructed once and driven many
times without the encoder or the generator. The volume avatars of ``nofa demo`` (format
"nofa-avatar", :mod:`nofa.io.avatar`) load as animatable avatars too: they have no
deformation field and no SR, so they animate with the identity deformation at neural
resolution (`identity_deformation` is True and the animation pipeline says so).

On disk it is a nofa file (:mod:`nofa.io.nofa_file`) holding only tensors, strings and
numbers: it loads with ``torch.load(weights_only=True)`` (no code from the file runs) and is
written atomically (temp file + rename)::

    {"format": "nofa-animatable", "version": 1,
     "header": "<JSON: kind, rendering, render_resolution, decoder/superres/deformation
                configs, metadata>",
     "tensors": {"planes", "camera", "alpha", "ws" (with SR)},
     "decoder": {...}, "superres": {...}, "deformation": {...}}
"""

from __future__ import annotations

import copy
import json
import os
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..io.avatar import avatar_from_file
from ..io.nofa_file import (
    ANIMATABLE,
    VOLUME_AVATAR,
    NofaFile,
    check_device,
    read_nofa_file,
    tensor_stats,
    write_nofa_file,
)
from ..render import OSGDecoder, RenderOptions, TriplaneRenderer, default_label
from .avatar import AvatarVolume, NOFAAvatar
from .deformation import DeformationField
from .model_file import ModelFileError
from .superres import SuperResolution

__all__ = [
    "ANIMATABLE_FORMAT",
    "ANIMATABLE_VERSION",
    "AnimatableAvatar",
    "describe_animatable",
    "load_animatable",
    "save_animatable",
]

ANIMATABLE_FORMAT = ANIMATABLE.format
ANIMATABLE_VERSION = ANIMATABLE.version

_MODEL_HINT = " (that is a model file: pass it with --model and give a portrait as the source)"


class AnimatableAvatar(nn.Module):
    """One encoded portrait, ready to be driven.

    planes [1, 3, C, R, R] canonical tri-plane; ws [1, num_ws, w_dim] (the SR module reads the
    last code; None without SR); alpha [1, 80] the source's identity coefficients; camera
    [1, 25] the source camera. `deformation` None = identity deformation (template-fit
    avatars); `superres` None = frames are the neural rendering itself.
    """

    def __init__(
        self,
        planes: torch.Tensor,
        decoder: OSGDecoder,
        options: RenderOptions,
        render_resolution: int,
        camera: torch.Tensor | None = None,
        alpha: torch.Tensor | None = None,
        ws: torch.Tensor | None = None,
        superres: SuperResolution | None = None,
        deformation: DeformationField | None = None,
        superres_config: dict | None = None,
        deformation_config: dict | None = None,
        kind: str = "model",
        metadata: dict | None = None,
    ) -> None:
        super().__init__()
        if planes.dim() != 5 or planes.shape[0] != 1 or planes.shape[1] != 3:
            raise ValueError(f"planes must have shape [1, 3, C, R, R], got {list(planes.shape)}")
        if (superres is None) != (ws is None):
            raise ValueError("superres and ws come together (the SR module reads the last W code)")
        self.register_buffer("planes", planes.detach().clone())
        self.register_buffer(
            "camera",
            (
                default_label()[None]
                if camera is None
                else torch.as_tensor(camera, dtype=torch.float32).reshape(1, 25)
            ).clone(),
        )
        id_dim = deformation.id_dim if deformation is not None else 80
        self.register_buffer(
            "alpha",
            torch.zeros(1, id_dim)
            if alpha is None
            else torch.as_tensor(alpha, dtype=torch.float32).reshape(1, id_dim).clone(),
        )
        self.register_buffer("ws", None if ws is None else ws.detach().clone())
        self.renderer = TriplaneRenderer(decoder, options)
        self.render_resolution = int(render_resolution)
        self.superres, self.deformation = superres, deformation
        self.superres_config, self.deformation_config = superres_config, deformation_config
        self.kind, self.metadata = kind, dict(metadata or {})

    @property
    def identity_deformation(self) -> bool:
        """True when the avatar has no deformation field: expressions do not change the head."""
        return self.deformation is None

    @property
    def exp_dim(self) -> int:
        return self.deformation.exp_dim if self.deformation is not None else 64

    @property
    def image_size(self) -> int:
        return (
            self.superres.output_resolution if self.superres is not None else self.render_resolution
        )

    # -- building ---------------------------------------------------------------------------
    @classmethod
    @torch.no_grad()
    def from_model(
        cls,
        model: NOFAAvatar,
        image: torch.Tensor,
        camera: torch.Tensor,
        alpha: torch.Tensor | None = None,
        fine: bool = True,
        **metadata: Any,
    ) -> AnimatableAvatar:
        """Encode one portrait: image [1, 3, S, S] in [-1, 1], camera [1, 25] -> avatar
        (runs `model.reconstruct`; alpha [1, 80] the source's identity coefficients, zeros if
        None)."""
        if image.dim() != 4 or image.shape[0] != 1:
            raise ValueError(f"image must be one portrait [1, 3, S, S], got {list(image.shape)}")
        vol = model.reconstruct(image, camera, fine=fine)
        return cls.from_volume(model, vol, camera, alpha, **metadata)

    @classmethod
    def from_volume(
        cls,
        model: NOFAAvatar,
        volume: AvatarVolume,
        camera: torch.Tensor,
        alpha: torch.Tensor | None = None,
        **metadata: Any,
    ) -> AnimatableAvatar:
        """Package a reconstructed (or sampled) volume with copies of the parts animation needs."""
        cfg = model.config
        return cls(
            volume.planes[:1],
            copy.deepcopy(model.decoder).cpu(),
            model.renderer.options.replace(),
            model.render_resolution,
            torch.as_tensor(camera).reshape(-1, 25)[:1].cpu(),
            alpha,
            volume.ws[:1],
            copy.deepcopy(model.superres),
            copy.deepcopy(model.deformation),
            {
                "in_channels": cfg["decoder"]["out_features"],
                "input_resolution": cfg["superres"]["input_resolution"],
                "w_dim": cfg["generator"]["w_dim"],
                "block_channels": list(cfg["superres"]["block_channels"]),
                "antialias": cfg["superres"]["antialias"],
                "conv_clamp": cfg["generator"]["conv_clamp"],
            },
            dict(cfg["deformation"]),
            "model",
            metadata,
        ).to(volume.planes.device)

    @classmethod
    def from_avatar(cls, avatar, resolution: int = 128, **metadata: Any) -> AnimatableAvatar:
        """A template-fit avatar (:class:`nofa.io.Avatar`) -> identity deformation, no SR,
        frames rendered at `resolution`."""
        return cls(
            avatar.planes[:1],
            avatar.decoder(),
            avatar.options,
            resolution,
            kind="template-fit",
            metadata={**avatar.metadata, **metadata},
        )

    # -- rendering --------------------------------------------------------------------------
    def render(
        self,
        beta: torch.Tensor | None,
        camera: torch.Tensor,
        resolution: int | None = None,
        options: RenderOptions | None = None,
        timings: dict | None = None,
    ) -> dict:
        """Frames for expressions beta [N, 64] (None: canonical) from cameras [N, 25] ->
        dict(image [N, 3, S, S] in [-1, 1], image_raw [N, 3, r, r], depth [N, 1, r, r]).

        Frames are rendered one at a time (the tri-plane is shared, not copied per frame),
        then super-resolved as one batch. `timings`, if given, accumulates seconds under
        "deformation", "render" (excluding deformation) and "sr"."""
        camera = torch.as_tensor(camera).to(self.planes)
        if camera.dim() == 1:
            camera = camera[None]
        if camera.dim() != 2 or camera.shape[1] != 25:
            raise ValueError(f"camera must have shape [N, 25], got {list(camera.shape)}")
        n = camera.shape[0]
        if beta is not None:
            beta = torch.as_tensor(beta).to(self.planes)
            if beta.dim() == 1:
                beta = beta[None]
            if beta.dim() != 2 or beta.shape[1] != self.exp_dim or beta.shape[0] not in (1, n):
                raise ValueError(
                    f"beta must have shape [{n}, {self.exp_dim}] (expression coefficients), "
                    f"got {list(beta.shape)}"
                )
            beta = beta.expand(n, -1)
        res = resolution or self.render_resolution
        sync = _syncer(self.planes.device) if timings is not None else None
        raws, feats, depths, weights = [], [], [], []
        for i in range(n):
            deform = None
            if beta is not None and self.deformation is not None:
                deform = self._deform(beta[i : i + 1], timings, sync)
            t0 = _now(sync)
            d0 = timings.get("deformation", 0.0) if timings is not None else 0.0
            out = self.renderer(self.planes, camera[i : i + 1], res, deform, options)
            if timings is not None:
                spent = _now(sync) - t0 - (timings.get("deformation", 0.0) - d0)
                timings["render"] = timings.get("render", 0.0) + spent
            raws.append(out.rgb)
            feats.append(out.features)
            depths.append(out.depth)
            weights.append(out.weight)
        raw, feat = torch.cat(raws), torch.cat(feats)
        image = raw
        if self.superres is not None:
            t0 = _now(sync)
            image = self.superres(raw, feat, self.ws.expand(n, -1, -1))
            if timings is not None:
                timings["sr"] = timings.get("sr", 0.0) + _now(sync) - t0
        return {
            "image": image,
            "image_raw": raw,
            "depth": torch.cat(depths),
            "weight": torch.cat(weights),
        }

    def _deform(self, beta: torch.Tensor, timings: dict | None, sync):
        alpha = self.alpha

        def deform(points: torch.Tensor) -> torch.Tensor:
            t0 = _now(sync)
            out = self.deformation(
                points, alpha.expand(points.shape[0], -1), beta.expand(points.shape[0], -1)
            )[0]
            if timings is not None:
                timings["deformation"] = timings.get("deformation", 0.0) + _now(sync) - t0
            return out

        return deform

    # -- files ------------------------------------------------------------------------------
    def header(self) -> dict:
        return {
            "kind": self.kind,
            "rendering": self.renderer.options.to_dict(),
            "render_resolution": self.render_resolution,
            "decoder_config": self.renderer.decoder.config(),
            "superres_config": self.superres_config,
            "deformation_config": self.deformation_config,
            "metadata": self.metadata,
        }


def _syncer(device: torch.device):
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def _now(sync) -> float:
    if sync is not None:
        sync()
    return time.perf_counter()


def save_animatable(path: str | os.PathLike, avatar: AnimatableAvatar) -> Path:
    """Write an animatable avatar atomically (weights_only-loadable)."""

    def sd(m: nn.Module | None) -> dict:
        return (
            {}
            if m is None
            else {k: v.detach().cpu().contiguous() for k, v in m.state_dict().items()}
        )

    payload = {
        "header": json.dumps(avatar.header(), sort_keys=True),
        "tensors": {
            "planes": avatar.planes.detach().cpu().contiguous(),
            "camera": avatar.camera.cpu(),
            "alpha": avatar.alpha.cpu(),
            **({"ws": avatar.ws.cpu()} if avatar.ws is not None else {}),
        },
        "decoder": sd(avatar.renderer.decoder),
        "superres": sd(avatar.superres),
        "deformation": sd(avatar.deformation),
    }
    return write_nofa_file(path, ANIMATABLE, payload)


def _from_file(f: NofaFile) -> AnimatableAvatar:
    """The AnimatableAvatar (CPU) of an animatable or volume avatar file."""
    if f.kind is VOLUME_AVATAR:
        return AnimatableAvatar.from_avatar(avatar_from_file(f))
    path, payload = f.path, f.payload
    try:
        h = json.loads(payload["header"])
        t = payload["tensors"]
        decoder = OSGDecoder(**h["decoder_config"])
        decoder.load_state_dict(payload["decoder"])
        sr = deform = None
        if h.get("superres_config"):
            c = dict(h["superres_config"])
            c["block_channels"] = tuple(c["block_channels"])
            sr = SuperResolution(**c)
            sr.load_state_dict(payload["superres"])
        if h.get("deformation_config"):
            deform = DeformationField(**h["deformation_config"])
            deform.load_state_dict(payload["deformation"])
        return AnimatableAvatar(
            t["planes"],
            decoder,
            RenderOptions.from_dict(h["rendering"]),
            h["render_resolution"],
            t["camera"],
            t["alpha"],
            t.get("ws"),
            sr,
            deform,
            h.get("superres_config"),
            h.get("deformation_config"),
            h.get("kind", "model"),
            h.get("metadata", {}),
        )
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise ModelFileError(
            f"{path}: damaged animatable avatar ({type(e).__name__}: {str(e).splitlines()[0]})",
            path,
        ) from e


def load_animatable(
    path: str | os.PathLike, map_location: str | torch.device = "cpu"
) -> AnimatableAvatar:
    """Read an animatable avatar, or a volume avatar file (-> identity deformation), onto
    `map_location`, in eval mode. Raises ModelFileError naming the path for anything
    unreadable (AvatarFileError for a damaged volume avatar)."""
    device = check_device(map_location)
    f = read_nofa_file(
        path,
        [ANIMATABLE, VOLUME_AVATAR],
        what="nofa avatar file",
        error=ModelFileError,
        hints={"nofa-model": _MODEL_HINT, "nofa-avatar-model": _MODEL_HINT},
    )
    return _from_file(f).to(device).eval()


def describe_animatable(f: NofaFile) -> list[tuple[str, str]]:
    """(label, text) lines for `nofa info`: plane shape, origin, what driving uses."""
    av = _from_file(f)
    parts = {
        "decoder": av.renderer.decoder,
        "deformation": av.deformation,
        "superres": av.superres,
    }
    return [
        ("planes", f"{list(av.planes.shape)} {str(av.planes.dtype).replace('torch.', '')}"),
        ("made by", "a model (encoded portrait)" if av.kind == "model" else av.kind),
        (
            "frames",
            f"{av.image_size} px"
            + (" (neural rendering, no SR)" if av.superres is None else " (after SR)"),
        ),
        (
            "deformation",
            "identity (expressions do not move the head)"
            if av.identity_deformation
            else f"field, {av.exp_dim} expression coefficients",
        ),
        (
            "parameters",
            ", ".join(
                f"{k} {tensor_stats(m.state_dict())[1]:,d}"
                for k, m in parts.items()
                if m is not None
            ),
        ),
    ]
