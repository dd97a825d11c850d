"""NOFAAvatar: the paper preset at its real sizes, the tiny preset end to end (gradients,
backends, detail path), bad inputs, sampling, and model files."""

from __future__ import annotations

import os

import pytest
import torch

import nofa.ops as ops
from nofa.models import NOFAAvatar
from nofa.models.summary import MODULES, parameter_counts
from nofa.render import default_label

ALPHA, BETA = 80, 64


def _tiny(**overrides) -> NOFAAvatar:
    torch.manual_seed(0)
    return NOFAAvatar.from_preset("tiny", render={"deterministic": True}, **overrides)


def _inputs(n: int = 1, size: int = 64):
    g = torch.Generator().manual_seed(1)
    image = torch.rand(n, 3, size, size, generator=g) * 2 - 1
    cam = default_label(yaw=0.2).expand(n, 25)
    return image, cam, torch.randn(n, ALPHA, generator=g), torch.randn(n, BETA, generator=g)


@pytest.fixture(scope="module")
def tiny() -> NOFAAvatar:
    model = _tiny()
    with torch.no_grad():  # a "trained" deformation field: the fresh one is exactly the identity
        model.deformation.d_weights[-1].normal_(0, 0.05)
        model.deformation.d_biases[-1].normal_(0, 0.05)
    return model


@pytest.mark.slow
def test_paper_preset_reconstruct_and_animate_on_cpu():
    # The real paper-size networks; only the neural rendering is made cheap (64 px, the
    # 64 -> 512 SR variant, 12 + 12 samples) to keep the suite fast.
    model = NOFAAvatar.from_preset(
        "paper",
        render={
            "resolution": 64,
            "coarse_samples": 12,
            "importance_samples": 12,
            "deterministic": True,
        },
    ).eval()
    assert model.num_ws == 14
    image, cam, alpha, beta = _inputs(1, 512)
    with torch.no_grad():
        vol = model.reconstruct(image, cam)
        assert (
            vol.planes.shape == (1, 3, 32, 256, 256) and vol.planes_coarse.shape == vol.planes.shape
        )
        assert vol.ws.shape == (1, 14, 512) and vol.feature.shape == (1, 512, 64, 64)
        assert vol.coarse["image"].shape == (1, 3, 512, 512)
        out = model.animate(vol, alpha, beta, cam)
    assert out["image"].shape == (1, 3, 512, 512)
    assert out["image_raw"].shape == (1, 3, 64, 64) and out["depth"].shape == (1, 1, 64, 64)
    assert all(torch.isfinite(v).all() for v in out.values())
    d = out["depth"]
    assert (d >= 2.25 - 1e-4).all() and (d <= 3.3 + 1e-4).all()


def test_paper_parameter_counts_printed_by_info(capsys):
    from nofa.cli import main

    assert main(["info", "--model", "paper"]) == 0
    text = capsys.readouterr().out
    assert "tri-plane [3, 32, 256, 256], 14 W codes" in text
    with torch.device("meta"):
        counts = parameter_counts(NOFAAvatar.from_preset("paper"))
    for name in (*MODULES, "total"):
        assert f"{name:<12} {counts[name]:>12,d} parameters" in text
    assert counts["total"] == sum(counts[m] for m in MODULES)
    # the generator is EG3D's backbone size (~29M)
    assert 28_000_000 < counts["generator"] < 30_000_000


def test_tiny_end_to_end_gradients_reach_every_module(tiny):
    image, cam, alpha, beta = _inputs(1)
    tiny.zero_grad()
    vol = tiny.reconstruct(image, cam)
    out = tiny.animate(vol, alpha, beta, cam)
    assert out["image"].shape == (1, 3, 64, 64) and out["image_raw"].shape == (1, 3, 16, 16)
    (
        out["image"].square().mean() + out["depth"].mean() + out["image_raw"].square().mean()
    ).backward()
    # Not used by reconstruct/animate: the mapping network (codes come from E(I) + w_avg) and
    # the SR noise strengths (EG3D renders the SR without noise).
    unused = {
        n
        for n, _ in tiny.named_parameters()
        if n.startswith("generator.mapping.")
        or (n.startswith("superres.") and n.endswith("noise_strength"))
    }
    dead = [
        n
        for n, p in tiny.named_parameters()
        if n not in unused
        and (p.grad is None or not torch.isfinite(p.grad).all() or p.grad.abs().sum() == 0)
    ]
    assert not dead, dead
    for name in MODULES:
        assert any(
            p.grad is not None and p.grad.abs().sum() > 0 for p in getattr(tiny, name).parameters()
        ), name


def test_tiny_kernels_and_torch_backends_agree(tiny):
    for op in ("decode_triplane", "composite_rays", "deform_points"):
        if not ops.kernels_available("cpu", op):
            pytest.fail(f"no CPU kernel compiled for {op}: {ops.build_info()}")
    image, cam, alpha, beta = _inputs(1)
    outs = {}
    for backend in ("kernels", "torch"):
        with torch.no_grad(), ops.use_backend(backend), ops.trace_backends() as tr:
            vol = tiny.reconstruct(image, cam)
            outs[backend] = (vol.planes, tiny.animate(vol, alpha, beta, cam))
        for op in ("decode_triplane", "composite_rays", "deform_points"):
            assert tr.backends(op) == {backend}, (op, tr.backends(op))
    (pk, ok), (pt, ot) = outs["kernels"], outs["torch"]
    torch.testing.assert_close(pk, pt, atol=1e-4, rtol=1e-4)
    for key in ("image", "image_raw", "depth"):
        torch.testing.assert_close(ok[key], ot[key], atol=2e-4, rtol=1e-3, msg=key)


def test_detail_path_changes_output_and_reduces_to_coarse():
    model = _tiny()
    image, cam, _, _ = _inputs(1)
    with torch.no_grad():
        vol = model.reconstruct(image, cam)
        f_c, _ = model.generator.head(vol.ws)
        assert not torch.allclose(vol.feature, f_c)  # F_e != F_c: C's output is non-zero
        assert not torch.allclose(vol.planes, vol.planes_coarse)
        coarse_only = model.reconstruct(image, cam, fine=False)
        torch.testing.assert_close(coarse_only.planes, vol.planes_coarse)
        for net, value in ((model.gamma, 1.0), (model.eta, 0.0)):
            net.conv1.weight.zero_()
            net.conv1.bias.fill_(value)
        vol1 = model.reconstruct(image, cam)
    torch.testing.assert_close(vol1.feature, f_c)
    torch.testing.assert_close(vol1.planes, vol1.planes_coarse)


def test_animate_expression_and_identity_matter(tiny):
    image, cam, alpha, beta = _inputs(1)
    with torch.no_grad():
        vol = tiny.reconstruct(image, cam)
        a = tiny.animate(vol, alpha, beta, cam)["image_raw"]
        b = tiny.animate(vol, alpha, beta + 1.0, cam)["image_raw"]
        canonical = tiny.render(vol, cam)["image_raw"]
    assert not torch.allclose(a, b)
    assert not torch.allclose(a, canonical)


def test_bad_inputs_give_clear_errors(tiny):
    image, cam, alpha, beta = _inputs(1)
    with pytest.raises(ValueError, match="must be 64x64"):
        tiny.reconstruct(torch.zeros(1, 3, 32, 32), cam)
    with pytest.raises(ValueError, match=r"\(RGB\)"):
        tiny.reconstruct(torch.zeros(1, 4, 64, 64), cam)
    with pytest.raises(ValueError, match="camera must be 25 numbers"):
        tiny.reconstruct(image, torch.zeros(1, 16))
    with pytest.raises(ValueError, match="batch size 1"):
        tiny.reconstruct(image, cam.expand(2, 25))
    with torch.no_grad():
        vol = tiny.sample_virtual(0)
    with pytest.raises(ValueError, match=r"alpha must have shape \[N, 80\]"):
        tiny.animate(vol, torch.zeros(1, 79), beta, cam)
    with pytest.raises(ValueError, match=r"beta must have shape \[N, 64\]"):
        tiny.animate(vol, alpha, torch.zeros(1, 65), cam)
    with pytest.raises(ValueError, match="camera must be 25 numbers"):
        tiny.animate(vol, alpha, beta, torch.zeros(24))
    with pytest.raises(ValueError, match="unknown model preset"):
        NOFAAvatar.from_preset("huge")
    with pytest.raises(ValueError, match="unknown keys"):
        NOFAAvatar.from_preset("tiny", render={"resolutoin": 8})


def test_sample_virtual_is_seeded_and_truncates(tiny):
    with torch.no_grad():
        tiny.generator.mapping.w_avg.normal_()
        a, b, c = tiny.sample_virtual(3), tiny.sample_virtual(3), tiny.sample_virtual(4)
        assert a.planes.shape == (1, 3, 8, 32, 32)
        assert torch.equal(a.planes, b.planes) and not torch.allclose(a.planes, c.planes)
        t0 = tiny.sample_virtual(5, truncation=0.0)
    torch.testing.assert_close(t0.ws, tiny.generator.w_avg.expand_as(t0.ws))


def test_model_file_round_trip_and_errors(tmp_path, monkeypatch):
    model = _tiny()
    with torch.no_grad():
        model.encoder.head_bias.normal_()
    path = tmp_path / "m.nofa-model"
    model.save(path)
    loaded = NOFAAvatar.load(path)
    assert loaded.config == model.config
    for (k, v), (k2, v2) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(v, v2), k
    image, cam, _, _ = _inputs(1)
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode(image), model.encode(image))
    # a truncated file and a foreign file
    data = path.read_bytes()
    (tmp_path / "cut.nofa-model").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a readable nofa model file"):
        NOFAAvatar.load(tmp_path / "cut.nofa-model")
    torch.save({"format": "something-else"}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a nofa model file"):
        NOFAAvatar.load(tmp_path / "other.pt")

    # an interrupted save leaves the old file intact and no temp file behind
    def broken_save(obj, f, *a, **k):
        f.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        _tiny().save(path)
    monkeypatch.undo()
    assert path.read_bytes() == data
    assert sorted(os.listdir(tmp_path)) == ["cut.nofa-model", "m.nofa-model", "other.pt"]


def test_empty_batch_gives_empty_outputs(tiny):
    with torch.no_grad():
        vol = tiny.reconstruct(torch.zeros(0, 3, 64, 64), torch.zeros(0, 25))
        out = tiny.animate(vol, torch.zeros(0, ALPHA), torch.zeros(0, BETA), torch.zeros(0, 25))
    assert vol.planes.shape == (0, 3, 8, 32, 32)
    assert out["image"].shape == (0, 3, 64, 64) and out["depth"].shape == (0, 1, 16, 16)


def test_volume_exports_to_an_avatar_file(tiny, tmp_path):
    from nofa.io import load_avatar, save_avatar

    image, cam, _, _ = _inputs(1)
    with torch.no_grad():
        vol = tiny.reconstruct(image, cam)
        save_avatar(tmp_path / "a.nofa-avatar", tiny.to_avatar(vol, subject="test"))
        av = load_avatar(tmp_path / "a.nofa-avatar")
        got = av.renderer()(av.planes, cam, tiny.render_resolution).rgb
        want = tiny.render(vol, cam)["image_raw"]
    assert av.metadata["subject"] == "test"
    torch.testing.assert_close(got, want)
