"""Image encoder E (ViT), detail network C and fusion networks gamma/eta."""

from __future__ import annotations

import pytest
import torch

from nofa.models import DetailNetwork, FusionNetwork, ImageEncoder, fuse, get_config


def test_paper_encoder_shapes():
    e = get_config("paper")["encoder"]
    with torch.device("meta"):
        enc = ImageEncoder(512, e["patch_size"], e["dim"], e["depth"], e["heads"], 14, 512)
        assert enc(torch.randn(1, 3, 512, 512)).shape == (1, 14, 512)


def test_encoder_tokens_heads_and_gradients():
    enc = ImageEncoder(image_size=32, patch_size=8, dim=16, depth=2, heads=2, num_ws=5, w_dim=12)
    img = torch.rand(3, 3, 32, 32) * 2 - 1
    out = enc(img)
    assert out.shape == (3, 5, 12)
    # starts small so E(I) + w_avg starts near the average face
    assert out.abs().max() < 0.5
    # each sample is encoded on its own; different images give different codes
    torch.testing.assert_close(enc(img[1:2]), out[1:2], atol=1e-5, rtol=1e-4)
    assert not torch.allclose(out[0], out[1])
    out.square().sum().backward()
    missing = [n for n, p in enc.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not missing, missing


@pytest.mark.parametrize(
    "shape,match",
    [
        ((1, 3, 16, 16), "must be 32x32"),
        ((1, 1, 32, 32), r"\(RGB\)"),
        ((3, 32, 32), "shape"),
    ],
)
def test_encoder_rejects_bad_images(shape, match):
    enc = ImageEncoder(image_size=32, patch_size=8, dim=16, depth=1, heads=2, num_ws=5, w_dim=12)
    with pytest.raises(ValueError, match=match):
        enc(torch.randn(*shape))


def test_encoder_rejects_integer_images():
    enc = ImageEncoder(image_size=32, patch_size=8, dim=16, depth=1, heads=2, num_ws=5, w_dim=12)
    with pytest.raises(TypeError, match="float"):
        enc(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))


def test_detail_network_reaches_head_resolution():
    c = DetailNetwork(
        image_size=64, feature_resolution=16, base_channels=4, max_channels=8, out_channels=6
    )
    assert c(torch.randn(2, 3, 64, 64)).shape == (2, 6, 16, 16)
    with torch.device("meta"):
        d = get_config("paper")["detail"]
        assert DetailNetwork(512, 64, **d)(torch.randn(1, 3, 512, 512)).shape == (1, 128, 64, 64)
    with pytest.raises(ValueError, match="power of two"):
        DetailNetwork(image_size=48, feature_resolution=16)


def test_fusion_starts_near_identity_and_changes_features():
    gamma, eta = FusionNetwork(6, 10, 8, init_value=1.0), FusionNetwork(6, 10, 8, init_value=0.0)
    f_c, f_res = torch.randn(2, 10, 8, 8), torch.randn(2, 6, 8, 8)
    f_e = fuse(f_c, f_res, gamma, eta)
    assert (f_e - f_c).abs().max() < 0.5 * f_c.abs().max()  # close to F_c at init ...
    assert not torch.allclose(f_e, f_c)  # ... but not equal: a non-zero residual feature acts
    # eq. 3 exactly
    torch.testing.assert_close(f_e, gamma(f_res) * f_c + eta(f_res))
    # gamma = 1, eta = 0 reduces to the coarse feature
    with torch.no_grad():
        for net, v in ((gamma, 1.0), (eta, 0.0)):
            net.conv1.weight.zero_()
            net.conv1.bias.fill_(v)
    torch.testing.assert_close(fuse(f_c, f_res, gamma, eta), f_c)
