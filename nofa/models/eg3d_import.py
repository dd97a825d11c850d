"""Convert NVIDIA's official EG3D `.pkl` checkpoints into a :class:`NOFAAvatar`
(docs/eg3d_import.md).

The file is read by :func:`nofa.io.eg3d_pickle.load_eg3d_pickle`, which never imports or
executes anything from it; this module maps the generator it returns (a tree of tensors and
plain values) onto nofa's modules and reads EG3D's settings the way EG3D itself does.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import torch

from ..io.eg3d_pickle import (
    SIDE_ENTRIES,
    EG3DImportError,
    ModuleTree,
    UnsafePickleError,
    flatten_tensors,
    load_eg3d_pickle,
)
from ..render import RenderOptions

__all__ = [
    "EG3DImport",
    "EG3DImportError",
    "ModuleTree",
    "UnsafePickleError",
    "eg3d_config",
    "flatten_tensors",
    "import_eg3d",
    "load_eg3d_pickle",
    "pick_network",
]


@dataclass
class EG3DImport:
    """What :func:`import_eg3d` did: tensors loaded, model tensors left missing, checkpoint tensors
    that map to nothing (all by name), the config read from the checkpoint, the network read and
    the snapshot entries left unread."""

    loaded: list[str]
    missing: list[str]
    unexpected: list[str]
    config: dict
    network: str = ""
    skipped: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------
# EG3D's settings, read as EG3D reads them
# ---------------------------------------------------------------------------------------

_SUPPORTED_SR = ("SuperresolutionHybrid8XDC", "SuperresolutionHybrid8X")
# EG3D prefix -> NOFAAvatar submodule (the decoder is converted by OSGDecoder.load_eg3d_tensors)
_PREFIXES = {"backbone.": "generator.", "superresolution.": "superres."}
_SYNTH_CONV1 = re.compile(r"backbone\.synthesis\.b(\d+)\.conv1\.weight")
# EG3D's SR modules build their blocks with conv_clamp = 256 whenever sr_num_fp16_res > 0
_SR_FP16_CONV_CLAMP = 256.0


def _need(tensors: dict, key: str) -> torch.Tensor:
    if key not in tensors:
        raise EG3DImportError(
            f"EG3D checkpoint lacks tensor {key!r}; is this an EG3D TriPlaneGenerator?"
        )
    return tensors[key]


def _number(where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise EG3DImportError(f"EG3D {where} is {value!r:.60}, expected a finite number")
    return float(value)


def _integer(where: str, value: Any) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise EG3DImportError(f"EG3D {where} is {value!r:.60}, expected an integer")
    return value


def _flag(where: str, value: Any) -> bool:
    if not isinstance(value, (bool, int)) or value not in (0, 1):
        raise EG3DImportError(f"EG3D {where} is {value!r:.60}, expected True or False")
    return bool(value)


def rendering_kwargs(g: ModuleTree) -> dict:
    """EG3D's rendering settings for generator `g`: its `rendering_kwargs` attribute (what EG3D
    renders with, also after a script changed it), else the one in its init kwargs, else {}."""
    for where, rk in (
        ("G.rendering_kwargs", g.state.get("rendering_kwargs")),
        ("G's init kwargs rendering_kwargs", g.init_kwargs.get("rendering_kwargs")),
    ):
        if rk is not None:
            if not isinstance(rk, dict):
                raise EG3DImportError(f"EG3D {where} is a {type(rk).__name__}, expected a dict")
            return dict(rk)
    return {}


def _sr_conv_clamp(g: ModuleTree) -> float | None:
    """The super-resolution blocks' conv_clamp as EG3D built them.

    The SR layers' own `conv_clamp` (and the blocks' init kwargs) when the pickle has them;
    otherwise EG3D's rule: 256 when sr_num_fp16_res > 0, else None. The generator's own
    conv_clamp never applies to the SR (EG3D's SR modules ignore it).
    """
    sr = g.children.get("superresolution")
    values: dict[str, Any] = {}
    if isinstance(sr, ModuleTree):
        for bname, block in sr.children.items():
            if not isinstance(block, ModuleTree):
                continue
            if "conv_clamp" in block.init_kwargs:
                values[f"superresolution.{bname} init kwargs"] = block.init_kwargs["conv_clamp"]
            for lname, layer in block.children.items():
                if isinstance(layer, ModuleTree) and "conv_clamp" in layer.state:
                    values[f"superresolution.{bname}.{lname}"] = layer.state["conv_clamp"]
    clamps = {None if v is None else _number(f"{k} conv_clamp", v) for k, v in values.items()}
    if len(clamps) > 1:
        raise EG3DImportError(
            f"EG3D super-resolution layers use different conv_clamp values {values}; nofa's SR "
            f"takes one"
        )
    if clamps:
        return clamps.pop()
    n = g.init_kwargs.get("sr_num_fp16_res")
    if n is None and isinstance(sr, ModuleTree):
        n = sr.init_kwargs.get("sr_num_fp16_res")
    return _SR_FP16_CONV_CLAMP if _integer("sr_num_fp16_res", n or 0) > 0 else None


def _ray_bound(key: str, value: Any) -> float | None:
    if value == "auto":  # EG3D's box-intersection mode
        return None
    return _number(f"rendering_kwargs[{key!r}]", value)


def eg3d_config(g: ModuleTree, tensors: dict[str, torch.Tensor] | None = None) -> dict:
    """NOFAAvatar config sections (generator, decoder, superres, render, image_size) for an EG3D G.

    Widths are read from the tensor shapes; rendering settings from :func:`rendering_kwargs`
    with EG3D's own defaults for absent keys (c_scale 0, as EG3D's `rendering_kwargs.get('c_scale',
    0)`).
    """
    tensors = flatten_tensors(g) if tensors is None else tensors
    kw = g.init_kwargs
    rk = rendering_kwargs(g)

    def opt(key: str, default: Any, read: Any) -> Any:
        return read(f"rendering_kwargs[{key!r}]", rk.get(key, default))

    eg3d = RenderOptions()  # EG3D FFHQ's rendering settings, for keys the file lacks

    sr_name = str(rk.get("superresolution_module", "")).rsplit(".", 1)[-1]
    if sr_name and sr_name not in _SUPPORTED_SR:
        raise EG3DImportError(
            f"EG3D super-resolution module {sr_name!r} is not supported (nofa maps "
            f"{_SUPPORTED_SR}: the 512 px FFHQ/AFHQ models)"
        )
    if rk.get("clamp_mode", "softplus") != "softplus":
        raise EG3DImportError(
            f"EG3D rendering_kwargs['clamp_mode'] is {rk['clamp_mode']!r:.40}; nofa renders "
            f"densities with 'softplus' only"
        )
    if opt("disparity_space_sampling", False, _flag):
        raise EG3DImportError(
            "EG3D rendering_kwargs['disparity_space_sampling'] is True; nofa samples in depth only"
        )
    res = sorted(int(m.group(1)) for k in tensors if (m := _SYNTH_CONV1.fullmatch(k)))
    if len(res) < 2:
        raise EG3DImportError(
            "EG3D checkpoint has fewer than two backbone.synthesis.b*.conv1.weight tensors"
        )
    ch = {r: _need(tensors, f"backbone.synthesis.b{r}.conv1.weight").shape[0] for r in res}
    ch_max, top = ch[res[0]], res[-1]
    ch_base = ch[top] * top if ch[top] < ch_max else ch_max * top
    if any(min(ch_base // r, ch_max) != c for r, c in ch.items()):
        raise EG3DImportError(f"EG3D synthesis widths {ch} do not follow min(base // res, max)")
    n_map = sum(1 for k in tensors if re.fullmatch(r"backbone\.mapping\.fc\d+\.weight", k))
    dec0, dec2 = _need(tensors, "decoder.net.0.weight"), _need(tensors, "decoder.net.2.weight")
    # the SR's last block runs at 4x its input resolution (512 for EG3D's FFHQ/AFHQ models)
    noise = tensors.get("superresolution.block1.conv1.noise_const")
    sr_in = noise.shape[-1] // 4 if noise is not None else 128
    conv_clamp = kw.get("conv_clamp")
    return {
        "image_size": 4 * sr_in,
        "generator": {
            "z_dim": _integer("z_dim", kw.get("z_dim", 512)),
            "c_dim": _integer("c_dim", kw.get("c_dim", 25)),
            "w_dim": _integer("w_dim", kw.get("w_dim", 512)),
            "plane_resolution": top,
            "plane_channels": _need(tensors, f"backbone.synthesis.b{top}.torgb.bias").shape[0] // 3,
            "channel_base": ch_base,
            "channel_max": ch_max,
            "mapping_layers": n_map,
            "head_resolution": min(64, res[-2]),
            "conv_clamp": None if conv_clamp is None else _number("conv_clamp", conv_clamp),
            "c_scale": opt("c_scale", 0, _number),
            "c_gen_conditioning_zero": opt("c_gen_conditioning_zero", False, _flag),
        },
        "decoder": {
            "hidden": dec0.shape[0],
            "out_features": dec2.shape[0] - 1,
            "lr_multiplier": opt("decoder_lr_mul", 1.0, _number),
        },
        "superres": {
            "input_resolution": sr_in,
            "antialias": opt("sr_antialias", True, _flag),
            "block_channels": [
                _need(tensors, f"superresolution.block{i}.conv1.weight").shape[0] for i in (0, 1)
            ],
            "conv_clamp": _sr_conv_clamp(g),
        },
        "render": {
            "resolution": _integer(
                "G.neural_rendering_resolution", g.state.get("neural_rendering_resolution", 128)
            ),
            "ray_start": _ray_bound("ray_start", rk.get("ray_start", eg3d.ray_start)),
            "ray_end": _ray_bound("ray_end", rk.get("ray_end", eg3d.ray_end)),
            "box_warp": opt("box_warp", eg3d.box_warp, _number),
            "coarse_samples": opt("depth_resolution", eg3d.coarse_samples, _integer),
            "importance_samples": opt(
                "depth_resolution_importance", eg3d.importance_samples, _integer
            ),
            "white_back": opt("white_back", eg3d.white_back, _flag),
        },
    }


def _pick(snapshot: dict, network: str | None) -> tuple[str, ModuleTree]:
    names = [network] if network else ["G_ema", "G"]
    for name in names:
        if isinstance(snapshot.get(name), ModuleTree):
            return name, snapshot[name]
    raise EG3DImportError(
        f"EG3D snapshot has no network {' or '.join(map(repr, names))} (entries: "
        f"{sorted(map(str, snapshot))})"
    )


def pick_network(snapshot: dict, network: str | None = None) -> ModuleTree:
    """The generator to import: `network`, else 'G_ema', else 'G'."""
    if network in SIDE_ENTRIES:
        raise EG3DImportError(
            f"{network!r} is not a generator (nofa skips {', '.join(SIDE_ENTRIES)})"
        )
    return _pick(snapshot, network)[1]


# ---------------------------------------------------------------------------------------
# Mapping G_ema onto nofa's modules
# ---------------------------------------------------------------------------------------


@torch.no_grad()
def import_eg3d(source: Any, model: Any = None, network: str | None = None, strict: bool = False):
    """Load an EG3D G (a path, a snapshot dict or a ModuleTree) into a NOFAAvatar.

    With `model=None` a paper-preset NOFAAvatar is built with the checkpoint's generator,
    decoder, super-resolution and rendering settings (its encoder, detail, fusion and
    deformation networks stay freshly initialised). Returns (model, EG3DImport). With
    `strict=True` any missing or unexpected tensor raises. Every failure is an
    :class:`EG3DImportError` (a ValueError).
    """
    if isinstance(source, ModuleTree):
        name, g, skipped = "", source, []
    else:
        snapshot = source if isinstance(source, dict) else load_eg3d_pickle(source)
        pick_network(snapshot, network)
        name, g = _pick(snapshot, network)
        skipped = sorted(str(k) for k in snapshot if k != name)
    tensors = flatten_tensors(g)
    config = eg3d_config(g, tensors)
    if model is None:
        from .avatar import NOFAAvatar
        from .presets import get_config

        try:
            model = NOFAAvatar(get_config("paper", **config))
        except (ValueError, TypeError) as e:
            raise EG3DImportError(
                f"the EG3D settings {config} do not make a nofa model: {e}"
            ) from e
    own = model.state_dict()
    targets = {k: v for k, v in own.items() if k.startswith(tuple(_PREFIXES.values()))}
    loaded, unexpected = [], []
    for key, t in tensors.items():
        if key.startswith("decoder."):
            continue
        dst = next(
            (new + key[len(old) :] for old, new in _PREFIXES.items() if key.startswith(old)), None
        )
        if dst is None or dst not in targets:
            unexpected.append(key)
            continue
        if tuple(targets[dst].shape) != tuple(t.shape):
            raise EG3DImportError(
                f"EG3D tensor {key} has shape {list(t.shape)}, nofa's {dst} has "
                f"{list(targets[dst].shape)}"
            )
        if t.is_complex() or (t.dtype == torch.bool) != (own[dst].dtype == torch.bool):
            raise EG3DImportError(
                f"EG3D tensor {key} has dtype {t.dtype}, nofa's {dst} is {own[dst].dtype}"
            )
        targets.pop(dst).copy_(t.to(own[dst].dtype))
        loaded.append(key)
    dec_keys = sorted(k for k in tensors if k.startswith("decoder."))
    try:
        model.decoder.load_eg3d_tensors(
            tensors, lr_multiplier=model.config["decoder"]["lr_multiplier"]
        )
    except (KeyError, ValueError, RuntimeError) as e:
        raise EG3DImportError(f"EG3D decoder: {e}") from e
    loaded += [
        k for k in dec_keys if k.startswith("decoder.net.") and k.split(".")[2] in ("0", "2")
    ]
    unexpected += [k for k in dec_keys if k not in loaded]
    report = EG3DImport(loaded, sorted(targets), sorted(unexpected), config, name, skipped)
    if strict and (report.missing or report.unexpected):
        raise EG3DImportError(
            f"EG3D import: missing {report.missing}, unexpected {report.unexpected}"
        )
    return model, report
