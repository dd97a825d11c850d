"""Model file, animatable-avatar file (and template-fit avatars as animatable), ArcFace IResNet."""

from __future__ import annotations

import warnings

import pytest
import torch

from nofa.io import Avatar, NofaFileWarning, save_avatar
from nofa.models import NOFAAvatar
from nofa.models.animatable import AnimatableAvatar, load_animatable, save_animatable
from nofa.models.arcface import ARCH_LAYERS, IResNet, load_arcface
from nofa.models.model_file import COMPONENTS, ModelFileError, load_model, save_model
from nofa.render import OSGDecoder, RenderOptions, default_label


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return NOFAAvatar.from_preset("tiny", render={"deterministic": True}).eval()


def test_model_file_round_trip_every_component(tiny, tmp_path):
    p = save_model(tmp_path / "m.nofa-model", tiny, preset="tiny", note="test")
    raw = torch.load(p, weights_only=True)  # plain tensors + strings only
    assert set(raw["weights"]) == set(COMPONENTS)
    m = load_model(p)
    assert m.file_header["preset"] == "tiny" and m.file_header["metadata"] == {"note": "test"}
    assert m.renderer.options == tiny.renderer.options
    a, b = tiny.state_dict(), m.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write left no temp file


def test_model_file_errors(tiny, tmp_path):
    p = save_model(tmp_path / "m.nofa-model", tiny, preset="tiny")
    raw = torch.load(p, weights_only=True)
    raw["weights"]["deformation"] = {}
    torch.save(raw, tmp_path / "nodef.pt")
    with pytest.raises(
        ModelFileError, match=r"nodef.pt: model file lacks the component\(s\) \['deformation'\]"
    ):
        load_model(tmp_path / "nodef.pt")
    (tmp_path / "trunc.pt").write_bytes(p.read_bytes()[:500])
    with pytest.raises(ModelFileError, match="trunc.pt is not a readable nofa model file"):
        load_model(tmp_path / "trunc.pt")
    raw["version"] = 99
    torch.save(raw, tmp_path / "new.pt")
    with pytest.raises(ModelFileError, match="upgrade nofa"):
        load_model(tmp_path / "new.pt")


def _legacy_file(model, path):
    """What NOFAAvatar.save, the trainer and import-eg3d wrote before the "nofa-model" format."""
    payload = {
        "format": "nofa-avatar-model",
        "version": 1,
        "config": model.config,
        "state_dict": model.state_dict(),
    }
    torch.save(payload, path)
    return path


def test_legacy_model_file_loads_with_a_note(tiny, tmp_path):
    path = _legacy_file(tiny, tmp_path / "old.nofa")
    with pytest.warns(NofaFileWarning, match=r"older NOFAAvatar format.*nofa upgrade"):
        m = load_model(path)
    assert all(torch.equal(v, m.state_dict()[k]) for k, v in tiny.state_dict().items())
    assert m.file_header["preset"] is None and m.file_header["config"] == tiny.config
    assert m.renderer.options == tiny.renderer.options and not m.training
    with pytest.warns(NofaFileWarning):
        again = NOFAAvatar.load(path)  # the module's own loader reads it too
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in tiny.state_dict().items())


def test_model_save_writes_the_documented_format(tiny, tmp_path):
    tiny.save(tmp_path / "m.nofa-model", preset="tiny", note="x")
    raw = torch.load(tmp_path / "m.nofa-model", weights_only=True)
    assert raw["format"] == "nofa-model" and raw["version"] == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the documented suffix and format: no note
        m = NOFAAvatar.load(tmp_path / "m.nofa-model")
    assert m.file_header["preset"] == "tiny" and m.file_header["metadata"] == {"note": "x"}
    assert all(torch.equal(v, m.state_dict()[k]) for k, v in tiny.state_dict().items())


def test_animatable_round_trip_renders_identically(tiny, tmp_path):
    img = torch.rand(1, 3, 64, 64) * 2 - 1
    alpha = torch.randn(1, 80)
    av = AnimatableAvatar.from_model(tiny, img, default_label()[None], alpha)
    assert av.image_size == 64 and not av.identity_deformation
    p = save_animatable(tmp_path / "a.nofa-anim", av)
    back = load_animatable(p)
    torch.testing.assert_close(back.alpha, alpha)
    beta, cam = torch.randn(2, 64), default_label(torch.tensor([0.0, 0.3]), torch.zeros(2))
    with torch.no_grad():
        x, y = av.render(beta, cam), back.render(beta, cam)
    assert x["image"].shape == (2, 3, 64, 64)
    assert torch.equal(x["image"], y["image"])
    # and the model's own animate() gives the same frame (encoded once == reconstruct + animate)
    with torch.no_grad():
        vol = tiny.reconstruct(img, default_label()[None])
        want = tiny.animate(vol, alpha, beta[:1], cam[:1])["image"]
    torch.testing.assert_close(x["image"][:1], want)


def test_timings_split(tiny):
    av = AnimatableAvatar.from_model(tiny, torch.rand(1, 3, 64, 64) * 2 - 1, default_label()[None])
    t: dict = {}
    with torch.no_grad():
        av.render(torch.randn(1, 64), default_label()[None], timings=t)
    assert set(t) == {"deformation", "render", "sr"} and all(v > 0 for v in t.values())


def test_template_fit_avatar_animates_with_identity(tmp_path):
    torch.manual_seed(1)
    dec = OSGDecoder(8, 16, 8)
    save_avatar(
        tmp_path / "t.nofa-avatar",
        Avatar(
            torch.randn(1, 3, 8, 16, 16),
            dec.state_dict(),
            dec.config(),
            RenderOptions(coarse_samples=6, importance_samples=6, deterministic=True),
        ),
    )
    av = load_animatable(tmp_path / "t.nofa-avatar")
    assert av.kind == "template-fit" and av.identity_deformation and av.superres is None
    av.render_resolution = 12
    cam = default_label()[None]
    with torch.no_grad():
        a = av.render(torch.randn(1, 64), cam)["image"]
        b = av.render(None, cam)["image"]
    assert a.shape == (1, 3, 12, 12) and torch.equal(a, b)  # expressions do not move it


def test_wrong_kind_of_file_says_so(tiny, tmp_path):
    p = save_model(tmp_path / "m.nofa-model", tiny)
    with pytest.raises(ModelFileError, match="is a model file: pass it with --model"):
        load_animatable(p)
    torch.save({"format": "something-else"}, tmp_path / "x.pt")
    with pytest.raises(ModelFileError, match="format 'something-else'"):
        load_model(tmp_path / "x.pt")


def test_arcface_published_layout_and_loading(tmp_path):
    net = IResNet(ARCH_LAYERS["r18"])
    keys = net.state_dict().keys()
    for k in (
        "conv1.weight",
        "bn1.running_mean",
        "prelu.weight",
        "layer1.0.bn1.weight",
        "layer1.0.conv1.weight",
        "layer1.0.bn2.weight",
        "layer1.0.prelu.weight",
        "layer1.0.conv2.weight",
        "layer1.0.bn3.weight",
        "layer1.0.downsample.0.weight",
        "layer1.0.downsample.1.weight",
        "layer4.1.conv2.weight",
        "bn2.weight",
        "fc.weight",
        "features.weight",
        "features.running_var",
    ):
        assert k in keys, k
    assert net.fc.weight.shape == (512, 512 * 7 * 7)
    small = IResNet((1, 2, 1, 1), num_features=16, widths=(4, 8, 8, 16), spatial=2).eval()
    with torch.no_grad():  # non-trivial BN statistics so that loading them matters
        for m in small.modules():
            if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.BatchNorm1d)):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    torch.save({f"module.{k}": v for k, v in small.state_dict().items()}, tmp_path / "backbone.pth")
    back = load_arcface(tmp_path / "backbone.pth")
    assert back.input_size == 32
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(back(x), small(x))
    torch.save({"foo": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="bad.pth is not an ArcFace IResNet state_dict"):
        load_arcface(tmp_path / "bad.pth")
    with pytest.raises(FileNotFoundError, match="ArcFace weights not found"):
        load_arcface(tmp_path / "none.pth")
