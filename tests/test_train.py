"""Trainer, stages and config: overfit a fixed batch, frozen parts stay bit-identical, clear
errors for bad configs and mismatched checkpoints, logs and checkpoints on disk."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import tomllib
import torch

import nofa.ops as ops
from nofa.cli import main as nofa_main
from nofa.io import NofaFileWarning
from nofa.models.model_file import load_model
from nofa.train import ConfigError, TrainConfig, Trainer, load_config, to_toml
from nofa.train.config import read_config_file
from nofa.train.data import HELDOUT_STREAM, TRAIN_STREAM, SyntheticSource
from nofa.train.losses import build_lpips
from nofa.train.trainer import build_model, learning_rate, train

FAST = [
    "model.preset=tiny",
    "model.teacher_gain=16.0",
    "model.coarse_samples=6",
    "model.importance_samples=4",
    "loss.lpips_random_backbone=true",
    "loss.lpips_raw=false",
    "run.device=cpu",
    "data.batch_size=2",
    "eval.samples=0",
    "log.progress=false",
    "log.tensorboard=false",
    "log.image_every=0",
    "optim.lr=1e-3",
]


def tiny_config(tmp_path, *extra: str) -> TrainConfig:
    return load_config(None, FAST + [f"run.out_dir={tmp_path / 'run'}", *extra])


def overfit(tr: Trainer, steps: int) -> list[float]:
    batch = tr.source.batch(range(2))
    losses = []
    with ops.use_backend("kernels"):
        for _ in range(steps):
            loss, _ = tr.criterion(tr.module(batch), batch)
            tr.optimizer.zero_grad()
            loss.backward()
            tr.optimizer.step()
            losses.append(float(loss.detach()))
    return losses


@pytest.mark.parametrize(
    "stage,trained,lr",
    [("encoder", {"encoder"}, "1e-3"), ("detail", {"detail", "gamma", "eta"}, "3e-3")],
)
def test_stage_overfits_fixed_batch_and_frozen_parts_stay_bit_identical(
    tmp_path, stage, trained, lr
):
    # a fixed batch, deterministic rendering, a large step: the loss must drop quickly
    tr = Trainer(
        tiny_config(
            tmp_path, f"run.stage={stage}", "model.deterministic_render=true", f"optim.lr={lr}"
        )
    )
    before = {k: v.clone() for k, v in tr.model.state_dict().items()}
    with ops.trace_backends() as trace:
        losses = overfit(tr, 8)
    assert trace.calls and {b for _, b in trace.calls} == {
        "kernels"
    }  # no silent fallback to the reference
    assert losses[-1] < 0.9 * losses[0], losses
    after = tr.model.state_dict()
    changed = {k.split(".")[0] for k in before if not torch.equal(before[k], after[k])}
    assert changed == trained
    for k in before:  # frozen: bit-identical
        if k.split(".")[0] not in trained:
            assert torch.equal(before[k], after[k]), k
    assert {n.split(".")[0] for n, p in tr.model.named_parameters() if p.requires_grad} == trained


def test_config_overrides_and_errors(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[run]\nstage = "detail"\n[optim]\nlr = 2e-4\n')
    cfg = load_config(path, ["optim.lr=3e-4", "steps=7", "run.out_dir=some/dir"])
    assert (cfg.run.stage, cfg.optim.lr, cfg.run.steps, cfg.run.out_dir) == (
        "detail",
        3e-4,
        7,
        "some/dir",
    )
    assert TrainConfig.from_dict(tomllib.loads(to_toml(cfg))) == cfg
    assert TrainConfig().optim.lr == 1e-4  # the paper's lr for both stages
    with pytest.raises(ConfigError, match="unknown key optim.lrr"):
        load_config(path, ["optim.lrr=1"])
    with pytest.raises(ConfigError, match=r"optim.lr must be float, got str"):
        load_config(path, ['optim.lr="fast"'])
    with pytest.raises(ConfigError, match=r"run.steps must be int, got float"):
        load_config(path, ["run.steps=1.5"])
    path.write_text("[optim]\nlearning_rate = 1\n")
    with pytest.raises(ConfigError, match="unknown key optim.learning_rate"):
        load_config(path)
    path.write_text("[optimiser]\nlr = 1\n")
    with pytest.raises(ConfigError, match=r"unknown section \[optimiser\]"):
        load_config(path)


CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize("tiny", sorted(CONFIGS.glob("*_tiny.toml")), ids=lambda p: p.name)
def test_tiny_config_is_its_paper_config_overlaid(tiny):
    raw = tomllib.loads(tiny.read_text())
    base_path = tiny.parent / raw.pop("base")
    assert base_path.name == tiny.name.replace("_tiny", "")
    base = tomllib.loads(base_path.read_text())
    merged = {s: {**base.get(s, {}), **raw.get(s, {})} for s in base.keys() | raw.keys()}
    assert read_config_file(tiny) == merged
    assert load_config(tiny) == TrainConfig.from_dict(merged)
    # a tiny file states only what differs from its base
    resolved_base = load_config(base_path)
    same = [
        f"{s}.{k}"
        for s, table in raw.items()
        for k, v in table.items()
        if getattr(getattr(resolved_base, s), k) == v
    ]
    assert not same, f"{tiny.name} repeats its base: {same}"


def test_config_base_chain_and_errors(tmp_path, monkeypatch, capsys):
    (tmp_path / "paper.toml").write_text("[run]\nsteps = 100\nseed = 3\n[optim]\nlr = 2e-5\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "mid.toml").write_text(
        'base = "../paper.toml"\n[run]\nsteps = 10\n[loss]\nid = 0.5\n'
    )
    (tmp_path / "sub" / "small.toml").write_text('base = "mid.toml"\n[run]\nseed = 7\n')
    monkeypatch.chdir(tmp_path / "sub")  # bases are relative to the file, not to the cwd
    cfg = load_config(tmp_path / "sub" / "small.toml", ["optim.lr=1e-3"])
    assert (cfg.run.steps, cfg.run.seed, cfg.loss.id, cfg.optim.lr) == (10, 7, 0.5, 1e-3)
    assert "base" not in read_config_file(tmp_path / "sub" / "small.toml")

    bad = tmp_path / "bad.toml"
    bad.write_text('base = "nowhere.toml"\n')
    with pytest.raises(ConfigError, match=r"bad.toml: base config 'nowhere.toml' not found"):
        load_config(bad)
    bad.write_text("base = 3\n")
    with pytest.raises(ConfigError, match="must be a file name"):
        load_config(bad)
    bad.write_text('base = "bad.toml"\n')
    with pytest.raises(ConfigError, match=r"cycle: .*bad.toml -> .*bad.toml"):
        load_config(bad)
    (tmp_path / "a.toml").write_text('base = "b.toml"\n')
    (tmp_path / "b.toml").write_text('base = "a.toml"\n[run]\nsteps = 1\n')
    with pytest.raises(ConfigError, match=r"cycle: .*a.toml -> .*b.toml -> .*a.toml"):
        load_config(tmp_path / "a.toml")
    (tmp_path / "c.toml").write_text('base = "a.toml"\n')  # a cycle further up the chain
    with pytest.raises(ConfigError, match=r"cycle: .*a.toml -> .*b.toml -> .*a.toml"):
        load_config(tmp_path / "c.toml")
    assert nofa_main(["train", str(tmp_path / "a.toml")]) == 2
    assert "cycle" in capsys.readouterr().err


def test_train_help_lists_the_registered_stages(capsys):
    from nofa.train.registry import STAGES

    assert {"encoder", "detail", "deformation", "hybrid", "audio"} <= set(STAGES)
    with pytest.raises(SystemExit):
        nofa_main(["train", "--help"])
    assert f"stages (run.stage): {', '.join(sorted(STAGES))}" in capsys.readouterr().out


def test_cli_reports_bad_config_before_any_work(tmp_path, capsys):
    path = tmp_path / "c.toml"
    path.write_text(f'[run]\nout_dir = "{tmp_path / "out"}"\n')
    assert nofa_main(["train", str(path), "data.batch_size=two"]) == 2
    assert "data.batch_size must be int" in capsys.readouterr().err
    # LPIPS trunk weights missing -> error naming the file, before anything is built or written
    assert (
        nofa_main(
            ["train", str(path), "model.preset=tiny", f"loss.lpips_backbone={tmp_path / 'none'}"]
        )
        == 2
    )
    assert "alexnet-owt-7be5be79.pth" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_lpips_backbone_loaded_from_path(tmp_path):
    import torchvision

    ref = torchvision.models.alexnet(weights=None)
    torch.save(ref.state_dict(), tmp_path / "alexnet-owt-7be5be79.pth")
    net = build_lpips("alex", str(tmp_path))
    assert torch.equal(getattr(net.net.slice1, "0").weight, ref.features[0].weight)
    assert torch.equal(getattr(net.net.slice5, "10").weight, ref.features[10].weight)


def test_synthetic_source_is_indexed_and_heldout_is_disjoint():
    from nofa.models import NOFAAvatar

    src = SyntheticSource(NOFAAvatar.from_preset("tiny"), seed=3)
    z0, cs0, ct0 = src.sample_params(5)
    z1, _, _ = src.sample_params(5)
    zh, _, _ = src.sample_params(5, HELDOUT_STREAM)
    assert torch.equal(z0, z1) and not torch.equal(z0, zh) and not torch.equal(cs0, ct0)
    b = src.batch(range(4, 6), TRAIN_STREAM)
    assert (
        b.image_s.shape == (2, 3, 64, 64)
        and b.raw_t.shape == (2, 3, 16, 16)
        and b.depth_s.shape == (2, 1, 16, 16)
    )
    assert torch.equal(b.index, torch.tensor([4, 5]))


def test_run_writes_checkpoints_logs_and_refuses_other_stage(tmp_path):
    cfg = tiny_config(
        tmp_path,
        "run.steps=3",
        "checkpoint.every=1",
        "checkpoint.keep=2",
        "log.every=1",
        "log.tensorboard=true",
        "log.image_every=3",
        "eval.samples=2",
        "eval.batch_size=2",
    )
    assert train(cfg) == 0
    out = tmp_path / "run"
    ckpts = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert ckpts == [
        "step-00000002.nofa-ckpt",
        "step-00000002.toml",
        "step-00000003.nofa-ckpt",
        "step-00000003.toml",
    ]
    assert (
        TrainConfig.from_dict(
            tomllib.loads((out / "checkpoints" / "step-00000003.toml").read_text())
        )
        == cfg
    )
    rows = list(csv.DictReader(open(out / "logs" / "scalars.csv")))
    assert [r["step"] for r in rows if r.get("loss/total")] == ["1", "2", "3"]
    assert any(r.get("eval/coarse/psnr_novel") for r in rows) and any(
        r.get("eval/wavg/psnr_novel") for r in rows
    )
    assert list((out / "logs" / "tb").glob("events.out.tfevents.*"))
    assert (out / "images" / "train-latest.png").is_file() and (
        out / "images" / "eval-latest.png"
    ).is_file()
    # the documented model file (format nofa-model), the next stage's model.weights
    header = load_model(out / "model.nofa-model").file_header
    assert header["preset"] == "tiny" and header["metadata"] == {"stage": "encoder", "step": 3}
    with pytest.raises(FileExistsError, match="--resume"):
        Trainer(cfg)
    with pytest.raises(ValueError, match="stage 'encoder'"):
        Trainer(tiny_config(tmp_path, "run.stage=detail"), resume=True)
    with pytest.raises(ValueError, match="preset 'tiny'"):
        Trainer(tiny_config(tmp_path, "model.preset=paper", "model.teacher_gain=0.0"), resume=True)


def test_learning_rate_warmup_and_decay(tmp_path):
    o = load_config(None, ["optim.lr=1e-3", "optim.warmup_steps=10", "optim.decay=cosine"]).optim
    assert learning_rate(o, 0, 110) == pytest.approx(1e-4) and learning_rate(
        o, 9, 110
    ) == pytest.approx(1e-3)
    assert learning_rate(o, 10, 110) == pytest.approx(1e-3) and learning_rate(
        o, 60, 110
    ) == pytest.approx(5e-4)
    assert learning_rate(o, 110, 110) == pytest.approx(0.0, abs=1e-12)
    o = load_config(None, ["optim.lr=1e-3", "optim.decay=linear", "optim.final_lr=0.1"]).optim
    assert [learning_rate(o, s, 100) for s in (0, 50, 100)] == pytest.approx([1e-3, 5.5e-4, 1e-4])
    assert (
        learning_rate(load_config(None, ["optim.lr=1e-3"]).optim, 99, 100) == 1e-3
    )  # default: constant
    with pytest.raises(ConfigError, match="optim.decay must be none, cosine or linear"):
        load_config(None, ["optim.decay=step"])
    # the trainer steps with it (the lr logged for step k is the one Adam used for it)
    cfg = tiny_config(
        tmp_path, "run.steps=4", "log.every=1", "optim.decay=linear", "optim.warmup_steps=2"
    )
    assert train(cfg) == 0
    rows = [
        r for r in csv.DictReader(open(tmp_path / "run" / "logs" / "scalars.csv")) if r.get("lr")
    ]
    assert [float(r["lr"]) for r in rows] == pytest.approx(
        [learning_rate(cfg.optim, s, 4) for s in range(4)]
    )


def test_model_weights_file_keeps_its_architecture(tmp_path):
    # an imported EG3D differs from the preset in details (e.g. conv_clamp): its file's config wins
    from nofa.models import NOFAAvatar, get_config

    model = NOFAAvatar(get_config("tiny", generator={"conv_clamp": 256.0}))
    model.save(tmp_path / "g.nofa-model")
    tr = Trainer(
        tiny_config(
            tmp_path, f"model.weights={tmp_path / 'g.nofa-model'}", "model.render_resolution=8"
        )
    )
    assert tr.model.config["generator"]["conv_clamp"] == 256.0 and tr.model.render_resolution == 8
    assert torch.equal(tr.model.generator.mapping.fc0.weight, model.generator.mapping.fc0.weight)
    with pytest.raises(ValueError, match="model.preset"):
        Trainer(
            tiny_config(
                tmp_path,
                f"model.weights={tmp_path / 'g.nofa-model'}",
                "model.preset=paper",
                "run.out_dir=" + str(tmp_path / "other"),
            )
        )
    # a model file of the older format (what the trainer wrote before) still loads, with a note
    legacy = tmp_path / "old.nofa"
    torch.save(
        {
            "format": "nofa-avatar-model",
            "version": 1,
            "config": model.config,
            "state_dict": model.state_dict(),
        },
        legacy,
    )
    with pytest.warns(NofaFileWarning, match="nofa upgrade"):
        old = build_model(tiny_config(tmp_path, f"model.weights={legacy}"))
    assert torch.equal(old.generator.mapping.fc0.weight, model.generator.mapping.fc0.weight)


def test_random_teacher_renders_vary_in_space_and_between_latents():
    import copy

    from nofa.models import NOFAAvatar
    from nofa.train.teacher import make_random_teacher

    torch.manual_seed(0)
    plain = NOFAAvatar.from_preset("tiny")
    teacher = make_random_teacher(copy.deepcopy(plain), 16.0)
    assert plain.generator.w_avg.abs().sum() == 0 and teacher.generator.w_avg.abs().sum() > 0
    spread = {}
    for name, m in (("plain", plain), ("teacher", teacher)):
        b = SyntheticSource(m, truncation=1.0).batch(range(4))
        centre = (..., slice(16, 48), slice(16, 48))  # away from the border artefacts
        spread[name] = (
            b.image_s[centre].std((2, 3)).mean().item(),  # structure within an image
            (b.image_s - b.image_t)[centre].abs().mean().item(),  # changes with the view
            b.depth_s.std((2, 3)).mean().item(),
        )  # has a shape
    assert all(t > 5 * p for t, p in zip(spread["teacher"], spread["plain"])), spread
