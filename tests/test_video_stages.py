"""The video stages (deformation, hybrid, audio): a few steps reduce the loss on a fixed batch,
frozen parts stay bit-identical, the hybrid 2 video : 1 synthetic order survives a resume, a
corrupt data item is skipped and logged, config errors are clear, held-out reenactment
metrics are logged for the deformed and the canonical render."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from PIL import Image

import nofa.ops as ops
from nofa.io.coeffs import DEEP3D_SLICES
from nofa.train import ConfigError, Trainer, load_config
from nofa.train.trainer import train
from nofa.train.video_data import VideoBatch
from nofa.train.video_stages import HybridStage

FAST = [
    "model.preset=tiny",
    "model.teacher_gain=16.0",
    "model.coarse_samples=6",
    "model.importance_samples=4",
    "model.deterministic_render=true",
    "loss.lpips_random_backbone=true",
    "loss.lpips_raw=false",
    "loss.arcface_random=true",
    "run.device=cpu",
    "data.batch_size=2",
    "eval.samples=0",
    "eval.targets=2",
    "log.progress=false",
    "log.tensorboard=false",
    "log.image_every=0",
    "run.threads=1",
]


def write_clip(root, name: str, T: int = 4, seed: int = 0) -> None:
    """A clip in the documented layout (frames/*.png, coeffs.npy [T, 257], landmarks.npy,
    audio_exp.npy; labels derived from the coefficients' zero angles: frontal)."""
    rng = np.random.default_rng(seed)
    d = root / name
    (d / "frames").mkdir(parents=True)
    base = rng.integers(0, 255, (8, 8, 3))
    coeffs = np.zeros((T, 257), np.float32)
    coeffs[:, DEEP3D_SLICES["id"]] = rng.normal(0, 0.5, 80)
    lm = np.tile(np.stack([np.linspace(16, 48, 68), np.linspace(20, 50, 68)], 1), (T, 1, 1)).astype(
        np.float32
    )
    for t in range(T):
        jaw = t / max(T - 1, 1)
        img = np.kron(base, np.ones((8, 8, 1))).astype(np.uint8)
        img[40 : 40 + int(4 + 14 * jaw), 22:42] = 20  # an opening dark mouth
        Image.fromarray(img).save(d / "frames" / f"{t:03d}.png")
        coeffs[t, DEEP3D_SLICES["exp"]][:4] = [jaw, 0, 0, 0]
        lm[t, 48:68] = np.stack([np.linspace(22, 42, 20), 40 + np.linspace(0, 4 + 14 * jaw, 20)], 1)
    np.save(d / "coeffs.npy", coeffs)
    np.save(d / "landmarks.npy", lm)
    np.save(d / "audio_exp.npy", coeffs[:, DEEP3D_SLICES["exp"]] + 0.01)


@pytest.fixture()
def dataset(tmp_path):
    root = tmp_path / "videos"
    for i in range(3):
        write_clip(root, f"clip{i}", seed=i)
    return root


def config(tmp_path, root, *extra: str):
    return load_config(
        None, FAST + [f"run.out_dir={tmp_path / 'run'}", f"data.root={root}", *extra]
    )


def parts_changed(before: dict, model) -> set[str]:
    after = model.state_dict()
    return {k.split(".")[0] for k in before if not torch.equal(before[k], after[k])}


def overfit(tr: Trainer, batch, steps: int, kind: str) -> list[float]:
    losses = []
    with ops.use_backend("kernels"):
        for _ in range(steps):
            tr.stage.prepare(tr.model, kind)
            loss, _ = tr.criterion(tr.module(batch), batch)
            tr.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            tr.optimizer.step()
            losses.append(float(loss.detach()))
    return losses


@pytest.mark.parametrize(
    "stage,lr,trained",
    [
        ("deformation", "1e-3", None),  # the whole model
        ("audio", "1e-2", {"deformation"}),
    ],
)
def test_video_stage_overfits_and_frozen_parts_stay_bit_identical(
    tmp_path, dataset, stage, lr, trained
):
    tr = Trainer(config(tmp_path, dataset, f"run.stage={stage}", f"optim.lr={lr}"))
    batch = tr.sources["video"].batch(range(2))
    assert isinstance(batch, VideoBatch) and (batch.beta_audio_t is not None) == (stage == "audio")
    before = {k: v.clone() for k, v in tr.model.state_dict().items()}
    with ops.trace_backends() as trace:
        losses = overfit(tr, batch, 6, "video")
    assert {b for _, b in trace.calls} == {"kernels"}
    assert losses[-1] < 0.9 * losses[0], losses
    changed = parts_changed(before, tr.model)
    if trained is None:  # everything the video forward uses trains
        assert {
            "encoder",
            "detail",
            "gamma",
            "eta",
            "generator",
            "superres",
            "renderer",
            "deformation",
        } <= changed
        gen_before = {k: v for k, v in before.items() if k.startswith("generator.mapping.")}
        assert all(
            torch.equal(v, tr.model.state_dict()[k]) for k, v in gen_before.items()
        )  # unused: untouched
    else:
        assert changed == trained
        for k in before:
            if k.split(".")[0] not in trained:
                assert torch.equal(before[k], tr.model.state_dict()[k]), k


def test_hybrid_video_steps_train_the_deformation_field_only_synthetic_steps_the_model(
    tmp_path, dataset
):
    tr = Trainer(config(tmp_path, dataset, "run.stage=hybrid", "optim.lr=1e-2", "loss.rec=1.0"))
    video = tr.sources["video"].batch(range(2))
    synthetic = tr.sources["synthetic"].batch(range(2))
    teacher_before = {k: v.clone() for k, v in tr.sources["synthetic"].model.state_dict().items()}
    before = {k: v.clone() for k, v in tr.model.state_dict().items()}
    losses = overfit(tr, video, 5, "video")
    assert losses[-1] < 0.9 * losses[0], losses
    assert parts_changed(before, tr.model) == {"deformation"}
    before = {k: v.clone() for k, v in tr.model.state_dict().items()}
    for g in tr.optimizer.param_groups:  # the whole model: a smaller step
        g["lr"] = 1e-3
    losses = overfit(tr, synthetic, 5, "synthetic")
    assert losses[-1] < 0.9 * losses[0], losses
    changed = parts_changed(before, tr.model)
    assert {"encoder", "detail", "generator"} <= changed and "deformation" not in changed
    # the synthetic data come from a frozen copy of the starting model
    assert all(
        torch.equal(v, tr.sources["synthetic"].model.state_dict()[k])
        for k, v in teacher_before.items()
    )


def test_hybrid_schedule_two_video_one_synthetic_across_resume(tmp_path, dataset):
    assert [HybridStage.is_synthetic(s) for s in range(6)] == [False, False, True] * 2
    stage = HybridStage()
    assert [stage.schedule(s) for s in range(6)] == [
        ("video", 0),
        ("video", 1),
        ("synthetic", 0),
        ("video", 2),
        ("video", 3),
        ("synthetic", 1),
    ]
    seen: list[tuple[str, list[int]]] = []

    def record(tr: Trainer) -> None:
        for kind, src in tr.sources.items():
            if kind in ("video", "synthetic"):
                orig = src.batch
                src.batch = lambda idx, *a, _k=kind, _o=orig: (
                    seen.append((_k, list(idx))),
                    _o(idx, *a),
                )[1]

    base = [
        "run.stage=hybrid",
        "checkpoint.every=2",
        "data.heldout_clips=0",
        "model.coarse_samples=4",
        "model.importance_samples=-1",
    ]
    tr = Trainer(config(tmp_path, dataset, *base, "run.steps=4"))
    record(tr)
    assert tr.run() == 0 and tr.step == 4
    tr = Trainer(config(tmp_path, dataset, *base, "run.steps=6"), resume=True)
    assert tr.step == 4
    record(tr)
    assert tr.run() == 0 and tr.step == 6
    assert seen == [
        ("video", [0, 1]),
        ("video", [2, 3]),
        ("synthetic", [0, 1]),
        ("video", [4, 5]),
        ("video", [6, 7]),
        ("synthetic", [2, 3]),
    ]


def test_training_skips_a_corrupt_item_and_logs_it(tmp_path, dataset):
    (dataset / "clip0" / "frames" / "001.png").write_bytes(b"not a png")
    np.save(dataset / "clip1" / "coeffs.npy", np.zeros((4, 12), np.float32))  # wrong width
    cfg = config(
        tmp_path,
        dataset,
        "run.stage=audio",
        "run.steps=2",
        "model.coarse_samples=4",
        "model.importance_samples=-1",
    )
    assert train(cfg) == 0
    log = (tmp_path / "run" / "logs" / "skipped.txt").read_text()
    assert "clip1" in log and "coeffs" in log, log
    assert (tmp_path / "run" / "model.nofa-model").is_file()


def test_heldout_reenactment_metrics_for_deformed_and_canonical(tmp_path, dataset):
    cfg = config(
        tmp_path,
        dataset,
        "run.stage=deformation",
        "run.steps=1",
        "model.coarse_samples=4",
        "model.importance_samples=-1",
        "data.heldout_clips=1",
    )
    tr = Trainer(cfg)
    m = tr.evaluate()
    for kind in ("deformed", "canonical", "source_beta"):
        for k in ("psnr", "ssim", "lpips", "psnr_mouth", "ssim_mouth", "lpips_mouth"):
            assert np.isfinite(m[f"eval/{kind}/{k}"]), (kind, k)
    # at the start the deformation field is the identity map: both renders agree
    assert abs(m["eval/deformed/psnr"] - m["eval/canonical/psnr"]) < 1e-3
    with open(tmp_path / "run" / "logs" / "scalars.csv") as f:
        row = next(csv.DictReader(f))
    assert "eval/deformed/psnr_mouth" in row and "eval/canonical/psnr_mouth" in row
    assert (tmp_path / "run" / "images" / "eval-latest.png").is_file()


def test_video_stage_config_errors(tmp_path, dataset):
    with pytest.raises(ConfigError, match="set data.root"):
        Trainer(
            load_config(None, FAST + ["run.stage=deformation", f"run.out_dir={tmp_path / 'r'}"])
        )
    with pytest.raises(ConfigError, match="loss.arcface_weights"):
        Trainer(config(tmp_path, dataset, "run.stage=deformation", "loss.arcface_random=false"))
    with pytest.raises(ConfigError, match="file not found"):
        Trainer(
            config(
                tmp_path,
                dataset,
                "run.stage=audio",
                "loss.arcface_random=false",
                f"loss.arcface_weights={tmp_path / 'nope.pth'}",
            )
        )
    with pytest.raises(FileNotFoundError, match="data.root .* does not exist"):
        Trainer(config(tmp_path, tmp_path / "missing", "run.stage=audio"))
    with pytest.raises(ConfigError, match="loss.bbox must be >= 0"):
        config(tmp_path, dataset, "loss.bbox=-1")


def test_missing_data_root_is_written_with_procedural_clips_first(tmp_path):
    root = tmp_path / "procedural"
    cfg = config(
        tmp_path,
        root,
        "run.stage=audio",
        "data.synth_clips=2",
        "data.synth_frames=3",
        "data.heldout_clips=1",
    )
    tr = Trainer(cfg)
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == ["clip0000", "clip0001"]
    assert not (tmp_path / "procedural.partial").exists()
    assert (
        tr.sources["video"].dataset.clips == ["clip0000"]
        and len(tr.stage.heldout(tr.sources, cfg)) == 1
    )
