"""CPU proof that the video stages learn, tiny preset, procedural talking heads.

1. writes the procedural dataset of configs/deformation_tiny.toml (data.root) when absent
   (timed on its own: data preparation, not training);
2. `python -m nofa.train configs/deformation_tiny.toml` (stops itself after run.max_minutes,
   final held-out evaluation included): wall and process CPU time of the run are recorded;
3. `configs/hybrid_tiny.toml` and `configs/audio_tiny.toml`, each started from the
   deformation run's model.nofa-model, for a few minutes each;
4. writes benchmarks/results/train_video_cpu.md (held-out self-reenactment metrics at step 0
   and at the end, deformed vs the undeformed canonical render) and train_video_strip.png.

Strip rows: for each of the first four held-out clips, its reenactment target (frame 0 is
the source) with the largest jaw opening (beta[0], the procedural expression coefficient) —
a rule on the coefficients, not on the results. Columns: source, target, canonical render
(no deformation), prediction (deformed render).

    PYTHONPATH=. python benchmarks/train_video_proof.py            # everything
    PYTHONPATH=. python benchmarks/train_video_proof.py --report   # report from existing runs
"""

from __future__ import annotations

import argparse
import csv
import json
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
RUNS = {s: ROOT / f"outputs/train/{s}_tiny" for s in ("deformation", "hybrid", "audio")}
EXTRA = {
    "deformation": [],
    "hybrid": ["model.weights=outputs/train/deformation_tiny/model.nofa-model"],
    "audio": ["model.weights=outputs/train/deformation_tiny/model.nofa-model"],
}


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def prepare_data() -> dict:
    sys.path.insert(0, str(ROOT))
    from nofa.models import get_config
    from nofa.train import load_config
    from nofa.train.video_stages import ensure_dataset

    cfg = load_config(ROOT / "configs/deformation_tiny.toml")
    root = ROOT / cfg.data.root
    if root.is_dir():
        return {"root": str(cfg.data.root), "written": False}
    cfg.data.root = str(root)
    t0, c0 = time.monotonic(), time.process_time()
    ensure_dataset(cfg, get_config(cfg.model.preset)["image_size"])
    return {
        "root": str(cfg.data.root),
        "written": True,
        "wall": time.monotonic() - t0,
        "cpu": time.process_time() - c0,
    }


def run_stage(stage: str, extra: list[str]) -> dict:
    out = RUNS[stage]
    if out.exists():
        shutil.rmtree(out)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0, c0 = time.monotonic(), children_cpu()
    cmd = [
        sys.executable,
        "-m",
        "nofa.train",
        f"configs/{stage}_tiny.toml",
        "log.progress=false",
        *extra,
    ]
    subprocess.run(cmd, cwd=ROOT, env=env, check=True)
    timing = {
        "wall": time.monotonic() - t0,
        "cpu": children_cpu() - c0,
        "command": " ".join(["python -m nofa.train", *cmd[3:]]),
    }
    (out / "timing.json").write_text(json.dumps(timing, indent=1) + "\n")
    return timing


def read(stage: str) -> list[dict]:
    with open(RUNS[stage] / "logs" / "scalars.csv") as f:
        return [{k: float(v) for k, v in r.items() if v != ""} for r in csv.DictReader(f)]


def evals(rows: list[dict]) -> list[dict]:
    return [r for r in rows if "eval/deformed/psnr" in r]


@__import__("torch").no_grad()
def strip(path: Path) -> None:
    """Source, target, canonical, prediction for 4 held-out reenactment targets."""
    import torch
    from torchvision.utils import save_image

    from nofa.models import NOFAAvatar
    from nofa.train import load_config
    from nofa.train.forward import reconstruct
    from nofa.train.video_data import VideoDataset, VideoSource

    saved = sorted(
        (RUNS["deformation"] / "checkpoints").glob("step-*.toml")
    )  # the run's resolved config
    cfg = load_config(saved[-1] if saved else ROOT / "configs/deformation_tiny.toml")
    model = NOFAAvatar.load(RUNS["deformation"] / "model.nofa-model").eval()
    model.renderer.options = model.renderer.options.replace(deterministic=True)
    held = VideoDataset(ROOT / cfg.data.root, model.image_size, "heldout", cfg.data.heldout_clips)
    batches = VideoSource(held, cfg.run.seed).reenactment(cfg.eval.targets)[:4]
    rows = []
    for b in batches:
        i = int(b.beta_t[:, 0].argmax())
        b = b.slice(i, i + 1)
        vol, _ = reconstruct(model, b.image_s, b.camera_s, fine=True)
        canon = model.render(vol, b.camera_t)["image"]
        pred = model.render(vol, b.camera_t, b.alpha_t, b.beta_t)["image"]
        rows.append(torch.cat([b.image_s, b.image_t, canon, pred]))
    grid = (torch.cat(rows).clamp(-1, 1) + 1) / 2
    grid = torch.nn.functional.interpolate(grid, scale_factor=2, mode="nearest")
    save_image(grid, path, nrow=4, padding=2, pad_value=1.0)


@__import__("torch").no_grad()
def final_eval(stage: str) -> dict[str, float]:
    """Re-score the stage's model.nofa-model on its held-out reenactment set with the current code
    (adds eval/source_beta/* for runs logged before it existed)."""
    import torch

    from nofa.models import NOFAAvatar
    from nofa.train import load_config
    from nofa.train.evaluation import evaluate_reenactment
    from nofa.train.losses import LPIPSLoss, build_lpips
    from nofa.train.video_data import VideoDataset, VideoSource

    saved = sorted((RUNS[stage] / "checkpoints").glob("step-*.toml"))
    cfg = load_config(saved[-1])
    model = NOFAAvatar.load(RUNS[stage] / "model.nofa-model").eval()
    audio = stage == "audio"
    held = VideoDataset(
        ROOT / cfg.data.root, model.image_size, "heldout", cfg.data.heldout_clips, audio=audio
    )
    batches = VideoSource(held, cfg.run.seed).reenactment(cfg.eval.targets)
    lp = cfg.loss
    lpips = LPIPSLoss(
        build_lpips(lp.lpips_net, lp.lpips_backbone, lp.lpips_random_backbone, cfg.run.seed)
    )
    torch.set_num_threads(1)
    metrics, _ = evaluate_reenactment(
        model, batches, lpips, (lambda b: b.beta_audio_t) if audio else None
    )
    return metrics


def fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def header() -> str:
    """The result header (nofa.bench.provenance): this command, commit, machine, date; no
    repeats (each stage is one training run)."""
    from nofa.bench.environment import describe
    from nofa.bench.provenance import header_from_environment

    command = ["PYTHONPATH=.", "python", "benchmarks/train_video_proof.py", *sys.argv[1:]]
    return header_from_environment(describe("cpu", command, threads=1), None)


def report(prep: dict) -> str:
    timing = {
        s: json.loads((RUNS[s] / "timing.json").read_text())
        for s in RUNS
        if (RUNS[s] / "timing.json").is_file()
    }
    lines = ["# Video stages on CPU: tiny preset, procedural talking heads", ""]
    lines += [
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs shared with other jobs; "
        "`run.threads = 1`. "
        "Wall time and the training process's CPU time (user + system, "
        "`getrusage(RUSAGE_CHILDREN)`) are "
        "both given: the wall time depends on the load of the shared machine.",
        "",
    ]
    lines += [
        "Reproduce: `PYTHONPATH=. python benchmarks/train_video_proof.py` (writes the dataset of "
        "configs/deformation_tiny.toml when absent, runs the three tiny configs, writes this "
        "file).",
        "",
    ]
    if prep.get("written"):
        lines += [
            f"Dataset: `{prep['root']}` written by nofa.train.procedural_heads in "
            f"{prep['wall']:.0f} s wall "
            f"({prep['cpu']:.0f} s CPU), before training.",
            "",
        ]
    lines += [
        "Held-out self-reenactment (clips never trained on; source = frame 0, targets = "
        "`eval.targets` later frames of each held-out clip): the source frame's fine volume "
        "rendered from the "
        "target camera with the target's (alpha, beta) (**deformed**), and without deformation "
        "(**canonical**, the baseline). PSNR in dB (images in [-1, 1]); SSIM scikit-image; LPIPS "
        "with the "
        "random AlexNet trunk the tiny configs train with (relative only). `_mouth`: the target's "
        "mouth box "
        "(nofa/train/boxes.py) cropped from both images at 64 x 64.",
        "",
    ]
    keys = ["psnr", "psnr_mouth", "ssim", "ssim_mouth", "lpips", "lpips_mouth"]
    for stage in RUNS:
        if stage not in timing:
            continue
        rows = evals(read(stage))
        t = timing[stage]
        steps = int(max(r["step"] for r in read(stage)))
        lines += [
            f"## {stage} ({steps} steps, {t['wall']:.0f} s wall, {t['cpu']:.0f} s CPU)",
            "",
            f"`{t['command']}`",
            "",
        ]
        lines += ["| step | render | " + " | ".join(keys) + " |", "|---|---|" + "---|" * len(keys)]
        for r in (rows[0], rows[-1]):
            for kind in ("canonical", "deformed"):
                lines.append(
                    f"| {int(r['step'])} | {kind} | "
                    + " | ".join(fmt(r.get(f"eval/{kind}/{k}")) for k in keys)
                    + " |"
                )
        fin = final_eval(stage)
        lines += [
            "",
            "The final model re-scored (same held-out set; `source_beta`: deformed with the "
            "target's alpha "
            "but the source frame's own expression, i.e. what the field does without the target's "
            "expression):",
            "",
            "| render | " + " | ".join(keys) + " |",
            "|---|" + "---|" * len(keys),
        ]
        for kind in ("canonical", "source_beta", "deformed"):
            lines.append(
                f"| {kind} | " + " | ".join(fmt(fin.get(f"eval/{kind}/{k}")) for k in keys) + " |"
            )
        de = fin["eval/deformed/psnr_mouth"] - fin["eval/source_beta/psnr_mouth"]
        lines += [
            "",
            f"Expression-specific part of the mouth-box gain (deformed - source_beta): **{de:+.2f} "
            "dB**.",
        ]
        end = rows[-1]
        dm = end["eval/deformed/psnr_mouth"] - end["eval/canonical/psnr_mouth"]
        di = end["eval/deformed/psnr"] - end["eval/canonical/psnr"]
        lines += [
            "",
            f"End: mouth-box PSNR deformed - canonical = **{dm:+.2f} dB**, whole image **{di:+.2f} "
            "dB**.",
        ]
        if stage == "deformation":
            met = dm >= 3 and di > 0 and t["wall"] <= 20 * 60
            lines += [
                "Target (mouth box >= +3 dB, whole image improves, <= 20 min): "
                f"**{'met' if met else 'not met'}**."
            ]
        lines.append("")
    if (RESULTS / "train_video_attempts.md").is_file():
        lines += [
            "Every attempt made (settings, numbers, what was changed and why): "
            "[train_video_attempts.md](train_video_attempts.md).",
            "",
        ]
    lines += [
        "## Strip",
        "",
        "Rows: the held-out target with the largest jaw opening (beta[0]) of each of the "
        "first four held-out clips. Columns: source (frame 0), target, canonical render (no "
        "deformation), "
        "prediction (deformed).",
        "",
        "![strip](train_video_strip.png)",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--report", action="store_true", help="only write the report from existing runs")
    p.add_argument("--stages", default="deformation,hybrid,audio")
    args = p.parse_args()
    prep_file = ROOT / "outputs/train/video_proof_data.json"
    if not args.report:
        prep = prepare_data()
        if (
            prep["written"] or not prep_file.is_file()
        ):  # keep the timing of the run that wrote the data
            prep_file.parent.mkdir(parents=True, exist_ok=True)
            prep_file.write_text(json.dumps(prep) + "\n")
        for stage in args.stages.split(","):
            run_stage(stage, EXTRA[stage])
    prep = json.loads(prep_file.read_text()) if prep_file.is_file() else {}
    RESULTS.mkdir(parents=True, exist_ok=True)
    strip(RESULTS / "train_video_strip.png")
    (RESULTS / "train_video_cpu.md").write_text(header() + "\n" + report(prep))
    print((RESULTS / "train_video_cpu.md").read_text())


if __name__ == "__main__":
    main()
