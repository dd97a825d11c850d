"""Exact resume: a run killed with SIGKILL and resumed ends with the same parameters as an
uninterrupted run; SIGTERM stops a run with a checkpoint."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from nofa.train import load_config
from nofa.train.checkpoint import latest_checkpoint, load_training_checkpoint
from nofa.train.trainer import train

ROOT = Path(__file__).resolve().parents[1]
# stochastic rendering on purpose: the resumed run must restore the RNG stream too
ARGS = [
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
    "checkpoint.every=2",
    "checkpoint.keep=2",
    "run.steps=10",
    "run.threads=1",
    "optim.warmup_steps=3",
]


def _start(out: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out.mkdir(parents=True)
    (out.parent / "c.toml").write_text('[run]\nstage = "encoder"\n')
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "nofa.train",
            str(out.parent / "c.toml"),
            *ARGS,
            f"run.out_dir={out}",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_for_checkpoint(proc: subprocess.Popen, folder: Path, timeout: float = 300) -> Path:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        path = latest_checkpoint(folder)
        if path is not None:
            return path
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.05)
    raise TimeoutError("no checkpoint appeared")


def _params(out: Path) -> dict:
    return load_training_checkpoint(latest_checkpoint(out / "checkpoints"))["model"]


def test_kill9_then_resume_matches_uninterrupted_run(tmp_path):
    ref = load_config(None, [*ARGS, f"run.out_dir={tmp_path / 'ref'}"])
    assert train(ref) == 0

    out = tmp_path / "killed"
    proc = _start(out)
    _wait_for_checkpoint(proc, out / "checkpoints")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    killed = load_training_checkpoint(latest_checkpoint(out / "checkpoints"))
    killed_at = killed["step"]
    assert killed_at < 10

    resumed = load_config(None, [*ARGS, f"run.out_dir={out}"])
    assert train(resumed, resume=True) == 0
    a, b = _params(tmp_path / "ref"), _params(out)
    assert load_training_checkpoint(latest_checkpoint(out / "checkpoints"))["step"] == 10
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=1e-6, msg=k)
    # and training did move the parameters after the kill (the comparison is not vacuous)
    assert any(not torch.equal(killed["model"][k], a[k]) for k in a if k.startswith("encoder."))


def test_sigterm_stops_with_checkpoint(tmp_path):
    out = tmp_path / "term"
    proc = _start(out)
    _wait_for_checkpoint(proc, out / "checkpoints")
    proc.send_signal(signal.SIGTERM)
    text, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, text
    if (
        "stopped by signal" in text
    ):  # the usual case; a run that had already finished ends at step 10
        step = int(text.split("stopped by signal at step ")[1].split(";")[0])
        assert load_training_checkpoint(latest_checkpoint(out / "checkpoints"))["step"] == step < 10
