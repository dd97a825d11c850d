"""Read NVIDIA's official EG3D `.pkl` checkpoints without executing any code from them.

An EG3D snapshot is a pickle of a dict ('G', 'D', 'G_ema', 'augment_pipe', ...). Each
network is a "persistent" object that pickles itself as
`torch_utils.persistence._reconstruct_persistent_obj(meta)`, where `meta` holds `type`,
`version`, `module_src` (the Python source of its module), `class_name` and `state` (the
object's `__dict__`: `_parameters`, `_buffers`, `_modules`, `_init_kwargs`, ...).
Unpickling it the normal way would `exec` `module_src`. Here a restricted unpickler
allows only a short list of globals, turns every persistent object (and every plain
torch module inside one) into a :class:`ModuleTree` of tensors and plain values, never
executes `module_src`, and loads tensor storages through `torch.load(weights_only=True)`.
Any other global is refused with an error naming it.
"""
from __future__ import annotations

import collections
import io
import pickle
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["EG3DImport", "ModuleTree", "UnsafePickleError", "eg3d_config", "flatten_tensors", "import_eg3d",
           "load_eg3d_pickle"]


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle asks for a global that the restricted unpickler does not allow."""


@dataclass
class ModuleTree:
    """A module read from the pickle: its class name and its `__dict__` as plain data.

    `module_src` is kept as text (for inspection); it is never compiled or executed.
    """

    class_name: str
    state: dict = field(default_factory=dict)
    module_src: str | None = None

    def __setstate__(self, state: Any) -> None:  # BUILD of a pickled plain torch module
        if isinstance(state, tuple):  # (dict_state, slot_state)
            state = state[0] or {}
        self.state = dict(state or {})
        self.module_src = None
        self.class_name = getattr(self, "class_name", type(self).__name__)

    @property
    def parameters(self) -> dict:
        return dict(self.state.get("_parameters") or {})

    @property
    def buffers(self) -> dict:
        return dict(self.state.get("_buffers") or {})

    @property
    def children(self) -> dict:
        return dict(self.state.get("_modules") or {})

    @property
    def init_kwargs(self) -> dict:
        return dict(self.state.get("_init_kwargs") or {})


def _reconstruct_persistent_obj(meta: Any) -> ModuleTree:
    """Stands in for torch_utils.persistence._reconstruct_persistent_obj: build a tree, no exec."""
    if not isinstance(meta, dict) or meta.get("type") != "class":
        raise UnsafePickleError(f"unexpected persistent object metadata: {type(meta).__name__} "
                                f"{sorted(meta) if isinstance(meta, dict) else ''}")
    state = meta.get("state") or {}
    if not isinstance(state, dict):
        raise UnsafePickleError(f"persistent object {meta.get('class_name')!r} has a non-dict state")
    src = meta.get("module_src")
    return ModuleTree(str(meta.get("class_name")), dict(state), src if isinstance(src, str) else None)


def _torch_module_class(name: str) -> type:
    """A fresh ModuleTree subclass standing in for a plain module class (Sequential, OSGDecoder, ...)."""
    return type(name, (ModuleTree,), {"__init__": lambda self: ModuleTree.__init__(self, name)})


def _load_storage_bytes(data: bytes) -> Any:
    """torch.storage._load_from_bytes, but through the weights-only loader."""
    return torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    t = torch.empty(0, dtype=storage.dtype)
    t.set_(storage._untyped_storage if hasattr(storage, "_untyped_storage") else storage, storage_offset, size, stride)
    return t


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, state=None):
    return data  # a Parameter is only its data here


def _reconstructor(cls, base, state):  # copyreg._reconstructor for protocol < 2 pickles
    if not (isinstance(cls, type) and issubclass(cls, ModuleTree)):
        raise UnsafePickleError(f"copyreg._reconstructor on {cls!r} is not allowed")
    obj = cls.__new__(cls)
    ModuleTree.__init__(obj, cls.__name__)
    return obj


# Plain (non-persistent) module classes that occur inside an EG3D generator: they are
# pickled by reference and become inert ModuleTree stand-ins here.
_PLAIN_MODULES = {
    "torch.nn.modules.container": ("Sequential", "ModuleList", "ModuleDict"),
    "torch.nn.modules.activation": ("Softplus", "ReLU", "LeakyReLU", "Sigmoid", "Tanh"),
    "torch.nn.modules.linear": ("Identity",),
    "training.triplane": ("OSGDecoder",),
    "training.volumetric_rendering.renderer": ("ImportanceRenderer",),
    "training.volumetric_rendering.ray_marcher": ("MipRayMarcher2",),
    "training.volumetric_rendering.ray_sampler": ("RaySampler",),
}


class _RestrictedUnpickler(pickle.Unpickler):
    ALLOWED: dict[tuple[str, str], Any] = {
        ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
        ("torch.storage", "_load_from_bytes"): _load_storage_bytes,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("dnnlib.util", "EasyDict"): dict,
        ("copyreg", "_reconstructor"): _reconstructor,
        ("builtins", "object"): object,
        ("torch", "device"): torch.device,
        ("torch", "Size"): torch.Size,
    }

    def find_class(self, module: str, name: str) -> Any:
        key = (module, name)
        if key in self.ALLOWED:
            return self.ALLOWED[key]
        if name in _PLAIN_MODULES.get(module, ()):
            return _torch_module_class(name)
        raise UnsafePickleError(
            f"refusing to load global '{module}.{name}' from the checkpoint: nofa reads EG3D pickles with a "
            f"restricted unpickler that only allows the tensors and containers of an EG3D snapshot")


def load_eg3d_pickle(path_or_file: Any) -> dict:
    """Read an EG3D snapshot as plain data: {'G_ema': ModuleTree, ...}. Executes no code from the file."""
    if hasattr(path_or_file, "read"):
        data = _RestrictedUnpickler(path_or_file).load()
    else:
        with open(path_or_file, "rb") as f:
            data = _RestrictedUnpickler(f).load()
    if not isinstance(data, dict):
        raise ValueError(f"an EG3D snapshot is a pickled dict, got {type(data).__name__}")
    return data


def flatten_tensors(tree: ModuleTree, prefix: str = "") -> dict[str, torch.Tensor]:
    """All parameters and buffers of `tree` as {'a.b.weight': tensor} (None entries skipped)."""
    out: dict[str, torch.Tensor] = {}
    for group in (tree.parameters, tree.buffers):
        for k, v in group.items():
            if v is not None:
                if not isinstance(v, torch.Tensor):
                    raise ValueError(f"{prefix}{k} is a {type(v).__name__}, expected a tensor")
                out[prefix + k] = v
    for k, child in tree.children.items():
        if child is None:
            continue
        if not isinstance(child, ModuleTree):
            raise ValueError(f"{prefix}{k} is a {type(child).__name__}, expected a module")
        out.update(flatten_tensors(child, f"{prefix}{k}."))
    return out


@dataclass
class EG3DImport:
    """What :func:`import_eg3d` did: tensors loaded, model tensors left missing, checkpoint tensors
    that map to nothing (all by name), and the config read from the checkpoint."""

    loaded: list[str]
    missing: list[str]
    unexpected: list[str]
    config: dict


# ---------------------------------------------------------------------------------------
# Mapping G_ema onto nofa's modules
# ---------------------------------------------------------------------------------------

_SUPPORTED_SR = ("SuperresolutionHybrid8XDC", "SuperresolutionHybrid8X")
# EG3D prefix -> NOFAAvatar submodule (the decoder is converted by OSGDecoder.load_eg3d_tensors)
_PREFIXES = {"backbone.": "generator.", "superresolution.": "superres."}


def _need(tensors: dict, key: str) -> torch.Tensor:
    if key not in tensors:
        raise ValueError(f"EG3D checkpoint lacks tensor {key!r}; is this an EG3D TriPlaneGenerator?")
    return tensors[key]


def eg3d_config(g: ModuleTree, tensors: dict[str, torch.Tensor] | None = None) -> dict:
    """NOFAAvatar config sections (generator, decoder, superres, render, image_size) for an EG3D G.

    Widths are read from the tensor shapes; rendering settings from `rendering_kwargs`.
    """
    tensors = flatten_tensors(g) if tensors is None else tensors
    kw = g.init_kwargs
    rk = dict(kw.get("rendering_kwargs") or {})
    sr_name = str(rk.get("superresolution_module", "")).rsplit(".", 1)[-1]
    if sr_name and sr_name not in _SUPPORTED_SR:
        raise ValueError(f"EG3D super-resolution module {sr_name!r} is not supported (nofa maps {_SUPPORTED_SR}: "
                         f"the 512 px FFHQ/AFHQ models)")
    res = sorted(int(k.split(".")[2][1:]) for k in tensors if k.startswith("backbone.synthesis.b") and k.endswith(".conv1.weight"))
    if not res:
        raise ValueError("EG3D checkpoint has no backbone.synthesis.b*.conv1.weight tensors")
    ch = {r: _need(tensors, f"backbone.synthesis.b{r}.conv1.weight").shape[0] for r in res}
    ch_max, top = ch[res[0]], res[-1]
    ch_base = ch[top] * top if ch[top] < ch_max else ch_max * top
    if any(min(ch_base // r, ch_max) != c for r, c in ch.items()):
        raise ValueError(f"EG3D synthesis widths {ch} do not follow min(base // res, max)")
    n_map = sum(1 for k in tensors if k.startswith("backbone.mapping.fc") and k.endswith(".weight"))
    dec0, dec2 = _need(tensors, "decoder.net.0.weight"), _need(tensors, "decoder.net.2.weight")
    # the SR's last block runs at 4x its input resolution (512 for EG3D's FFHQ/AFHQ models)
    noise = tensors.get("superresolution.block1.conv1.noise_const")
    sr_in = noise.shape[-1] // 4 if noise is not None else 128
    return {
        "image_size": 4 * sr_in,
        "generator": {
            "z_dim": int(kw.get("z_dim", 512)), "c_dim": int(kw.get("c_dim", 25)), "w_dim": int(kw.get("w_dim", 512)),
            "plane_resolution": top, "plane_channels": _need(tensors, f"backbone.synthesis.b{top}.torgb.bias").shape[0] // 3,
            "channel_base": ch_base, "channel_max": ch_max, "mapping_layers": n_map, "head_resolution": min(64, res[-2]),
            "conv_clamp": kw.get("conv_clamp"), "c_scale": float(rk.get("c_scale", 1.0)),
            "c_gen_conditioning_zero": bool(rk.get("c_gen_conditioning_zero", False)),
        },
        "decoder": {"hidden": dec0.shape[0], "out_features": dec2.shape[0] - 1,
                    "lr_multiplier": float(rk.get("decoder_lr_mul", 1.0))},
        "superres": {"input_resolution": sr_in, "antialias": bool(rk.get("sr_antialias", True)),
                     "block_channels": [_need(tensors, f"superresolution.block{i}.conv1.weight").shape[0] for i in (0, 1)]},
        "render": {
            "resolution": int(g.state.get("neural_rendering_resolution", 128)),
            "ray_start": _number_or_none(rk.get("ray_start", 2.25)), "ray_end": _number_or_none(rk.get("ray_end", 3.3)),
            "box_warp": float(rk.get("box_warp", 1.0)), "coarse_samples": int(rk.get("depth_resolution", 48)),
            "importance_samples": int(rk.get("depth_resolution_importance", 48)),
            "white_back": bool(rk.get("white_back", False)),
        },
    }


def _number_or_none(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) else None  # EG3D writes 'auto' for box intersection


def pick_network(snapshot: dict, network: str | None = None) -> ModuleTree:
    """The generator to import: `network`, else 'G_ema', else 'G'."""
    names = [network] if network else ["G_ema", "G"]
    for name in names:
        if isinstance(snapshot.get(name), ModuleTree):
            return snapshot[name]
    raise ValueError(f"EG3D snapshot has no network {' or '.join(names)} (keys: {sorted(map(str, snapshot))})")


@torch.no_grad()
def import_eg3d(source: Any, model: Any = None, network: str | None = None, strict: bool = False):
    """Load an EG3D G (a path, a snapshot dict or a ModuleTree) into a NOFAAvatar.

    With `model=None` a paper-preset NOFAAvatar is built with the checkpoint's generator,
    decoder, super-resolution and rendering settings (its encoder, detail, fusion and
    deformation networks stay freshly initialised). Returns (model, EG3DImport). With
    `strict=True` any missing or unexpected tensor raises.
    """
    g = source if isinstance(source, ModuleTree) else pick_network(
        source if isinstance(source, dict) else load_eg3d_pickle(source), network)
    tensors = flatten_tensors(g)
    config = eg3d_config(g, tensors)
    if model is None:
        from .avatar import NOFAAvatar
        from .presets import get_config

        model = NOFAAvatar(get_config("paper", **config))
    own = model.state_dict()
    targets = {k: v for k, v in own.items() if k.startswith(tuple(_PREFIXES.values()))}
    loaded, unexpected = [], []
    for key, t in tensors.items():
        if key.startswith("decoder."):
            continue
        dst = next((new + key[len(old):] for old, new in _PREFIXES.items() if key.startswith(old)), None)
        if dst is None or dst not in targets:
            unexpected.append(key)
            continue
        if tuple(targets[dst].shape) != tuple(t.shape):
            raise ValueError(f"EG3D tensor {key} has shape {list(t.shape)}, nofa's {dst} has {list(targets[dst].shape)}")
        targets.pop(dst).copy_(t.to(own[dst].dtype))
        loaded.append(key)
    dec_keys = sorted(k for k in tensors if k.startswith("decoder."))
    model.decoder.load_eg3d_tensors(tensors, lr_multiplier=model.config["decoder"]["lr_multiplier"])
    loaded += [k for k in dec_keys if k.startswith("decoder.net.") and k.split(".")[2] in ("0", "2")]
    unexpected += [k for k in dec_keys if k not in loaded]
    report = EG3DImport(loaded, sorted(targets), sorted(unexpected), config)
    if strict and (report.missing or report.unexpected):
        raise ValueError(f"EG3D import: missing {report.missing}, unexpected {report.unexpected}")
    return model, report
