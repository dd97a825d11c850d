"""EG3D checkpoint import, tested on pickles written the way EG3D's training loop writes snapshots.

The machinery below re-implements (it does not copy) what matters of EG3D's format:
- persistent classes pickle as `torch_utils.persistence._reconstruct_persistent_obj(meta)`
  with `meta = dict(type='class', version, module_src, class_name, state=<the object's __dict__>)`,
  where `state` comes from `object.__reduce__` as in EG3D's decorator; the `module_src` here
  writes a canary file if it were ever executed;
- the layers keep numpy scalars in their state (weight/act gains), pickled as
  `numpy.core.multiarray.scalar` (numpy 1.x, what the released files were written with) and
  `numpy._core.multiarray.scalar` (numpy 2), with `numpy.dtype`;
- plain modules (OSGDecoder, ImportanceRenderer, Sequential, ...) are pickled by reference;
- the snapshot is `{training_set_kwargs, G, D, G_ema, augment_pipe}`, each network a
  `copy.deepcopy(module).eval().requires_grad_(False).cpu()`, with a discriminator of its own
  classes (and a class nofa does not know), an augment pipe, fp16 SR settings.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import io
import math
import os
import pickle
import random
import re
import struct
import sys
import tracemalloc
import types
import warnings

import numpy as np
import pytest
import torch
import torch.nn as nn

from nofa.io.eg3d_pickle import (
    EG3DImportError,
    ModuleTree,
    OpaqueObject,
    UnsafePickleError,
    load_eg3d_pickle,
)
from nofa.models import NOFAAvatar
from nofa.models.eg3d_import import eg3d_config, flatten_tensors, import_eg3d

BUFFERS = {"w_avg", "resample_filter", "noise_const", "p", "Hz_geom"}
_CLASSES: dict[str, type] = {}


# ---------------------------------------------------------------------------------------
# EG3D's persistence, re-implemented for writing test files
# ---------------------------------------------------------------------------------------


def _reconstruct(meta):
    """What `_reconstruct_persistent_obj` does for deepcopy in this process (EG3D would exec
    module_src here; the test just rebuilds the object). nofa must never call it."""
    cls = _CLASSES[meta["class_name"]]
    obj = cls.__new__(cls)
    obj.__dict__.update(meta["state"])
    return obj


_reconstruct.__module__ = "torch_utils.persistence"
_reconstruct.__name__ = _reconstruct.__qualname__ = "_reconstruct_persistent_obj"


class EasyDict(dict):
    pass


EasyDict.__module__ = "dnnlib.util"


class Persistent(nn.Module):
    """A persistent class: its source travels in every pickle, its __dict__ as meta['state']."""

    module_src = ""

    def __init__(self, **init_kwargs) -> None:
        super().__init__()
        self._init_args = ()
        self._init_kwargs = copy.deepcopy(init_kwargs)

    def __reduce__(self):
        fields = list(super().__reduce__())
        fields += [None] * max(3 - len(fields), 0)
        meta = dict(
            type="class",
            version=4,
            module_src=type(self).module_src,
            class_name=type(self).__name__,
            state=fields[2],
        )
        return _reconstruct, (meta,), None


def persistent_classes(sources: dict[str, list[str]]) -> dict[str, type]:
    out = {}
    for src, names in sources.items():
        for name in names:
            out[name] = _CLASSES[name] = type(name, (Persistent,), {"module_src": src})
    return out


def _np1_scalar(dtype, data):
    """numpy 1.x's `numpy.core.multiarray.scalar` (pickled by that name; used by deepcopy here)."""
    return NP1Float(struct.unpack("<d", data)[0])


_np1_scalar.__module__ = "numpy.core.multiarray"
_np1_scalar.__name__ = _np1_scalar.__qualname__ = "scalar"


class NP1Float(float):
    """A float64 that pickles as numpy 1.x wrote np.float64: numpy.core.multiarray.scalar(dtype,
    bytes)."""

    def __reduce__(self):
        return _np1_scalar, (np.dtype("f8"), struct.pack("<d", float(self)))


def _plain_class(module: str, name: str) -> type:
    """A plain nn.Module class that pickles by reference as `module.name`, as EG3D's do."""
    cls = type(name, (nn.Module,), {})
    cls.__module__, cls.__qualname__ = module, name
    return cls


PLAIN = {
    (m, n): _plain_class(m, n)
    for m, n in (
        ("training.triplane", "OSGDecoder"),
        ("training.volumetric_rendering.renderer", "ImportanceRenderer"),
        ("training.volumetric_rendering.ray_marcher", "MipRayMarcher2"),
        ("training.volumetric_rendering.ray_sampler", "RaySampler"),
        ("training.dual_discriminator", "Helper"),  # a class nofa does not know
    )
}
UNKNOWN = PLAIN["training.dual_discriminator", "Helper"]


@contextlib.contextmanager
def eg3d_modules():
    """EG3D's module names, importable only while pickling (the loader must never need them)."""
    names = [
        "torch_utils",
        "torch_utils.persistence",
        "dnnlib",
        "dnnlib.util",
        "training",
        "training.volumetric_rendering",
        "numpy.core.multiarray",
        *sorted({m for m, _ in PLAIN}),
    ]
    mods = {name: types.ModuleType(name) for name in names}
    for (m, n), cls in PLAIN.items():
        setattr(mods[m], n, cls)
    mods["torch_utils.persistence"]._reconstruct_persistent_obj = _reconstruct
    mods["dnnlib.util"].EasyDict = EasyDict
    mods["numpy.core.multiarray"].scalar = _np1_scalar
    saved = {k: sys.modules.get(k) for k in mods}
    sys.modules.update(mods)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


def canary_src(canary: str, file: str) -> str:
    return f"# {file}\nimport pathlib\npathlib.Path({canary!r}).write_text('{file} was executed')\n"


def build_tree(tensors: dict[str, torch.Tensor], root: nn.Module, role) -> nn.Module:
    """Put `tensors` ('a.b.weight') under `root`, each new submodule made by `role(path)`."""
    for key, t in tensors.items():
        *path, leaf = key.split(".")
        node = root
        for i, part in enumerate(path):
            if part not in node._modules:
                node.add_module(part, role(path[: i + 1]))
            node = node._modules[part]
        if leaf in BUFFERS:
            node.register_buffer(leaf, t.clone())
        else:
            node.register_parameter(leaf, nn.Parameter(t.clone()))
    return root


def add_layer_state(node: nn.Module, name: str, conv_clamp) -> None:
    """The plain attributes EG3D's layers keep, numpy scalars in both spellings included."""
    kind = type(node).__name__
    if kind == "FullyConnectedLayer":
        w = node._parameters["weight"]
        node.activation, node.bias_gain = "linear", 1.0
        node.weight_gain = np.float64(1.0) / np.sqrt(w.shape[1])  # numpy 2 spelling
    elif kind == "SynthesisLayer":
        node.activation, node.padding, node.use_noise = "lrelu", 1, True
        node.act_gain = NP1Float(math.sqrt(2))  # numpy 1.x spelling
        node.conv_clamp = conv_clamp
    elif kind == "ToRGBLayer":
        w = node._parameters["weight"]
        node.weight_gain = NP1Float(1 / math.sqrt(w.shape[1]))
        node.conv_clamp = conv_clamp
    elif kind == "SynthesisBlock":
        node.use_fp16, node.channels_last, node.num_conv = (
            conv_clamp is not None,
            False,
            np.int64(2),
        )
    for child_name, child in node._modules.items():
        add_layer_state(child, child_name, conv_clamp)


def make_generator(
    model: NOFAAvatar,
    canary: str,
    seed: int,
    sr_fp16: bool,
    rendering_state: dict | None,
    extra: dict | None = None,
    drop: tuple[str, ...] = (),
) -> nn.Module:
    cls = persistent_classes(
        {
            canary_src(canary, "training/triplane.py"): ["TriPlaneGenerator"],
            canary_src(canary, "training/networks_stylegan2.py"): [
                "StyleGAN2Backbone",
                "MappingNetwork",
                "SynthesisNetwork",
                "SynthesisBlock",
                "SynthesisLayer",
                "ToRGBLayer",
                "FullyConnectedLayer",
            ],
            canary_src(canary, "training/superresolution.py"): ["SuperresolutionHybrid8XDC"],
        }
    )
    gen = torch.Generator().manual_seed(seed)
    tensors = {}
    for k, v in model.state_dict().items():
        for ours, theirs in (("generator.", "backbone."), ("superres.", "superresolution.")):
            if k.startswith(ours):
                noise = 0.25 * torch.randn(v.shape, generator=gen) if v.is_floating_point() else 0
                tensors[theirs + k[len(ours) :]] = v + noise
    tensors.update(extra or {})
    for k in drop:
        tensors.pop(k)
    clamp = 256 if sr_fp16 else None

    def role(path):
        last = path[-1]
        if path == ["backbone"]:
            return cls["StyleGAN2Backbone"]()
        if path == ["superresolution"]:
            return cls["SuperresolutionHybrid8XDC"](
                channels=32,
                img_resolution=512,
                sr_num_fp16_res=4 if sr_fp16 else 0,
                sr_antialias=True,
            )
        if last == "mapping":
            return cls["MappingNetwork"]()
        if last == "synthesis":
            return cls["SynthesisNetwork"]()
        if re.fullmatch(
            r"block\d", last
        ):  # EG3D passes conv_clamp=(256 if use_fp16 else None) to its SR blocks
            return cls["SynthesisBlock"](use_fp16=sr_fp16, conv_clamp=clamp)
        if re.fullmatch(r"b\d+", last):
            return cls["SynthesisBlock"](use_fp16=False, conv_clamp=None)
        if last in ("conv0", "conv1"):
            return cls["SynthesisLayer"]()
        if last == "torgb":
            return cls["ToRGBLayer"]()
        return cls["FullyConnectedLayer"]()

    g = build_tree(tensors, cls["TriPlaneGenerator"](), role)
    add_layer_state(g._modules["backbone"], "backbone", None)
    add_layer_state(g._modules["superresolution"], "superresolution", clamp)
    dec = model.decoder

    def fc(o: int, i: int) -> nn.Module:
        layer = cls["FullyConnectedLayer"](in_features=i, out_features=o)
        return build_tree(
            {"weight": torch.randn(o, i, generator=gen), "bias": torch.randn(o, generator=gen)},
            layer,
            None,
        )

    net = nn.Sequential(
        fc(dec.hidden, dec.n_features), nn.Softplus(), fc(1 + dec.out_features, dec.hidden)
    )
    for layer in (net[0], net[2]):
        add_layer_state(layer, "fc", None)
    decoder = PLAIN["training.triplane", "OSGDecoder"]()
    decoder.add_module("net", net)
    g.add_module("decoder", decoder)
    renderer = PLAIN["training.volumetric_rendering.renderer", "ImportanceRenderer"]()
    renderer.add_module(
        "ray_marcher", PLAIN["training.volumetric_rendering.ray_marcher", "MipRayMarcher2"]()
    )
    renderer.plane_axes = (
        torch.eye(3).expand(3, 3, 3).clone()
    )  # a plain tensor attribute, not a buffer
    g.add_module("renderer", renderer)
    g.add_module("ray_sampler", PLAIN["training.volumetric_rendering.ray_sampler", "RaySampler"]())
    init_rk = {
        "image_resolution": 512,
        "disparity_space_sampling": False,
        "clamp_mode": "softplus",
        "superresolution_module": "training.superresolution.SuperresolutionHybrid8XDC",
        "c_gen_conditioning_zero": False,
        "gpc_reg_prob": 0.5,
        "superresolution_noise_mode": "none",
        "decoder_lr_mul": 1.0,
        "sr_antialias": True,
        "depth_resolution": 24,
        "depth_resolution_importance": 10,
        "ray_start": 2.25,
        "ray_end": 3.3,
        "box_warp": 1,
        "avg_camera_radius": 2.7,
        "avg_camera_pivot": [0, 0, 0.2],
    }  # no c_scale: as in the released FFHQ files
    g._init_kwargs = dict(
        z_dim=model.generator.z_dim,
        c_dim=25,
        w_dim=model.generator.w_dim,
        img_resolution=512,
        img_channels=3,
        sr_num_fp16_res=4 if sr_fp16 else 0,
        mapping_kwargs=EasyDict(num_layers=2),
        rendering_kwargs=copy.deepcopy(init_rk),
        sr_kwargs={},
        channel_base=32768,
        channel_max=512,
        fused_modconv_default="inference_only",
        num_fp16_res=0,
        conv_clamp=None,
    )
    g.rendering_kwargs = init_rk if rendering_state is None else {**init_rk, **rendering_state}
    g.neural_rendering_resolution = 16
    g._last_planes = None
    return g


def make_discriminator(canary: str) -> nn.Module:
    cls = persistent_classes(
        {
            canary_src(canary, "training/dual_discriminator.py"): ["DualDiscriminator"],
            canary_src(canary, "training/networks_stylegan2.py"): [
                "DiscriminatorBlock",
                "DiscriminatorEpilogue",
                "MinibatchStdLayer",
                "Conv2dLayer",
                "DMappingNetwork",
            ],
        }
    )
    tensors = {
        "b8.conv0.weight": torch.randn(4, 6, 3, 3),
        "b8.conv0.bias": torch.randn(4),
        "b8.skip.weight": torch.randn(4, 6, 1, 1),
        "b8.resample_filter": torch.ones(4, 4) / 16,
        "b4.conv.weight": torch.randn(4, 5, 3, 3),
        "b4.fc.weight": torch.randn(8, 64),
        "mapping.fc0.weight": torch.randn(8, 25),
        "resample_filter": torch.ones(4, 4) / 16,
    }

    def role(path):
        last = path[-1]
        return cls[
            "DiscriminatorBlock"
            if last == "b8"
            else "DiscriminatorEpilogue"
            if last == "b4"
            else "DMappingNetwork"
            if last == "mapping"
            else "Conv2dLayer"
        ](architecture="resnet")

    d = build_tree(
        tensors,
        cls["DualDiscriminator"](
            c_dim=25,
            img_resolution=512,
            img_channels=3,
            disc_c_noise=0.0,
            block_kwargs=EasyDict(freeze_layers=0),
        ),
        role,
    )
    d._modules["b4"].add_module("mbstd", cls["MinibatchStdLayer"](group_size=4))
    for node in d.modules():
        if type(node).__name__ == "Conv2dLayer":
            node.weight_gain = NP1Float(1 / math.sqrt(node.weight[0].numel()))
            node.act_gain = np.sqrt(2)
    d.add_module("helper", UNKNOWN())  # a class of its own that nofa does not know
    d.kernel = np.array([1, 3, 3, 1])  # and a numpy array (numpy.core.multiarray._reconstruct)
    return d


def make_augment_pipe(canary: str) -> nn.Module:
    cls = persistent_classes({canary_src(canary, "training/augment.py"): ["AugmentPipe"]})
    a = cls["AugmentPipe"](xflip=1, rotate90=1, xint=1, scale=1, rotate=1, aniso=1, xfrac=1)
    a.register_buffer("p", torch.zeros([]))
    a.register_buffer("Hz_geom", torch.randn(12))
    a.xflip, a.imgfilter_bands, a.imgfilter_std = 1.0, [1, 1, 1, 1], 1.0
    return a


def write_snapshot(
    path,
    model: NOFAAvatar,
    canary: str,
    sr_fp16: bool = True,
    rendering_state: dict | None = None,
    **gen_kwargs,
) -> None:
    """A snapshot written as EG3D's training loop does: deep copies in eval mode, one
    pickle.dump."""
    G_ema = make_generator(model, canary, 1, sr_fp16, rendering_state, **gen_kwargs)
    G = make_generator(model, canary, 2, sr_fp16, rendering_state, **gen_kwargs)
    D, augment_pipe = make_discriminator(canary), make_augment_pipe(canary)
    snapshot = dict(
        training_set_kwargs=dict(
            class_name="training.dataset.ImageFolderDataset",
            path="/data/ffhq.zip",
            use_labels=True,
            max_size=70000,
            xflip=True,
            resolution=512,
            random_seed=0,
        )
    )
    with eg3d_modules():
        for name, module in [("G", G), ("D", D), ("G_ema", G_ema), ("augment_pipe", augment_pipe)]:
            snapshot[name] = copy.deepcopy(module).eval().requires_grad_(False).cpu()
        with open(path, "wb") as f:
            pickle.dump(snapshot, f)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return NOFAAvatar.from_preset("tiny")


@pytest.fixture(scope="module")
def snapshot_file(tiny, tmp_path_factory):
    d = tmp_path_factory.mktemp("eg3d")
    write_snapshot(d / "snapshot.pkl", tiny, str(d / "canary"))
    return d / "snapshot.pkl", d / "canary"


# ---------------------------------------------------------------------------------------
# Genuine snapshots
# ---------------------------------------------------------------------------------------


def test_genuine_snapshot_loads_without_running_or_importing_anything(snapshot_file):
    path, canary = snapshot_file
    raw = path.read_bytes()
    for name in (
        b"numpy.core.multiarray",
        b"numpy._core.multiarray",
        b"dtype",
        b"DualDiscriminator",
        b"AugmentPipe",
        b"training.dual_discriminator",
        b"_reconstruct_persistent_obj",
    ):
        assert name in raw, name  # the file really has what the released snapshots have
    before = set(sys.modules)
    data = load_eg3d_pickle(path)
    assert not canary.exists(), "module_src from the pickle was executed"
    assert not {
        m
        for m in set(sys.modules) - before
        if m.split(".")[0] in ("training", "torch_utils", "dnnlib")
    }
    assert sorted(data) == ["D", "G", "G_ema", "augment_pipe", "training_set_kwargs"]
    g = data["G_ema"]
    assert isinstance(g, ModuleTree) and g.class_name == "TriPlaneGenerator"
    assert "write_text" in g.module_src  # kept as text only
    fc0 = g.children["backbone"].children["mapping"].children["fc0"]
    assert type(fc0.state["weight_gain"]) is float  # numpy 2 spelling, read as a plain float
    assert fc0.state["weight_gain"] == pytest.approx(
        1 / math.sqrt(fc0.parameters["weight"].shape[1])
    )
    conv = g.children["backbone"].children["synthesis"].children["b8"].children["conv0"]
    assert type(conv.state["act_gain"]) is float and conv.state["act_gain"] == math.sqrt(
        2
    )  # numpy 1.x spelling
    assert (
        type(g.children["backbone"].children["synthesis"].children["b8"].state["num_conv"]) is int
    )
    d = data["D"]
    assert (
        d.class_name == "DualDiscriminator"
        and type(d.children["b8"].children["conv0"].state["weight_gain"]) is float
    )
    assert isinstance(d.children["helper"], OpaqueObject) and isinstance(
        d.state["kernel"], OpaqueObject
    )
    assert (
        data["augment_pipe"].class_name == "AugmentPipe"
        and data["training_set_kwargs"]["resolution"] == 512
    )


def test_genuine_snapshot_imports_g_ema(snapshot_file):
    path, canary = snapshot_file
    model = NOFAAvatar.from_preset("tiny")
    _, report = import_eg3d(path, model=model)
    assert not canary.exists()
    assert report.missing == [] and report.unexpected == []
    assert report.network == "G_ema" and report.skipped == [
        "D",
        "G",
        "augment_pipe",
        "training_set_kwargs",
    ]
    data = load_eg3d_pickle(path)
    src, other = flatten_tensors(data["G_ema"]), flatten_tensors(data["G"])
    own = model.state_dict()
    for key, t in src.items():
        if key.startswith("backbone."):
            assert torch.equal(own["generator." + key[9:]], t), key
        elif key.startswith("superresolution."):
            assert torch.equal(own["superres." + key[16:]], t), key
    assert not torch.equal(src["backbone.mapping.fc0.weight"], other["backbone.mapping.fc0.weight"])
    # EG3D's equalised-lr decoder weights are folded into plain Linear layers
    w0 = src["decoder.net.0.weight"]
    torch.testing.assert_close(model.decoder.fc0.weight, w0 / math.sqrt(w0.shape[1]))
    torch.testing.assert_close(model.decoder.fc1.bias, src["decoder.net.2.bias"])
    _, report_g = import_eg3d(path, model=NOFAAvatar.from_preset("tiny"), network="G")
    assert report_g.network == "G"
    with pytest.raises(EG3DImportError, match="'D' is not a generator"):
        import_eg3d(path, network="D")


def test_settings_are_read_as_eg3d_reads_them(snapshot_file, tiny, tmp_path):
    path, _ = snapshot_file
    model, report = import_eg3d(path)
    cfg = report.config
    # EG3D builds its SR blocks with conv_clamp=256 when sr_num_fp16_res > 0, whatever G's
    # conv_clamp
    assert cfg["superres"]["conv_clamp"] == 256 and cfg["generator"]["conv_clamp"] is None
    assert (
        model.superres.block0.conv0.conv_clamp == 256
        and model.superres.block1.torgb.conv_clamp == 256
    )
    assert model.generator.synthesis.b8.conv0.conv_clamp is None
    # rendering_kwargs.get('c_scale', 0): a file without c_scale conditions the mapping on zeros
    assert cfg["generator"]["c_scale"] == 0.0 and model.generator.c_scale == 0.0
    z, c = torch.randn(2, model.generator.z_dim), torch.randn(2, 25)
    torch.testing.assert_close(
        model.generator.map(z, c), model.generator.map(z, torch.zeros_like(c))
    )
    assert cfg["render"]["coarse_samples"] == 24 and cfg["render"]["resolution"] == 16
    model.save(tmp_path / "m.nofa-model")
    assert NOFAAvatar.load(tmp_path / "m.nofa-model").superres.block1.conv1.conv_clamp == 256

    # the generator's rendering_kwargs attribute (what EG3D renders with) wins over its init kwargs
    write_snapshot(
        tmp_path / "s.pkl",
        tiny,
        str(tmp_path / "canary"),
        sr_fp16=False,
        rendering_state={"depth_resolution": 12, "c_scale": 1.0},
    )
    _, report = import_eg3d(tmp_path / "s.pkl", model=NOFAAvatar.from_preset("tiny"))
    assert (
        report.config["render"]["coarse_samples"] == 12
        and report.config["generator"]["c_scale"] == 1.0
    )
    assert report.config["superres"]["conv_clamp"] is None


@pytest.mark.parametrize("fp16_res, clamp", [(4, 256.0), (0, None)])
def test_sr_conv_clamp_rule_without_layer_state(snapshot_file, fp16_res, clamp):
    g = load_eg3d_pickle(snapshot_file[0])["G_ema"]
    sr = g.children["superresolution"]
    for block in sr.children.values():
        block.state["_init_kwargs"].pop("conv_clamp")
        for layer in block.children.values():
            layer.state.pop("conv_clamp", None)
    g.state["_init_kwargs"]["sr_num_fp16_res"] = fp16_res
    assert eg3d_config(g)["superres"]["conv_clamp"] == clamp
    sr.children["block0"].children["conv0"].state["conv_clamp"] = 256
    sr.children["block1"].children["conv0"].state["conv_clamp"] = 128
    with pytest.raises(EG3DImportError, match="different conv_clamp"):  # nofa's SR takes one
        eg3d_config(g)


def test_unsupported_render_settings_are_refused(snapshot_file):
    g = load_eg3d_pickle(snapshot_file[0])["G_ema"]
    g.state["rendering_kwargs"]["clamp_mode"] = "relu"
    with pytest.raises(EG3DImportError, match="clamp_mode"):
        eg3d_config(g)
    g.state["rendering_kwargs"].update(clamp_mode="softplus", box_warp="big")
    with pytest.raises(EG3DImportError, match=r"rendering_kwargs\['box_warp'\] is 'big'"):
        eg3d_config(g)


def test_missing_and_unexpected_tensors_are_named(tiny, tmp_path):
    write_snapshot(
        tmp_path / "g.pkl",
        tiny,
        str(tmp_path / "canary"),
        drop=("superresolution.block1.torgb.bias",),
        extra={"backbone.synthesis.b4.mystery": torch.ones(2)},
    )
    _, report = import_eg3d(tmp_path / "g.pkl", model=NOFAAvatar.from_preset("tiny"))
    assert report.missing == ["superres.block1.torgb.bias"]
    assert report.unexpected == ["backbone.synthesis.b4.mystery"]
    with pytest.raises(ValueError, match="mystery"):
        import_eg3d(tmp_path / "g.pkl", model=NOFAAvatar.from_preset("tiny"), strict=True)


def test_shape_mismatch_names_the_tensor(tiny, tmp_path):
    write_snapshot(
        tmp_path / "g.pkl",
        tiny,
        str(tmp_path / "canary"),
        extra={"backbone.mapping.fc1.bias": torch.zeros(7)},
    )
    with pytest.raises(EG3DImportError, match=r"backbone\.mapping\.fc1\.bias"):
        import_eg3d(tmp_path / "g.pkl", model=NOFAAvatar.from_preset("tiny"))


# ---------------------------------------------------------------------------------------
# Nothing from the file ever runs
# ---------------------------------------------------------------------------------------


class _Evil:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return os.system, (f"touch {self.path}",)


def test_unknown_globals_are_refused_by_name(tmp_path):
    canary = tmp_path / "canary"
    with open(tmp_path / "evil.pkl", "wb") as f:
        pickle.dump({"G_ema": _Evil(canary)}, f)
    with pytest.raises(UnsafePickleError, match=r"refusing to load global '(posix|os)\.system'"):
        load_eg3d_pickle(tmp_path / "evil.pkl")
    assert not canary.exists()
    with open(tmp_path / "evil2.pkl", "wb") as f:
        pickle.dump({"x": eval}, f)
    with pytest.raises(UnsafePickleError, match="builtins.eval"):
        load_eg3d_pickle(tmp_path / "evil2.pkl")


def test_unknown_classes_are_read_past_only_in_skipped_entries(snapshot_file, tiny, tmp_path):
    canary = tmp_path / "canary"
    with eg3d_modules(), open(tmp_path / "side.pkl", "wb") as f:
        pickle.dump({"D": _Evil(canary), "augment_pipe": UNKNOWN()}, f)
    data = load_eg3d_pickle(tmp_path / "side.pkl")  # read past, never built
    assert data["D"].global_name in ("posix.system", "os.system") and not canary.exists()
    with pytest.raises(EG3DImportError, match="no network 'G_ema' or 'G'"):
        import_eg3d(tmp_path / "side.pkl")
    g = make_generator(tiny, str(canary), 1, True, None)
    g._modules["renderer"].add_module("helper", UNKNOWN())
    with eg3d_modules(), open(tmp_path / "g.pkl", "wb") as f:
        pickle.dump({"G_ema": g}, f)
    with pytest.raises(
        UnsafePickleError, match=r"'training\.dual_discriminator\.Helper' \(in entry 'G_ema'\)"
    ):
        load_eg3d_pickle(tmp_path / "g.pkl")
    assert not canary.exists()


# ---------------------------------------------------------------------------------------
# Tensors
# ---------------------------------------------------------------------------------------


def test_tensors_read_like_torch(tmp_path):
    base = torch.randn(4, 6)
    tensors = {
        "f32": base,
        "view": base[1:, ::2],
        "t": base.t(),
        "f16": base.half(),
        "bf16": base.bfloat16(),
        "f64": base.double(),
        "i64": torch.arange(5),
        "u8": torch.arange(5, dtype=torch.uint8),
        "bool": base > 0,
        "empty": torch.zeros(0, 3),
        "scalar": torch.tensor(2.5),
        "param": nn.Parameter(base.clone()),
    }
    buf = io.BytesIO()
    pickle.dump(tensors, buf)
    buf.seek(0)
    data = load_eg3d_pickle(buf)
    for k, t in tensors.items():
        assert data[k].dtype == t.dtype and torch.equal(data[k], t.detach()), k


# ---------------------------------------------------------------------------------------
# Bad input: one clear EG3DImportError each, no huge allocation
# ---------------------------------------------------------------------------------------

TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # torch's legacy serialisation format starts with it


class Reduce:
    """Pickles as fn(*args) (then BUILD state, if any)."""

    def __init__(self, fn, args, state=None):
        self.fn, self.args, self.state = fn, args, state

    def __reduce__(self):
        return (self.fn, self.args) if self.state is None else (self.fn, self.args, self.state)


def legacy_storage_blob(numel: int, payload: bytes, count: int | None = None) -> bytes:
    """One float32 storage in torch's legacy format, with a chosen element count claimed."""
    marker = object()

    class P(pickle.Pickler):
        def persistent_id(self, obj):
            return (
                ("storage", torch.FloatStorage, "0", "cpu", numel, None) if obj is marker else None
            )

    b = io.BytesIO()
    for obj in (
        TORCH_LEGACY_MAGIC,
        1001,
        dict(protocol_version=1001, little_endian=True, type_sizes=dict(short=2, int=4, long=4)),
    ):
        pickle.dump(obj, b, protocol=2)
    P(b, protocol=2).dump(marker)
    pickle.dump(["0"], b, protocol=2)
    b.write(struct.pack("<q", numel if count is None else count) + payload)
    return b.getvalue()


def _dumps(obj) -> bytes:
    with eg3d_modules():
        return pickle.dumps(obj, protocol=4)


def _torch_save(obj, **kw) -> bytes:
    b = io.BytesIO()
    torch.save(obj, b, **kw)
    return b.getvalue()


def _storage_blob_from_torch(t: torch.Tensor) -> bytes:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return t.storage().__reduce__()[1][0]


HUGE = 2**60
BAD_INPUTS = {
    "empty": (lambda: b"", r"is empty \(0 bytes\)"),
    "random bytes": (lambda: random.Random(0).randbytes(4096), r"is not a pickle \(it starts with"),
    "random after a pickle header": (
        lambda: b"\x80\x04" + random.Random(1).randbytes(4096),
        r"not a readable EG3D snapshot|truncated or corrupt",
    ),
    "torch.save zip": (
        lambda: _torch_save({"G_ema": torch.ones(3)}),
        r"is a zip archive \(a torch.save file\?\)",
    ),
    "legacy torch.save": (
        lambda: _torch_save({"a": torch.ones(3)}, _use_new_zipfile_serialization=False),
        r"is a \(legacy\) torch.save file",
    ),
    "BINBYTES8 of 2^60": (
        lambda: b"\x80\x04\x8e" + struct.pack("<Q", HUGE) + b"abc",
        rf"length field asks for {HUGE} bytes but only 3 remain",
    ),
    "FRAME of 2^60": (
        lambda: b"\x80\x04\x95" + struct.pack("<Q", HUGE) + b"}.",
        rf"asks for {HUGE} bytes",
    ),
    "BINUNICODE8 of 2^60": (
        lambda: b"\x80\x04\x8d" + struct.pack("<Q", HUGE) + b"x.",
        rf"asks for {HUGE} bytes",
    ),
    "storage claiming 2^60 elements": (
        lambda: _dumps(
            {
                "G_ema": Reduce(
                    torch.storage._load_from_bytes, (legacy_storage_blob(HUGE, b"\0" * 8),)
                )
            }
        ),
        rf"claims {HUGE} elements",
    ),
    "storage size field disagreeing": (
        lambda: _dumps(
            {
                "G_ema": Reduce(
                    torch.storage._load_from_bytes, (legacy_storage_blob(2, b"\0" * 8, 7),)
                )
            }
        ),
        r"claims 2 elements \(size field 7\)",
    ),
    "storage record not torch's": (
        lambda: _dumps({"G_ema": Reduce(torch.storage._load_from_bytes, (pickle.dumps([1, 2]),))}),
        r"storage record: not in torch's legacy storage format",
    ),
    "tensor overrunning its storage": (
        lambda: _dumps(
            {
                "G_ema": Reduce(
                    torch._utils._rebuild_tensor_v2,
                    (
                        Reduce(
                            torch.storage._load_from_bytes,
                            (_storage_blob_from_torch(torch.ones(6)),),
                        ),
                        2,
                        (3, 2),
                        (2, 1),
                        False,
                        collections.OrderedDict(),
                    ),
                )
            }
        ),
        r"shape \[3, 2\] \(stride \[2, 1\], offset 2\) overruns its storage: it needs 8 elements, "
        r"the storage holds 6",
    ),
    "tensor with a negative stride": (
        lambda: _dumps(
            {
                "G_ema": Reduce(
                    torch._utils._rebuild_tensor_v2,
                    (
                        Reduce(
                            torch.storage._load_from_bytes,
                            (_storage_blob_from_torch(torch.ones(6)),),
                        ),
                        0,
                        (3,),
                        (-1,),
                    ),
                )
            }
        ),
        r"do not describe a tensor",
    ),
    "Sequential with a list as its state": (
        lambda: _dumps({"G_ema": Reduce(nn.Sequential, (), [1, 2])}),
        r"module Sequential: its pickled state is a list",
    ),
    "numpy dtype with odd state": (
        lambda: _dumps({"G_ema": Reduce(np.dtype, ("f8", False, True), "odd")}),
        r"numpy.dtype: unexpected pickled state",
    ),
    "numpy scalar with the wrong byte count": (
        lambda: _dumps({"G_ema": Reduce(_np1_scalar, (np.dtype("f8"), b"\0" * 3))}),
        r"f8 scalar holds 3 bytes",
    ),
    "numpy complex scalar in the generator": (
        lambda: _dumps({"G_ema": np.complex128(1j)}),
        r"refusing to load global 'numpy.core.multiarray.scalar\[c16\]'",
    ),
    "OrderedDict given an object state": (
        lambda: _dumps({"G_ema": Reduce(collections.OrderedDict, (), {"x": 1})}),
        r"sets the state of a OrderedDict object",
    ),
    "persistent object with a list state": (
        lambda: _dumps(
            {"G_ema": Reduce(_reconstruct, (dict(type="class", class_name="X", state=[1]),))}
        ),
        r"persistent object 'X': its state is a list",
    ),
    "persistent object of another kind": (
        lambda: _dumps({"G_ema": Reduce(_reconstruct, (dict(type="module", class_name="X"),))}),
        r"persistent object: unexpected metadata \(module\)",
    ),
    "a list, not a snapshot": (
        lambda: pickle.dumps([1, 2, 3]),
        r"a pickled dict with str keys, got list",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_gives_one_clear_error(case, tmp_path, capsys):
    from nofa.cli import main

    make, message = BAD_INPUTS[case]
    path = tmp_path / "bad.pkl"
    path.write_bytes(make())
    tracemalloc.start()
    try:
        with pytest.raises(EG3DImportError, match=message) as info:
            load_eg3d_pickle(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20, f"{peak} bytes allocated reading a {path.stat().st_size} byte file"
    assert "\n" not in str(info.value) and str(path) in str(info.value)
    out = tmp_path / "out.nofa-model"
    assert main(["import-eg3d", str(path), str(out)]) == 1
    captured = capsys.readouterr()
    text = (captured.out + captured.err).strip()
    assert text.count("\n") == 0 and text.startswith("error: ") and "Traceback" not in text, text
    assert not out.exists()


def test_truncated_snapshot(snapshot_file, tmp_path):
    raw = snapshot_file[0].read_bytes()
    for cut in (len(raw) // 2, len(raw) - 1):
        (tmp_path / "cut.pkl").write_bytes(raw[:cut])
        with pytest.raises(
            EG3DImportError, match="truncated or corrupt|not a readable EG3D snapshot"
        ):
            load_eg3d_pickle(tmp_path / "cut.pkl")


# ---------------------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------------------


def test_cli_import_writes_a_loadable_model(snapshot_file, tmp_path, capsys):
    from nofa.cli import main

    path, canary = snapshot_file
    out = tmp_path / "imported.nofa-model"
    assert main(["import-eg3d", str(path), str(out)]) == 0
    text = capsys.readouterr().out
    assert (
        "missing: 0" in text
        and "unexpected: 0" in text
        and "skipped entries: D, G, augment_pipe" in text
    )
    assert not canary.exists()
    model = NOFAAvatar.load(out)
    assert torch.load(out, weights_only=True)["format"] == "nofa-model"  # the documented format
    assert model.file_header["preset"] == "paper"
    assert model.file_header["metadata"] == {"source": path.name, "network": "G_ema"}
    want = flatten_tensors(load_eg3d_pickle(path)["G_ema"])
    assert torch.equal(model.generator.mapping.fc0.weight, want["backbone.mapping.fc0.weight"])
    assert torch.equal(
        model.superres.block0.conv0.weight, want["superresolution.block0.conv0.weight"]
    )
    assert model.render_resolution == 16 and model.renderer.options.importance_samples == 10
    assert main(["import-eg3d", str(tmp_path / "nope.pkl"), str(out)]) == 2
    capsys.readouterr()
    (tmp_path / "a_file").write_text("")
    assert main(["import-eg3d", str(path), str(tmp_path / "a_file" / "m.nofa-model")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cannot write") and "\n" not in err
