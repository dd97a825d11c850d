"""The GPU check kit runs end to end on a machine without a GPU and says what it skipped."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nofa.bench.provenance import parse_header, strip_header

ROOT = Path(__file__).resolve().parents[1]


def _run_kit(script: str, tmp_path: Path) -> str:
    """tools/SCRIPT tmp_path/out, packing into tmp_path/pack; returns OUTDIR's summary.md."""
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "NOFA_COMMIT": "feedc0de",
        "NOFA_GPU_CHECK_PACK": str(tmp_path / "pack"),
    }
    res = subprocess.run(
        ["bash", str(ROOT / "tools" / script), str(tmp_path / "out")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return (tmp_path / "out" / "summary.md").read_text()


@pytest.mark.slow
@pytest.mark.skipif(
    torch.cuda.is_available(),
    reason="a GPU is visible: the kit runs its GPU steps (tools/gpu_check.sh)",
)
def test_gpu_check_without_gpu_reports_skips(tmp_path):
    summary = _run_kit("gpu_check.sh", tmp_path)
    assert "| build | ok |" in summary
    assert "| info | ok |" in summary
    assert "| cuda_tests_selection | ok |" in summary
    for step in (
        "cuda_tests",
        "check_cuda",
        "animate_fps",
        "bench_ops",
        "bench_render",
        "animate_fps_bf16",
        "animate_fps_torch",
        "animate_fps_torch_bf16",
        "profile",
    ):
        assert f"| {step} | skipped: " in summary, step
    assert "no CUDA GPU visible" in summary
    assert "- commit: feedc0de\n" in summary  # the caller's commit, not a copied tree's stale .git
    head = parse_header(summary)  # a summary copied into benchmarks/results/ says how it was made
    assert head["commit"] == "feedc0de" and "gpu_check.sh" in head["command"], head
    # the CUDA selection really collected tests, and each skipped with its reason
    log = (tmp_path / "out" / "cuda_tests_selection.log").read_text()
    assert " skipped" in log and "no CUDA GPU visible" in log
    # NOFA_GPU_CHECK_PACK: OUTDIR packed (as after the last step) and summary.md beside it.
    import tarfile

    assert (tmp_path / "pack" / "summary.md").read_text() == summary
    with tarfile.open(tmp_path / "pack" / "gpu_check.tgz") as tar:
        names = set(tar.getnames())
        assert {"out/summary.md", "out/build.log", "out/cuda_tests_selection.log"} <= names, names
        assert tar.extractfile("out/summary.md").read().decode() == summary
    assert sorted(p.name for p in (tmp_path / "pack").iterdir()) == [
        "gpu_check.tgz",
        "summary.md",
    ]  # no temp left


def test_gpu_check_packs_after_every_step(tmp_path):
    """A kit killed mid-run (the lender's time limit) has already packed every finished step."""
    script = (
        ROOT / "tools" / "gpu_steps.sh"
    ).read_text()  # shared by gpu_check.sh and gpu_sanitize.sh
    body = script.split("step() {", 1)[1].split("\n}", 1)[0]
    assert body.split("return $rc")[0].rstrip().splitlines()[-1].strip() == "pack", (
        "step() must pack before it returns"
    )


def test_gpu_check_nofa_command_lines_parse():
    """Every `nofa` command the kit runs on a GPU parses with this checkout's CLI: a renamed
    or missing flag would otherwise only show on a lent GPU machine."""
    import shlex

    from nofa.cli import build_parser

    text = (ROOT / "tools" / "gpu_check.sh").read_text().replace("\\\n", " ")
    lines = [
        ln.split("-m nofa.cli", 1)[1]
        for ln in text.splitlines()
        if "-m nofa.cli" in ln and "--help" not in ln
    ]
    assert len(lines) >= 8, lines
    parser = build_parser()
    for ln in lines:
        argv = shlex.split(ln.split("||")[0].replace('"$OUTDIR', '"/tmp/out'))
        args = parser.parse_args(argv)
        assert args.command in ("info", "check", "bench", "animate-bench", "profile"), argv


def test_gpu_check_refuses_a_pack_folder_inside_outdir(tmp_path):
    """The archive of OUTDIR must not be written into OUTDIR (tar would read its own output)."""
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "NOFA_GPU_CHECK_PACK": str(tmp_path / "out" / "pack"),
    }
    res = subprocess.run(
        ["bash", str(ROOT / "tools" / "gpu_check.sh"), str(tmp_path / "out")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 2
    assert "NOFA_GPU_CHECK_PACK must lie outside OUTDIR" in res.stderr
    assert not (tmp_path / "out" / "summary.md").exists()  # refused before any step ran


@pytest.mark.skipif(
    torch.cuda.is_available(),
    reason="a GPU is visible: the kit runs the sanitizer (tools/gpu_sanitize.sh)",
)
def test_gpu_sanitize_without_gpu_runs_the_workload_on_the_cpu(tmp_path):
    summary = _run_kit("gpu_sanitize.sh", tmp_path)
    head = parse_header(summary)  # the result header, then the kit's title
    assert head["command"].endswith("gpu_sanitize.sh " + str(tmp_path / "out")), head
    assert strip_header(summary).lstrip().startswith("# nofa CUDA sanitizer check")
    assert "| build | ok |" in summary and "| sanitize_workload_cpu | ok |" in summary
    for tool in ("memcheck", "racecheck", "synccheck"):
        assert f"| sanitize_{tool} | skipped: no CUDA GPU visible |" in summary
    log = (tmp_path / "out" / "sanitize_workload_cpu.log").read_text()
    assert "every call ran on the kernels" in log and "== deform_points" in log
    assert sorted(p.name for p in (tmp_path / "pack").iterdir()) == [
        "gpu_sanitize.tgz",
        "sanitize_summary.md",
    ]


def test_sanitize_workload_covers_every_op():
    """tools/sanitize_ops.py runs each public op's kernel (the sanitizer checks only what runs)."""
    import nofa.ops as ops

    text = (ROOT / "tools" / "sanitize_ops.py").read_text()
    for op in ops.OPS:
        assert f'"{op}"' in text, op
