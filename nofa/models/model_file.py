"""The NOFA++ model file and the animatable-avatar file (docs/animate.md, "Files").

Model file (``.nofa-model``; format "nofa-model"): the whole :class:`NOFAAvatar` —
generator, SR, encoder, detail, fusion (gamma, eta), deformation, decoder — with its config
(which holds the rendering options) and the preset it was built from::

    {"format": "nofa-model", "version": 1,
     "header": "<JSON: preset, config, rendering, metadata>",
     "weights": {"generator": {...}, "superres": {...}, "encoder": {...}, "detail": {...},
                 "fusion": {...}, "deformation": {...}, "decoder": {...}}}

Animatable avatar (``.nofa-anim``; format "nofa-animatable"): one portrait encoded once
(the fine canonical tri-plane V_e, the W code the SR module reads, the source's identity
coefficients alpha and camera) plus what driving needs (decoder, deformation field, SR,
rendering options), so a source is reconstructed once and driven many times without the
encoder or the generator. The template-fit avatars of ``nofa demo`` (format "nofa-avatar",
:mod:`nofa.io.avatar`) load as animatable avatars too: they have no deformation field and no
SR, so they animate with the identity deformation at neural resolution (`identity_deformation`
is True and the animation pipeline says so).

Both files hold only tensors, strings and numbers: they load with ``torch.load(weights_only=
True)`` (no code from the file runs), and are written atomically (temp file + rename).
"""

from __future__ import annotations

import copy
import json
import os
import pickle
import time
import zipfile
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..io.atomic import atomic_torch_save
from ..render import OSGDecoder, RenderOptions, TriplaneRenderer, default_label
from .avatar import FILE_FORMAT as LEGACY_MODEL_FORMAT
from .avatar import AvatarVolume, NOFAAvatar
from .deformation import DeformationField
from .superres import SuperResolution

__all__ = [
    "ANIMATABLE_FORMAT",
    "MODEL_FORMAT",
    "AnimatableAvatar",
    "ModelFileError",
    "load_animatable",
    "load_model",
    "save_animatable",
    "save_model",
]

MODEL_FORMAT = "nofa-model"
MODEL_VERSION = 1
ANIMATABLE_FORMAT = "nofa-animatable"
ANIMATABLE_VERSION = 1

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


class ModelFileError(ValueError):
    """A file that is not a readable nofa model / animatable avatar (truncated, foreign, too new,
    incomplete)."""


def _torch_load(path: Path, map_location, what: str) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except (
        RuntimeError,
        EOFError,
        zipfile.BadZipFile,
        pickle.UnpicklingError,
        ValueError,
        OSError,
    ) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ModelFileError(
            f"{path} is not a readable {what}: truncated, corrupt or not written by nofa "
            f"(torch.load said: {first})"
        ) from e


def _version(path: Path, payload: dict, newest: int, what: str) -> None:
    v = payload.get("version")
    if not isinstance(v, int) or v > newest:
        raise ModelFileError(
            f"{path} has {what} version {v!r}; this nofa reads up to {newest}: upgrade nofa"
        )


# -- model file -----------------------------------------------------------------------------
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
    return atomic_torch_save(
        {
            "format": MODEL_FORMAT,
            "version": MODEL_VERSION,
            "header": json.dumps(header, sort_keys=True),
            "weights": weights,
        },
        path,
    )


def load_model(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> NOFAAvatar:
    """Read a model file (also the older `NOFAAvatar.save` files). The returned model has
    `file_header` (dict: preset, config, rendering, metadata) and is in eval mode."""
    path = Path(path)
    payload = _torch_load(path, map_location, "nofa model file")
    fmt = payload.get("format") if isinstance(payload, dict) else None
    if fmt == LEGACY_MODEL_FORMAT:
        model = NOFAAvatar.load(path, map_location)
        model.file_header = {
            "preset": None,
            "config": model.config,
            "rendering": model.renderer.options.to_dict(),
            "metadata": {},
        }
        return model.eval()
    if fmt != MODEL_FORMAT:
        hint = (
            " (that is an avatar file: pass it as the source, not as --model)"
            if fmt in ("nofa-avatar", ANIMATABLE_FORMAT)
            else ""
        )
        raise ModelFileError(
            f"{path} is not a nofa model file (format {fmt!r}, expected {MODEL_FORMAT!r}){hint}"
        )
    _version(path, payload, MODEL_VERSION, "model file")
    try:
        header = json.loads(payload["header"])
        weights = payload["weights"]
        model = NOFAAvatar(header["config"])
    except (KeyError, TypeError, ValueError) as e:
        raise ModelFileError(f"{path}: damaged model-file header ({type(e).__name__}: {e})") from e
    missing = [c for c in COMPONENTS if not weights.get(c)]
    if missing:
        raise ModelFileError(f"{path}: model file lacks the component(s) {missing}")
    state = {k: v for comp in weights.values() for k, v in comp.items()}
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise ModelFileError(
            f"{path}: weights do not fit the stored config: {str(e).splitlines()[0]}"
        ) from e
    model.renderer.options = RenderOptions.from_dict(
        header.get("rendering", model.config["render"])
    )
    model.file_header = header
    return model.eval()


# -- animatable avatar ---------------------------------------------------------------------
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
        "format": ANIMATABLE_FORMAT,
        "version": ANIMATABLE_VERSION,
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
    return atomic_torch_save(payload, path)


def load_animatable(
    path: str | os.PathLike, map_location: str | torch.device = "cpu"
) -> AnimatableAvatar:
    """Read an animatable avatar, or a template-fit avatar file (-> identity deformation)."""
    path = Path(path)
    payload = _torch_load(path, map_location, "nofa avatar file")
    fmt = payload.get("format") if isinstance(payload, dict) else None
    if fmt == "nofa-avatar":
        from ..io.avatar import load_avatar

        return AnimatableAvatar.from_avatar(load_avatar(path, map_location)).to(map_location)
    if fmt != ANIMATABLE_FORMAT:
        hint = (
            " (that is a model file: pass it with --model and give a portrait as the source)"
            if fmt in (MODEL_FORMAT, LEGACY_MODEL_FORMAT)
            else ""
        )
        raise ModelFileError(
            f"{path} is not a nofa avatar file (format {fmt!r}, expected {ANIMATABLE_FORMAT!r} "
            f"or 'nofa-avatar'){hint}"
        )
    _version(path, payload, ANIMATABLE_VERSION, "animatable avatar")
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
        av = AnimatableAvatar(
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
            f"{path}: damaged animatable avatar ({type(e).__name__}: {str(e).splitlines()[0]})"
        ) from e
    return av.to(map_location).eval()
