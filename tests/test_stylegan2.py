"""StyleGAN2 building blocks: equalised lr, FIR up-sampling, modulated conv, noise, mapping."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from nofa.models.mapping import MappingNetwork
from nofa.models.stylegan2 import (
    FullyConnectedLayer,
    SynthesisBlock,
    SynthesisLayer,
    ToRGBLayer,
    make_filter,
    modulated_conv2d,
    upfirdn2d,
    upsample2d,
)


def test_fully_connected_equalised_lr():
    fc = FullyConnectedLayer(16, 8, lr_multiplier=0.01, bias_init=0.5)
    # stored weights are N(0, 1) / lr_mul; the effective weight is stored * lr_mul / sqrt(in)
    assert 50 < fc.weight.std().item() < 200
    x = torch.randn(4, 16)
    want = x @ (fc.weight * 0.01 / 4.0).t() + fc.bias * 0.01
    torch.testing.assert_close(fc(x), want)
    act = FullyConnectedLayer(16, 8, activation="lrelu")
    y = x @ (act.weight / 4.0).t()
    torch.testing.assert_close(act(x), F.leaky_relu(y, 0.2) * math.sqrt(2))


def test_filter_and_upsample_keep_constants():
    f = make_filter()
    assert f.shape == (4, 4) and abs(f.sum().item() - 1) < 1e-6
    x = torch.full((1, 2, 6, 6), 3.0)
    y = upsample2d(x, f)
    assert y.shape == (1, 2, 12, 12)
    torch.testing.assert_close(y[:, :, 2:-2, 2:-2], torch.full_like(y[:, :, 2:-2, 2:-2], 3.0))


def test_upsample_is_centred():
    # an impulse must spread symmetrically around its two up-sampled pixels (no half-pixel shift)
    x = torch.zeros(1, 1, 8, 8)
    x[0, 0, 3, 3] = 1
    y = upsample2d(x, make_filter())[0, 0]
    sub = y[2:12, 2:12]  # rows/cols 2..11 are symmetric about 6.5
    torch.testing.assert_close(sub, sub.flip(0))
    torch.testing.assert_close(sub, sub.flip(1))
    rows = y.sum(1)
    # mass centred between rows 6 and 7 (= pixel 3 in the input grid)
    centre = (rows * torch.arange(16.0)).sum() / rows.sum()
    assert abs(centre.item() - 6.5) < 1e-5
    assert abs(y.sum().item() - 4.0) < 1e-5  # gain up^2 keeps the mean intensity


def test_upfirdn2d_negative_padding_crops():
    x = torch.arange(36.0).reshape(1, 1, 6, 6)
    delta = torch.zeros(1, 1)
    delta[0, 0] = 1
    y = upfirdn2d(x, delta, padding=(-1, -2, 0, -1))
    torch.testing.assert_close(y, x[:, :, 0:5, 1:4])


def test_up_conv_with_delta_kernel_equals_fir_upsample():
    # checks the padding bookkeeping of "transposed conv + FIR" against plain FIR up-sampling
    x = torch.randn(2, 1, 5, 5)
    w = torch.zeros(1, 1, 3, 3)
    w[0, 0, 1, 1] = 1
    f = make_filter()
    y = modulated_conv2d(x, w, torch.ones(2, 1), up=2, padding=1, resample_filter=f)
    torch.testing.assert_close(y, upsample2d(x, f), atol=1e-5, rtol=1e-5)


def test_modulated_conv_matches_per_sample_loop():
    x, w, s = torch.randn(3, 4, 7, 7), torch.randn(5, 4, 3, 3), torch.randn(3, 4)
    y = modulated_conv2d(x, w, s, padding=1)
    for i in range(3):
        wi = w * s[i].reshape(1, 4, 1, 1)
        wi = wi / (wi.square().sum([1, 2, 3], keepdim=True) + 1e-8).sqrt()
        torch.testing.assert_close(
            y[i : i + 1], F.conv2d(x[i : i + 1], wi, padding=1), atol=1e-5, rtol=1e-5
        )
    y2 = modulated_conv2d(x, w, s, padding=1, demodulate=False)
    torch.testing.assert_close(
        y2[1:2], F.conv2d(x[1:2], w * s[1].reshape(1, 4, 1, 1), padding=1), atol=1e-5, rtol=1e-5
    )


def test_up_conv_matches_per_sample_transposed_conv_then_filter():
    # grouped (batched) form vs one sample at a time with an asymmetric kernel: transposed
    # conv (stride 2) then the 4-tap FIR with 1 pixel of padding each side (k=3, up=2)
    x, w, s = torch.randn(3, 4, 5, 5), torch.randn(6, 4, 3, 3), torch.randn(3, 4)
    f = make_filter()
    y = modulated_conv2d(x, w, s, up=2, padding=1, resample_filter=f)
    assert y.shape == (3, 6, 10, 10)
    for i in range(3):
        wi = w * s[i].reshape(1, 4, 1, 1)
        wi = wi / (wi.square().sum([1, 2, 3], keepdim=True) + 1e-8).sqrt()
        t = F.conv_transpose2d(x[i : i + 1], wi.transpose(0, 1), stride=2)
        torch.testing.assert_close(
            y[i : i + 1], upfirdn2d(t, f, padding=(1, 1, 1, 1), gain=4), atol=1e-5, rtol=1e-5
        )


def test_demodulation_normalises_output_scale():
    x = torch.randn(2, 64, 16, 16)
    y = modulated_conv2d(x, torch.randn(32, 64, 3, 3), torch.randn(2, 64) * 10, padding=1)
    assert 0.6 < y[:, :, 2:-2, 2:-2].std().item() < 1.4  # unit variance whatever the style scale


def test_synthesis_layer_noise_modes():
    layer = SynthesisLayer(4, 6, 8, resolution=8, up=2)
    with torch.no_grad():
        layer.noise_strength.fill_(0.5)
    x, w = torch.randn(2, 4, 4, 4), torch.randn(2, 8)
    a, b = layer(x, w, "const"), layer(x, w, "const")
    assert a.shape == (2, 6, 8, 8) and torch.equal(a, b)
    assert not torch.allclose(layer(x, w, "random"), a)
    assert not torch.allclose(layer(x, w, "none"), a)
    with pytest.raises(ValueError, match="noise_mode"):
        layer(x, w, "bogus")


def test_synthesis_block_skip_output():
    first = SynthesisBlock(0, 8, 16, 4, img_channels=3, is_last=False)
    block = SynthesisBlock(8, 6, 16, 8, img_channels=3, is_last=True)
    assert first.num_conv == 1 and block.num_conv == 2
    ws = torch.randn(2, 3, 16)
    x, img = first(None, None, ws[:, :2])
    assert x.shape == (2, 8, 4, 4) and img.shape == (2, 3, 4, 4)
    x2, img2 = block(x, img, ws)
    assert x2.shape == (2, 6, 8, 8) and img2.shape == (2, 3, 8, 8)
    # the skip: block output image = FIR-up-sampled input image + this block's toRGB
    rgb = block.torgb(x2, ws[:, 2])
    torch.testing.assert_close(img2, upsample2d(img, block.resample_filter) + rgb)


def test_torgb_is_not_demodulated():
    rgb = ToRGBLayer(4, 3, 8)
    x, w = torch.randn(1, 4, 5, 5), torch.randn(1, 8)
    torch.testing.assert_close(
        rgb(2 * x, w) - rgb.bias.reshape(1, 3, 1, 1),
        2 * (rgb(x, w) - rgb.bias.reshape(1, 3, 1, 1)),
        atol=1e-5,
        rtol=1e-5,
    )


def test_mapping_truncation_and_w_avg_tracking():
    m = MappingNetwork(z_dim=16, c_dim=25, w_dim=8, num_ws=5, num_layers=2)
    assert [n for n, _ in m.named_children()] == ["embed", "fc0", "fc1"]
    z, c = torch.randn(4, 16), torch.randn(4, 25)
    ws = m(z, c)
    assert ws.shape == (4, 5, 8) and torch.equal(ws[:, 0], ws[:, 4])
    assert torch.equal(m.w_avg, torch.zeros(8))
    m(z, c, update_emas=True)
    torch.testing.assert_close(m.w_avg, ws[:, 0].mean(0) * (1 - 0.998))
    psi0 = m(z, c, truncation_psi=0.0)
    torch.testing.assert_close(psi0, m.w_avg.expand(4, 5, 8))
    cut = m(z, c, truncation_psi=0.5, truncation_cutoff=2)
    torch.testing.assert_close(cut[:, 2:], ws[:, 2:])
    torch.testing.assert_close(cut[:, :2], m.w_avg.lerp(ws[:, :2], 0.5))
    with pytest.raises(ValueError, match="camera label"):
        m(z, torch.randn(4, 24))
    with pytest.raises(ValueError, match="z must have shape"):
        m(torch.randn(4, 15), c)


def test_mapping_paper_parameter_count():
    m = MappingNetwork()  # z 512 + c 25 -> w 512, 2 layers
    want = (25 * 512 + 512) + (1024 * 512 + 512) + (512 * 512 + 512)
    assert sum(p.numel() for p in m.parameters()) == want
