"""The rules the training proofs are judged by: mean - 2·sd over seeds (nofa.bench.seeds),
the untouched test stream, and the per-sample optimisation baseline (nofa.train.inversion)."""

from __future__ import annotations

import math

import pytest
import torch

from nofa.bench.seeds import summarise
from nofa.train import load_config
from nofa.train.data import HELDOUT_STREAM, TEST_STREAM, TRAIN_STREAM, SyntheticSource
from nofa.train.inversion import InversionBudget, invert
from nofa.train.losses import psnr
from nofa.train.trainer import build_model


def test_target_met_only_when_mean_minus_two_sd_clears_it():
    s = summarise([3.2, 3.1, 3.3], target=3.0)
    assert s.mean == pytest.approx(3.2) and s.sd == pytest.approx(0.1)
    assert s.bound == pytest.approx(3.0) and s.met  # exactly on the target counts
    wide = summarise([3.4, 2.7, 3.5], target=3.0)  # mean 3.2 above the target, spread too wide
    assert wide.mean > 3.0 and not wide.met
    assert "not met" in wide.verdict()


def test_ceiling_targets_use_mean_plus_two_sd():
    assert summarise([10.0, 11.0, 12.0], target=20.0, higher_is_better=False).met
    assert not summarise([10.0, 15.0, 20.0], target=20.0, higher_is_better=False).met


def test_one_seed_never_meets_a_target_and_bad_values_are_refused():
    one = summarise([5.0], target=1.0)
    assert math.isnan(one.sd) and one.met is False
    assert summarise([1.0, 2.0]).met is None  # no target, no verdict
    with pytest.raises(ValueError, match="at least one"):
        summarise([])
    with pytest.raises(ValueError, match="finite"):
        summarise([1.0, float("nan")])


@pytest.fixture(scope="module")
def teacher():
    cfg = load_config("configs/encoder_tiny.toml")
    torch.manual_seed(0)
    return build_model(cfg).eval()


def test_test_stream_is_disjoint_from_train_and_validation(teacher):
    src = SyntheticSource(teacher, seed=0)
    zs = {
        s: torch.stack([src.sample_params(i, s)[0] for i in range(8)])
        for s in (TRAIN_STREAM, HELDOUT_STREAM, TEST_STREAM)
    }
    for a in zs:
        for b in zs:
            if a != b:
                assert torch.cdist(zs[a], zs[b]).min() > 1.0


def test_inversion_fits_the_source_view_and_leaves_the_model_alone(teacher):
    src = SyntheticSource(teacher, seed=0, truncation=1.0)
    b = src.batch([0], TEST_STREAM)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    budget = InversionBudget(latent_steps=15, latent_lr=0.05, tune_steps=5)
    tuned, vol = invert(teacher, b.image_s, b.camera_s, None, budget)
    ws = teacher.generator.w_avg[None, None].expand(1, teacher.num_ws, -1)
    with torch.no_grad():
        start = teacher.render(
            teacher.volume_from_feature(*teacher.generator.head(ws), ws), b.camera_s
        )
        end = tuned.render(vol, b.camera_s)
    assert psnr(end["image"], b.image_s) > psnr(start["image"], b.image_s) + 0.5
    for k, v in teacher.state_dict().items():
        assert torch.equal(v, before[k]), f"invert changed the caller's model: {k}"
    assert any(
        not torch.equal(p, q)
        for p, q in zip(tuned.generator.parameters(), teacher.generator.parameters())
    ), "the tuning phase did not change the generator"


def test_inversion_rejects_bad_inputs(teacher):
    img = torch.zeros(2, 3, teacher.image_size, teacher.image_size)
    with pytest.raises(ValueError, match=r"image must have shape \[1, 3, S, S\]"):
        invert(teacher, img, torch.zeros(2, 25), None)
    with pytest.raises(ValueError, match="camera must have shape"):
        invert(teacher, img[:1], torch.zeros(1, 16), None)
    with pytest.raises(ValueError, match="latent_steps"):
        InversionBudget(latent_steps=-1)
    with pytest.raises(ValueError, match="tune_lr"):
        InversionBudget(tune_lr=0.0)
