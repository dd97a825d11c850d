"""What both training proofs share: running one stage of one seed, the result header and the
table of a figure over seeds judged by the mean - 2·sd rule (nofa.bench.seeds)."""

from __future__ import annotations

import csv
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
PROOF = ROOT / "outputs" / "train" / "proof"


def run_dir(seed: int, stage: str) -> Path:
    return PROOF / f"seed{seed}" / stage


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def train(config: str, seed: int, stage: str, extra: list[str]) -> dict:
    """`python -m nofa.train CONFIG` for one seed into run_dir(seed, stage), fresh. No wall-clock
    limit (run.max_minutes = 0): every seed runs the configured steps whatever the machine's
    load. Writes timing.json (wall, process CPU, the command) beside the run."""
    out = run_dir(seed, stage)
    if out.exists():
        shutil.rmtree(out)
    args = [
        config,
        "log.progress=false",
        f"run.seed={seed}",
        f"run.out_dir={out.relative_to(ROOT)}",
        "run.max_minutes=0",
        *extra,
    ]
    t0, c0 = time.monotonic(), _children_cpu()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-m", "nofa.train", *args], cwd=ROOT, env=env, check=True)
    timing = {
        "wall": time.monotonic() - t0,
        "cpu": _children_cpu() - c0,
        "command": " ".join(["python -m nofa.train", *args]),
    }
    (out / "timing.json").write_text(json.dumps(timing, indent=1) + "\n")
    return timing


def timing(seed: int, stage: str) -> dict:
    return json.loads((run_dir(seed, stage) / "timing.json").read_text())


def scalars(seed: int, stage: str) -> list[dict]:
    with open(run_dir(seed, stage) / "logs" / "scalars.csv") as f:
        return [{k: float(v) for k, v in r.items() if v != ""} for r in csv.DictReader(f)]


def run_config(seed: int, stage: str) -> dict:
    import tomllib

    last = sorted((run_dir(seed, stage) / "checkpoints").glob("step-*.toml"))[-1]
    return tomllib.loads(last.read_text())


def header(script: str, argv: list[str]) -> str:
    """The result header (nofa.bench.provenance): command, commit, machine, date; repeats n/a
    (each seed is one training run; the spread over seeds is in the tables)."""
    from nofa.bench.environment import describe
    from nofa.bench.provenance import header_from_environment

    env = describe("cpu", ["PYTHONPATH=.", "python", script, *argv], threads=1)
    return header_from_environment(env, None)


def seed_rows(figures: list[tuple[str, list[float], float | None, bool, bool]]) -> list[str]:
    """Markdown rows `| figure | seed values | mean ± sd | target | verdict |` for (name, values
    per seed, target or None, higher is better, signed)."""
    from nofa.bench.seeds import summarise

    out = [
        "| figure (test set) | per seed | mean ± sd | target | result |",
        "|---|---|---|---|---|",
    ]
    for name, vals, target, higher, signed in figures:
        s = summarise(vals, target, higher)
        fmt = "{:+.2f}" if signed else "{:.2f}"
        per = " / ".join(fmt.format(v) for v in vals)
        tgt = "-" if target is None else (">= " if higher else "<= ") + fmt.format(target)
        out.append(f"| {name} | {per} | {s.text(signed=signed)} | {tgt} | {s.verdict()} |")
    return out
