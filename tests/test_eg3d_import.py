"""EG3D checkpoint import: small pickles with the structure of NVIDIA's snapshots.

Each network pickles itself the way EG3D's `torch_utils.persistence` does: as
`_reconstruct_persistent_obj(meta)` with `module_src` holding Python source. Here that
source would write a canary file if it were ever executed.
"""
from __future__ import annotations

import contextlib
import math
import os
import pickle
import sys
import types

import pytest
import torch
import torch.nn as nn

from nofa.models.eg3d_import import ModuleTree, UnsafePickleError, flatten_tensors, import_eg3d, load_eg3d_pickle
from nofa.models import NOFAAvatar

BUFFERS = {"w_avg", "resample_filter", "noise_const"}


def _fake_reconstruct(meta):  # only its module/name are pickled; never called
    raise AssertionError("EG3D's reconstruct function must never run")


_fake_reconstruct.__module__ = "torch_utils.persistence"
_fake_reconstruct.__name__ = _fake_reconstruct.__qualname__ = "_reconstruct_persistent_obj"


class EasyDict(dict):
    pass


EasyDict.__module__ = "dnnlib.util"


def _plain_class(module: str, name: str) -> type:
    """A plain nn.Module class that pickles by reference as `module.name` (as EG3D's do)."""
    cls = type(name, (nn.Module,), {})
    cls.__module__, cls.__qualname__ = module, name
    return cls


PLAIN = {(m, n): _plain_class(m, n) for m, n in (
    ("training.triplane", "OSGDecoder"),
    ("training.volumetric_rendering.renderer", "ImportanceRenderer"),
    ("training.volumetric_rendering.ray_marcher", "MipRayMarcher2"),
    ("training.volumetric_rendering.ray_sampler", "RaySampler"),
)}


class Persistent(nn.Module):
    """Pickles like an EG3D persistent class: its __dict__ goes into meta['state']."""

    def __init__(self, class_name: str, module_src: str, **init_kwargs) -> None:
        super().__init__()
        self._fake = (class_name, module_src)
        self._init_args = ()
        self._init_kwargs = init_kwargs

    def __reduce__(self):
        state = dict(self.__dict__)
        class_name, src = state.pop("_fake")
        return _fake_reconstruct, (dict(type="class", version=4, module_src=src, class_name=class_name, state=state),)


@contextlib.contextmanager
def fake_eg3d_modules():
    """Make torch_utils.persistence and dnnlib.util importable while pickling."""
    names = ["torch_utils", "torch_utils.persistence", "dnnlib", "dnnlib.util", "training",
             "training.volumetric_rendering", *sorted({m for m, _ in PLAIN})]
    mods = {name: types.ModuleType(name) for name in names}
    for (m, n), cls in PLAIN.items():
        setattr(mods[m], n, cls)
    mods["torch_utils.persistence"]._reconstruct_persistent_obj = _fake_reconstruct
    mods["dnnlib.util"].EasyDict = EasyDict
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


def build_tree(tensors: dict[str, torch.Tensor], class_name: str, src: str) -> Persistent:
    root = Persistent(class_name, src)
    for key, t in tensors.items():
        *path, leaf = key.split(".")
        node = root
        for part in path:
            if part not in node._modules:
                node.add_module(part, Persistent(f"{class_name}.{part}", src))
            node = node._modules[part]
        if leaf in BUFFERS:
            node.register_buffer(leaf, t.clone())
        else:
            node.register_parameter(leaf, nn.Parameter(t.clone()))
    return root


def make_snapshot(model: NOFAAvatar, canary: str, drop: tuple[str, ...] = (), extra: dict | None = None) -> dict:
    """An EG3D-like snapshot whose G_ema holds `model`'s generator/SR tensors (perturbed) under EG3D names."""
    src = f"import pathlib\npathlib.Path({canary!r}).write_text('module_src was executed')\n"
    tensors = {}
    for k, v in model.state_dict().items():
        for ours, theirs in (("generator.", "backbone."), ("superres.", "superresolution.")):
            if k.startswith(ours):
                tensors[theirs + k[len(ours):]] = v + 0.25 * torch.randn_like(v) if v.is_floating_point() else v
    tensors.update(extra or {})
    for k in drop:
        tensors.pop(k)
    g = build_tree(tensors, "TriPlaneGenerator", src)
    dec = model.decoder
    net = nn.Sequential(build_tree({"weight": torch.randn(dec.hidden, dec.n_features), "bias": torch.randn(dec.hidden)},
                                   "FullyConnectedLayer", src),
                        nn.Softplus(),
                        build_tree({"weight": torch.randn(1 + dec.out_features, dec.hidden),
                                    "bias": torch.randn(1 + dec.out_features)}, "FullyConnectedLayer", src))
    decoder = PLAIN["training.triplane", "OSGDecoder"]()  # a plain module in EG3D, holding persistent FCs
    decoder.add_module("net", net)
    g.add_module("decoder", decoder)
    renderer = PLAIN["training.volumetric_rendering.renderer", "ImportanceRenderer"]()
    renderer.add_module("ray_marcher", PLAIN["training.volumetric_rendering.ray_marcher", "MipRayMarcher2"]())
    renderer.plane_axes = torch.eye(3).expand(3, 3, 3).clone()  # a plain tensor attribute, not a buffer
    g.add_module("renderer", renderer)
    g.add_module("ray_sampler", PLAIN["training.volumetric_rendering.ray_sampler", "RaySampler"]())
    g._init_kwargs = dict(z_dim=model.generator.z_dim, c_dim=25, w_dim=model.generator.w_dim, img_resolution=512,
                          img_channels=3, mapping_kwargs=EasyDict(num_layers=2),
                          rendering_kwargs={"superresolution_module": "training.superresolution.SuperresolutionHybrid8XDC",
                                            "depth_resolution": 12, "depth_resolution_importance": 10,
                                            "ray_start": 2.25, "ray_end": 3.3, "box_warp": 1, "sr_antialias": True,
                                            "decoder_lr_mul": 1.0, "c_gen_conditioning_zero": False, "c_scale": 1.0})
    g.neural_rendering_resolution = 16
    d = build_tree({"b4.conv.weight": torch.randn(3, 3)}, "DualDiscriminator", src)
    return {"G": g, "D": d, "G_ema": g, "augment_pipe": None, "training_set_kwargs": {"resolution": 512}}


def dump(snapshot: dict, path) -> None:
    with fake_eg3d_modules(), open(path, "wb") as f:
        pickle.dump(snapshot, f)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return NOFAAvatar.from_preset("tiny")


def test_tensors_arrive_and_module_src_never_runs(tiny, tmp_path):
    canary = str(tmp_path / "canary")
    snap = make_snapshot(tiny, canary)
    dump(snap, tmp_path / "g.pkl")
    data = load_eg3d_pickle(tmp_path / "g.pkl")
    assert isinstance(data["G_ema"], ModuleTree) and data["G_ema"].class_name == "TriPlaneGenerator"
    assert "write_text" in data["G_ema"].module_src  # kept as text only
    kids = data["G_ema"].children
    assert kids["renderer"].class_name == "ImportanceRenderer" and kids["decoder"].class_name == "OSGDecoder"
    assert kids["decoder"].children["net"].class_name == "Sequential"
    model = NOFAAvatar.from_preset("tiny")
    _, report = import_eg3d(tmp_path / "g.pkl", model=model)
    assert not os.path.exists(canary), "module_src from the pickle was executed"
    assert report.missing == [] and report.unexpected == []
    src = flatten_tensors(data["G_ema"])
    own = model.state_dict()
    for key, t in src.items():
        if key.startswith("backbone."):
            assert torch.equal(own["generator." + key[9:]], t), key
        elif key.startswith("superresolution."):
            assert torch.equal(own["superres." + key[16:]], t), key
    # EG3D's equalised-lr decoder weights are folded into plain Linear layers
    w0 = src["decoder.net.0.weight"]
    torch.testing.assert_close(model.decoder.fc0.weight, w0 / math.sqrt(w0.shape[1]))
    torch.testing.assert_close(model.decoder.fc1.bias, src["decoder.net.2.bias"])
    assert report.config["render"]["coarse_samples"] == 12 and report.config["render"]["resolution"] == 16
    assert report.config["generator"]["plane_channels"] == tiny.generator.plane_channels
    assert report.config["superres"]["input_resolution"] == 16


def test_missing_and_unexpected_tensors_are_named(tiny, tmp_path):
    snap = make_snapshot(tiny, str(tmp_path / "canary"), drop=("superresolution.block1.torgb.bias",),
                         extra={"backbone.synthesis.b4.mystery": torch.ones(2)})
    dump(snap, tmp_path / "g.pkl")
    _, report = import_eg3d(tmp_path / "g.pkl", model=NOFAAvatar.from_preset("tiny"))
    assert report.missing == ["superres.block1.torgb.bias"]
    assert report.unexpected == ["backbone.synthesis.b4.mystery"]
    with pytest.raises(ValueError, match="mystery"):
        import_eg3d(tmp_path / "g.pkl", model=NOFAAvatar.from_preset("tiny"), strict=True)


def test_shape_mismatch_names_the_tensor(tiny, tmp_path):
    snap = make_snapshot(tiny, str(tmp_path / "canary"), extra={"backbone.mapping.fc1.bias": torch.zeros(7)})
    dump(snap, tmp_path / "g.pkl")
    with pytest.raises(ValueError, match=r"backbone\.mapping\.fc1\.bias"):
        import_eg3d(tmp_path / "g.pkl", model=NOFAAvatar.from_preset("tiny"))


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


def test_snapshot_without_generator(tmp_path):
    with open(tmp_path / "x.pkl", "wb") as f:
        pickle.dump({"D": None}, f)
    with pytest.raises(ValueError, match="no network G_ema or G"):
        import_eg3d(tmp_path / "x.pkl")


def test_cli_import_writes_a_loadable_model(tiny, tmp_path, capsys):
    from nofa.cli import main

    canary = str(tmp_path / "canary")
    snap = make_snapshot(tiny, canary)
    dump(snap, tmp_path / "g.pkl")
    out = tmp_path / "imported.nofa"
    assert main(["import-eg3d", str(tmp_path / "g.pkl"), str(out)]) == 0
    text = capsys.readouterr().out
    assert "missing: 0" in text and "unexpected: 0" in text
    assert not os.path.exists(canary)
    model = NOFAAvatar.load(out)
    want = flatten_tensors(load_eg3d_pickle(tmp_path / "g.pkl")["G_ema"])
    assert torch.equal(model.generator.mapping.fc0.weight, want["backbone.mapping.fc0.weight"])
    assert torch.equal(model.superres.block0.conv0.weight, want["superresolution.block0.conv0.weight"])
    assert model.render_resolution == 16 and model.renderer.options.importance_samples == 10
    assert main(["import-eg3d", str(tmp_path / "nope.pkl"), str(out)]) == 2
