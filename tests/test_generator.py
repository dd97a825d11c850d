"""Tri-plane generator (head/tail split) and super-resolution: shapes at paper sizes, semantics at
tiny sizes."""

from __future__ import annotations

import pytest
import torch

from nofa.models import SuperResolution, TriplaneGenerator, get_config


def _paper_synthesis_params(w_dim=512, plane_res=256, img_ch=96, base=32768, cmax=512) -> int:
    """Parameter count of the StyleGAN2 synthesis network, from the architecture's definition."""

    def layer(i, o, k=3, noise=True):
        return (w_dim * i + i) + o * i * k * k + o + (1 if noise else 0)

    res = [2**k for k in range(2, plane_res.bit_length())]
    ch = {r: min(base // r, cmax) for r in res}
    total = ch[4] * 16  # the learned constant
    for r in res:
        if r > 4:
            total += layer(ch[r // 2], ch[r])
        total += layer(ch[r], ch[r]) + layer(ch[r], img_ch, k=1, noise=False)
    return total


def test_paper_generator_shapes_and_counts():
    with torch.device("meta"):
        g = TriplaneGenerator(**get_config("paper")["generator"])
        assert g.num_ws == 14
        ws = g.map(torch.randn(1, 512), torch.randn(1, 25))
        assert ws.shape == (1, 14, 512)
        f_c, skip = g.head(ws)
        assert f_c.shape == (1, 512, 64, 64) and skip.shape == (1, 96, 64, 64)
        planes = g.tail(f_c, skip, ws)
    assert planes.shape == (1, 3, 32, 256, 256)
    n_syn = sum(p.numel() for p in g.synthesis.parameters())
    assert n_syn == _paper_synthesis_params()


def test_paper_superres_shapes():
    with torch.device("meta"):
        sr = SuperResolution(32, 128, 512, (256, 128))
        ws = torch.randn(1, 14, 512)
        assert sr(torch.randn(1, 3, 128, 128), torch.randn(1, 32, 128, 128), ws).shape == (
            1,
            3,
            512,
            512,
        )
        # the 64 -> 512 variant: a 64 px rendering is resized to 128 first
        assert sr(torch.randn(1, 3, 64, 64), torch.randn(1, 32, 64, 64), ws).shape == (
            1,
            3,
            512,
            512,
        )


@pytest.fixture
def tiny_g():
    return TriplaneGenerator(**get_config("tiny")["generator"])


def test_tiny_head_tail_equals_full(tiny_g):
    g = tiny_g
    ws = g.map(torch.randn(2, 32), torch.randn(2, 25))
    planes = g.synthesize(ws)
    assert planes.shape == (2, 3, 8, 32, 32)
    f_c, skip = g.head(ws)
    assert f_c.shape == (
        2,
        g.feature_channels,
        8,
        8,
    )  # head at plane/4, as the paper preset (64 of 256)
    torch.testing.assert_close(g.tail(f_c, skip, ws), planes)
    # the full image is the plain synthesis network reshaped to planes
    torch.testing.assert_close(g.to_planes(g.synthesis(ws)), planes)
    # a different feature gives different planes (the tail really continues from it)
    assert not torch.allclose(g.tail(f_c + 0.5 * torch.randn_like(f_c), skip, ws), planes)


def test_tiny_generator_gradients_and_determinism(tiny_g):
    g = tiny_g
    z, c = torch.randn(1, 32), torch.randn(1, 25)
    a, b = g(z, c), g(z, c)
    assert torch.equal(a, b)  # noise_mode const
    a.square().mean().backward()
    no_grad = [
        n for n, p in g.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()
    ]
    assert not no_grad, no_grad


def test_generator_truncation_and_camera_conditioning(tiny_g):
    g = tiny_g
    with torch.no_grad():
        g.mapping.w_avg.normal_()
    z = torch.randn(1, 32)
    ws0 = g.map(z, torch.randn(1, 25), truncation_psi=0.0)
    torch.testing.assert_close(ws0, g.w_avg.expand(1, g.num_ws, -1))
    assert not torch.allclose(g.map(z, torch.randn(1, 25)), g.map(z, torch.randn(1, 25)))
    g.c_gen_conditioning_zero = True
    torch.testing.assert_close(g.map(z, torch.randn(1, 25)), g.map(z, torch.randn(1, 25)))


def test_generator_bad_inputs(tiny_g):
    g = tiny_g
    with pytest.raises(ValueError, match="ws must have shape"):
        g.head(torch.randn(1, 5, 32))
    f, skip = g.head(torch.randn(1, g.num_ws, 32))
    with pytest.raises(ValueError, match="feature must have shape"):
        g.tail(f[:, :, :4], skip, torch.randn(1, g.num_ws, 32))
    with pytest.raises(ValueError, match="head_resolution"):
        TriplaneGenerator(**{**get_config("tiny")["generator"], "head_resolution": 32})


def test_tiny_superres_is_anchored_to_the_rendering():
    sr = SuperResolution(8, 16, 32, (16, 8))
    rgb, feat, ws = torch.randn(1, 3, 16, 16), torch.randn(1, 8, 16, 16), torch.randn(1, 4, 32)
    out = sr(rgb, feat, ws)
    assert out.shape == (1, 3, 64, 64)
    # only the last W code drives it
    ws2 = ws.clone()
    ws2[:, :-1] = torch.randn(1, 3, 32)
    torch.testing.assert_close(sr(rgb, feat, ws2), out)
    # the raw rgb enters through the skip path: changing it alone changes the output
    assert not torch.allclose(sr(rgb + 1, feat, ws), out)
    with pytest.raises(ValueError, match="feature must have shape"):
        sr(rgb, torch.randn(1, 7, 16, 16), ws)


def test_empty_batch_gives_empty_planes(tiny_g):
    ws = torch.zeros(0, tiny_g.num_ws, 32)
    assert tiny_g.synthesize(ws).shape == (0, 3, 8, 32, 32)
    sr = SuperResolution(8, 16, 32, (16, 8))
    assert sr(torch.zeros(0, 3, 16, 16), torch.zeros(0, 8, 16, 16), ws).shape == (0, 3, 64, 64)
