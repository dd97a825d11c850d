"""Deep3DFaceRecon's coefficient regressor: the checkpoint layout of its `epoch_20.pth`, loading,
output order, errors. A randomly initialised network saved in the real file's layout stands in
for the user's weights (nothing is downloaded)."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch

from nofa.faces.deep3d_net import (
    Deep3DReconNet,
    Deep3DWeightsError,
    coefficients_from_crops,
    load_deep3d_net,
)
from nofa.io.coeffs import DEEP3D_SLICES


def _bn(prefix: str, c: int) -> dict[str, tuple[int, ...]]:
    return {
        f"{prefix}.weight": (c,),
        f"{prefix}.bias": (c,),
        f"{prefix}.running_mean": (c,),
        f"{prefix}.running_var": (c,),
        f"{prefix}.num_batches_tracked": (),
    }


def real_checkpoint_layout() -> dict[str, tuple[int, ...]]:
    """The `net_recon` state dict of Deep3DFaceRecon's epoch_20.pth, written from the facts
    (DESIGN.md section 6): torchvision's ResNet-50 under `backbone.` without fc, stages of
    3, 4, 6, 3 bottlenecks of inner width 64, 128, 256, 512 (outputs 4x, a 1x1 downsample
    conv + BN in each stage's first block), then `final_layers.0..6`, 1x1 convs with biases
    2048 -> 80, 64, 80, 3, 27, 2, 1."""
    keys = {"backbone.conv1.weight": (64, 3, 7, 7), **_bn("backbone.bn1", 64)}
    inplanes = 64
    for stage, (blocks, width) in enumerate(((3, 64), (4, 128), (6, 256), (3, 512)), 1):
        for b in range(blocks):
            p = f"backbone.layer{stage}.{b}"
            keys[f"{p}.conv1.weight"] = (width, inplanes, 1, 1)
            keys.update(_bn(f"{p}.bn1", width))
            keys[f"{p}.conv2.weight"] = (width, width, 3, 3)
            keys.update(_bn(f"{p}.bn2", width))
            keys[f"{p}.conv3.weight"] = (4 * width, width, 1, 1)
            keys.update(_bn(f"{p}.bn3", 4 * width))
            if b == 0:
                keys[f"{p}.downsample.0.weight"] = (4 * width, inplanes, 1, 1)
                keys.update(_bn(f"{p}.downsample.1", 4 * width))
            inplanes = 4 * width
    for i, w in enumerate((80, 64, 80, 3, 27, 2, 1)):
        keys[f"final_layers.{i}.weight"] = (w, 2048, 1, 1)
        keys[f"final_layers.{i}.bias"] = (w,)
    return keys


@pytest.fixture(scope="module")
def random_checkpoint(tmp_path_factory) -> tuple[str, Deep3DReconNet]:
    """A random ReconNet with non-trivial BatchNorm statistics, saved as Deep3DFaceRecon saves
    its checkpoints: {'net_recon': state_dict, 'opt_00': ..., 'epoch': 20}."""
    torch.manual_seed(0)
    net = Deep3DReconNet()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.2, 0.6)  # keeps 50 residual blocks from blowing up
    opt = torch.optim.SGD(net.final_layers.parameters(), lr=1e-4)
    path = tmp_path_factory.mktemp("deep3d") / "epoch_20.pth"
    torch.save({"net_recon": net.state_dict(), "opt_00": opt.state_dict(), "epoch": 20}, path)
    return str(path), net.eval()


def test_state_dict_matches_the_real_checkpoint_layout():
    got = {k: tuple(v.shape) for k, v in Deep3DReconNet().state_dict().items()}
    want = real_checkpoint_layout()
    assert set(got) == set(want), (sorted(set(got) ^ set(want)))[:10]
    assert got == want
    assert len(want) == 332  # 318 backbone tensors (fc left out) + 14 heads


def test_round_trip_load_and_output_order(random_checkpoint):
    path, ref = random_checkpoint
    net = load_deep3d_net(path)
    assert not net.training
    # (any input size works through the global pool; 64 px keeps the test fast on a CPU)
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = net(x)
        want = ref(x)
    assert out.shape == (2, 257) and out.dtype == torch.float32
    assert torch.equal(out, want)
    assert out.std() > 0 and (out[0] != out[1]).any()  # the input matters
    # Order of the heads = Deep3DFaceRecon's coefficient layout: zero the weights and give each
    # head a constant bias; the output shows where each head's numbers land.
    with torch.no_grad():
        for i, layer in enumerate(net.final_layers):
            layer.weight.zero_()
            layer.bias.fill_(float(i))
        out = net(x)[0]
    for i, key in enumerate(("id", "exp", "tex", "angle", "gamma")):
        assert (out[DEEP3D_SLICES[key]] == i).all(), key
    assert out[254:256].tolist() == [5.0, 5.0] and out[256].item() == 6.0  # tx, ty | tz


def test_crops_are_fed_as_rgb_in_0_1(random_checkpoint):
    path, ref = random_checkpoint
    net = load_deep3d_net(path)
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, (2, 224, 224, 3), dtype=np.uint8)
    got = coefficients_from_crops(crops, net, batch=1)
    with torch.no_grad():
        want = ref(torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255).numpy()
    assert got.shape == (2, 257) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=r"uint8 \[N, 224, 224, 3\]"):
        coefficients_from_crops(crops[:, :200], net)
    with pytest.raises(ValueError, match=r"\[N, 3, H, W\]"):
        net(torch.rand(3, 224, 224))


def test_other_file_layouts_that_load(random_checkpoint, tmp_path):
    path, ref = random_checkpoint
    sd = torch.load(path, weights_only=True)["net_recon"]
    # a bare state dict, with DataParallel's prefix and without BatchNorm counters (old torch)
    bare = {"module." + k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    torch.save(bare, tmp_path / "bare.pth")
    net = load_deep3d_net(tmp_path / "bare.pth")
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(net(x), ref(x))


def test_bad_paths_and_files(random_checkpoint, tmp_path):
    missing = tmp_path / "nowhere" / "epoch_20.pth"
    with pytest.raises(Deep3DWeightsError, match="weights not found.*nowhere"):
        load_deep3d_net(missing)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(Deep3DWeightsError, match="junk.pth: not a"):
        load_deep3d_net(junk)
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    with pytest.raises(Deep3DWeightsError, match="empty.pth"):
        load_deep3d_net(empty)
    other = tmp_path / "other.pth"
    torch.save({"model": {"fc.weight": torch.zeros(2, 2)}}, other)
    with pytest.raises(Deep3DWeightsError, match="other.pth: not a Deep3DFaceRecon checkpoint"):
        load_deep3d_net(other)
    sd = torch.load(random_checkpoint[0], weights_only=True)["net_recon"]
    wrong = dict(sd)
    wrong["final_layers.1.weight"] = torch.zeros(70, 2048, 1, 1)  # a 70-wide expression head
    del wrong["backbone.layer4.2.bn3.weight"]
    wrong["backbone.fc.weight"] = torch.zeros(1000, 2048)
    torch.save({"net_recon": wrong}, tmp_path / "wrong.pth")
    with pytest.raises(Deep3DWeightsError) as e:
        load_deep3d_net(tmp_path / "wrong.pth")
    msg = str(e.value)
    assert "wrong.pth" in msg and "layer4.2.bn3.weight" in msg and "backbone.fc.weight" in msg
    assert "final_layers.1.weight [70, 2048, 1, 1] (expected [64, 2048, 1, 1])" in msg
    # a pickled object beyond tensors and plain containers (any class torch does not allow)
    torch.save({"net_recon": {}, "extra": argparse.Namespace()}, tmp_path / "pickled.pth")
    with pytest.raises(Deep3DWeightsError, match="pickled.pth: holds pickled Python objects"):
        load_deep3d_net(tmp_path / "pickled.pth")
