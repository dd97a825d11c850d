"""CPU proof that the `encoder` and `detail` stages learn, tiny preset.

Runs `python -m nofa.train configs/encoder_tiny.toml` then `configs/detail_tiny.toml` (each
stops itself after run.max_minutes = 18 wall-clock minutes, final held-out evaluation
included), then writes benchmarks/results/train_cpu.md, train_cpu.png (loss curves and
held-out metrics) and the last held-out image grids.

    PYTHONPATH=. python benchmarks/train_proof.py              # run both stages + report
    PYTHONPATH=. python benchmarks/train_proof.py --report     # report from existing runs
    # as committed: step timings (benchmarks/train_step.py JSON lines) and the attempts appended
    # (train_cpu.md starts with the header of nofa.bench.provenance: command, commit, machine)
    PYTHONPATH=. python benchmarks/train_proof.py --report --throughput steps.jsonl \
        --notes benchmarks/results/train_cpu_attempts.md
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
RUNS = {
    "encoder": ROOT / "outputs/train/encoder_tiny",
    "detail": ROOT / "outputs/train/detail_tiny",
}


def _child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_stage(stage: str) -> float:
    """Run one stage; writes its wall time, the process CPU time (user + system of the
    training process) and the machine's load averages at its end next to the run."""
    out = RUNS[stage]
    if out.exists():
        shutil.rmtree(out)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0, c0 = time.monotonic(), _child_cpu()
    subprocess.run(
        [sys.executable, "-m", "nofa.train", f"configs/{stage}_tiny.toml", "log.progress=false"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    wall, cpu = time.monotonic() - t0, _child_cpu() - c0
    (out / "wall_seconds.txt").write_text(f"{wall:.1f}\n")
    (out / "cpu_seconds.txt").write_text(f"{cpu:.1f}\n")
    (out / "load_average.txt").write_text(" ".join(f"{x:.1f}" for x in os.getloadavg()) + "\n")
    return wall


def read(stage: str) -> list[dict]:
    with open(RUNS[stage] / "logs" / "scalars.csv") as f:
        return [{k: float(v) for k, v in r.items() if v != ""} for r in csv.DictReader(f)]


def evals(rows: list[dict]) -> list[dict]:
    return [r for r in rows if any(k.startswith("eval/") for k in r)]


def plot(enc: list[dict], det: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 3, figsize=(15, 4))
    for rows, name in ((enc, "encoder"), (det, "detail")):
        tr = [r for r in rows if "loss/total" in r]
        k = 10  # moving average over 10 logged rows (the batches of 4 are noisy)
        vals = [r["loss/total"] for r in tr]
        avg = [
            sum(vals[max(0, i - k + 1) : i + 1]) / len(vals[max(0, i - k + 1) : i + 1])
            for i in range(len(vals))
        ]
        (line,) = ax[0].plot([r["step"] for r in tr], vals, alpha=0.25)
        ax[0].plot(
            [r["step"] for r in tr],
            avg,
            color=line.get_color(),
            label=f"{name}: total (moving avg)",
        )
    ax[0].set(title="training loss (batch 4)", xlabel="step", yscale="log")
    ax[0].legend()
    e = evals(enc)
    s = [r["step"] for r in e]
    ax[1].plot(s, [r["eval/coarse/psnr_novel"] for r in e], label="V_c novel view")
    ax[1].plot(s, [r["eval/coarse/psnr_source"] for r in e], label="V_c source view")
    ax[1].plot(s, [r["eval/wavg/psnr_novel"] for r in e], "--", label="w_avg baseline, novel view")
    ax[1].set(title="encoder stage: held-out PSNR (dB)", xlabel="step")
    ax[1].legend()
    d = evals(det)
    s = [r["step"] for r in d]
    ax[2].plot(s, [r["eval/fine/psnr_source"] for r in d], label="V_e (fine) source view")
    ax[2].plot(s, [r["eval/coarse/psnr_source"] for r in d], "--", label="V_c (coarse) source view")
    ax[2].plot(s, [r["eval/fine/psnr_novel"] for r in d], label="V_e novel view")
    ax[2].plot(s, [r["eval/coarse/psnr_novel"] for r in d], "--", label="V_c novel view")
    ax[2].set(title="detail stage: held-out PSNR (dB)", xlabel="step")
    ax[2].legend(fontsize="small", loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def _run_config(stage: str) -> dict:
    import tomllib

    last = sorted((RUNS[stage] / "checkpoints").glob("step-*.toml"))[-1]
    return tomllib.loads(last.read_text())


def _gain_summary(rows: list[dict]) -> str:
    """The detail target is scored at the last evaluation; how steady the gain was before it."""
    g = [(int(r["step"]), r["eval/fine/psnr_source"] - r["eval/coarse/psnr_source"]) for r in rows]
    last = g[-10:]
    best = max(g, key=lambda x: x[1])
    return (
        f"Detail stage, source-view PSNR gain of V_e over V_c: {g[-1][1]:+.2f} dB at the last "
        "evaluation (step "
        f"{g[-1][0]}, the number scored above); mean of the last {len(last)} evaluations (steps "
        f"{last[0][0]}-"
        f"{last[-1][0]}) {sum(x for _, x in last) / len(last):+.2f} dB; highest {best[1]:+.2f} dB "
        f"(step {best[0]}). "
        f"The final model is the last one, not the best evaluation."
    )


def _cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def header(throughput: list[dict]) -> str:
    """The result header (nofa.bench.provenance): this command, commit, machine, date; the
    repeats are the timed steps of the throughput rows (n/a without them: a training run
    is one run)."""
    from nofa.bench.environment import describe
    from nofa.bench.provenance import header_from_environment

    threads = {_run_config(s)["run"].get("threads") for s in RUNS}
    env = describe(
        "cpu",
        ["PYTHONPATH=.", "python", "benchmarks/train_proof.py", *sys.argv[1:]],
        threads=threads.pop() if len(threads) == 1 else None,
    )
    steps = [t.get("steps") for t in throughput]
    return header_from_environment(env, min(steps) if steps and None not in steps else None)


def report(throughput: list[dict]) -> str:
    enc, det = read("encoder"), read("detail")
    e0, e1 = evals(enc)[0], evals(enc)[-1]
    d0, d1 = evals(det)[0], evals(det)[-1]

    def note(stage: str, name: str) -> str:
        f = RUNS[stage] / name
        return f.read_text().strip() if f.exists() else "?"

    wall = {s: note(s, "wall_seconds.txt") for s in RUNS}
    cpu = {s: note(s, "cpu_seconds.txt") for s in RUNS}
    load = {s: note(s, "load_average.txt") for s in RUNS}
    conf = {s: _run_config(s) for s in RUNS}

    def optim(s: str) -> str:
        o, r = conf[s]["optim"], conf[s]["run"]
        sched = (
            "constant"
            if o.get("decay", "none") == "none"
            else f"{o['decay']} decay to {o['final_lr']:g} x lr at step {r['steps']}"
        )
        return (
            f"{s}: lr {o['lr']:g}, {o['warmup_steps']} warm-up steps, then {sched}; batch "
            f"{conf[s]['data']['batch_size']}; run.steps {r['steps']}, run.max_minutes "
            f"{r['max_minutes']:g}"
        )

    ratio = e1["eval/coarse/l2_novel"] / e0["eval/coarse/l2_novel"]
    gain = e1["eval/coarse/psnr_novel"] - e1["eval/wavg/psnr_novel"]
    dgain = d1["eval/fine/psnr_source"] - d1["eval/coarse/psnr_source"]
    ok = lambda c: "**met**" if c else "**not met**"  # noqa: E731
    lines = [
        "# Training proof on CPU: tiny preset, synthetic data from a frozen teacher",
        "",
        f"Machine: {_cpu_model()}, {os.cpu_count()} CPUs, shared with other jobs (load averages "
        "over 1/5/15 min "
        f"at the end of each stage: encoder {load['encoder']}, detail {load['detail']}); torch "
        "threads 1 per run "
        "(`run.threads = 1`). Wall time is what `run.max_minutes` limits; CPU time is the training "
        "process's user + "
        "system time (on a busy machine the process gets a fraction of a core).",
        "Reproduce: `PYTHONPATH=. python benchmarks/train_proof.py` (runs `python -m nofa.train "
        "configs/encoder_tiny.toml`, then `configs/detail_tiny.toml`, and writes this file).",
        "",
        "Teacher: a randomly initialised tiny generator (seed 0) renders nearly flat colour "
        "fields, so "
        "`model.teacher_gain = 16` scales its toRGB layers x16 (tri-plane std ~17) and sets w_avg "
        "to the mean W of "
        "4096 latents (nofa/train/teacher.py); its renders then have spatial structure that "
        "changes with latent and "
        "view. Truncation 1.0, cameras yaw ~ N(0, 0.3 rad), pitch ~ N(0, 0.155 rad) clipped at 2 "
        "sigma. LPIPS: "
        "randomly initialised AlexNet trunk with the package's linear heads (no ImageNet weights "
        "on this machine), "
        "on the SR images only (`loss.lpips_raw = false`); L2 on SR and raw images; depth L2 "
        "weight 2. Adam, "
        f"{optim('encoder')}; {optim('detail')}. Held-out: 16 samples from a stream never used for "
        "training.",
        "",
        "| stage | target | step 0 | end | result |",
        "|---|---|---|---|---|",
        f"| encoder ({int(e1['step'])} steps, {wall['encoder']} s wall, {cpu['encoder']} s CPU) | "
        "held-out novel-view L2 <= 50% of step 0 | "
        f"{e0['eval/coarse/l2_novel']:.4f} | {e1['eval/coarse/l2_novel']:.4f} ({100 * ratio:.0f}%) "
        f"| {ok(ratio <= 0.5)} |",
        "| encoder | novel-view PSNR >= w_avg baseline + 2 dB | baseline "
        f"{e1['eval/wavg/psnr_novel']:.2f} dB | "
        f"{e1['eval/coarse/psnr_novel']:.2f} dB (+{gain:.2f}) | {ok(gain >= 2)} |",
        f"| detail ({int(d1['step'])} steps, {wall['detail']} s wall, {cpu['detail']} s CPU) | "
        "source-view PSNR of V_e >= V_c + 1 dB | "
        f"V_e {d0['eval/fine/psnr_source']:.2f} / V_c {d0['eval/coarse/psnr_source']:.2f} dB | "
        f"V_e {d1['eval/fine/psnr_source']:.2f} / V_c {d1['eval/coarse/psnr_source']:.2f} dB "
        f"(+{dgain:.2f}) | "
        f"{ok(dgain >= 1)} |",
        "",
        _gain_summary(evals(det)),
        "",
        "Other held-out metrics at the end (mean over 16 samples):",
        "",
        "| | PSNR source | PSNR novel | LPIPS source | LPIPS novel | depth abs err source | depth "
        "abs err novel |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, r, kind in (
        ("w_avg baseline", e1, "wavg"),
        ("encoder end: V_c", e1, "coarse"),
        ("detail end: V_c", d1, "coarse"),
        ("detail end: V_e", d1, "fine"),
    ):
        lines.append(
            f"| {label} | "
            + " | ".join(
                f"{r[f'eval/{kind}/{m}_{v}']:.3f}"
                for m in ("psnr", "lpips", "depth")
                for v in ("source", "novel")
            )
            + " |"
        )
    lines += [
        "",
        "![curves](train_cpu.png)",
        "",
        "Last held-out grids (columns: source input, other-view target, prediction, target depth, "
        "predicted "
        "depth; the detail grid adds the coarse prediction before the fine one):",
        "",
        "![encoder](train_encoder_eval_grid.png) ![detail](train_detail_eval_grid.png)",
        "",
    ]
    if throughput:
        lines += [
            "## One training step, this CPU",
            "",
            "`PYTHONPATH=. python benchmarks/train_step.py --preset P --batch B --threads 1`; best "
            "of the timed steps, "
            "on this machine while shared (load: see the notes below). `saved for backward`: bytes "
            "of the tensors autograd keeps for the backward "
            "pass (unique storages).",
            "",
            "| preset | stage | batch | threads | chunk checkpointing | step (s) | images/s | "
            "saved for backward (MB) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for t in throughput:
            lines.append(
                f"| {t['preset']} | {t['stage']} | {t['batch']} | {t['threads']} | "
                f"{t['chunk_checkpoint']} | {t['step_s']:.2f} "
                f"| {t['images_per_s']:.3f} | {t['saved_for_backward_MB']:.0f} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--report", action="store_true", help="only write the report from existing runs")
    p.add_argument("--stages", nargs="*", default=["encoder", "detail"])
    p.add_argument(
        "--throughput", default="", help="JSON lines from benchmarks/train_step.py to include"
    )
    p.add_argument(
        "--notes", default="", help="a markdown file appended to the report (earlier attempts etc.)"
    )
    a = p.parse_args()
    if not a.report:
        for stage in a.stages:
            print(f"{stage}: {run_stage(stage):.0f} s")
    import json

    from PIL import Image

    from nofa.bench.provenance import strip_header

    tp = [json.loads(line) for line in open(a.throughput)] if a.throughput else []
    notes = Path(a.notes).read_text() if a.notes else ""
    RESULTS.mkdir(parents=True, exist_ok=True)
    plot(read("encoder"), read("detail"), RESULTS / "train_cpu.png")
    for stage in RUNS:
        Image.open(RUNS[stage] / "images" / "eval-latest.png").save(
            RESULTS / f"train_{stage}_eval_grid.png", optimize=True
        )
    (RESULTS / "train_cpu.md").write_text(header(tp) + "\n" + report(tp) + strip_header(notes))
    print((RESULTS / "train_cpu.md").read_text())


if __name__ == "__main__":
    main()
