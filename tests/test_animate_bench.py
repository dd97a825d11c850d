"""`nofa animate-bench` (nofa/bench/animate.py): the table, its result header, autocast.
No timing assertions."""

from __future__ import annotations

import pytest
import torch

from nofa.bench import animate as animate_bench
from nofa.bench.provenance import parse_header, repeats_value
from nofa.cli import main


def test_animate_bench_command(tmp_path):
    argv = ["animate-bench", "--preset", "tiny", "--size", "64", "--frames", "2"]
    argv += ["--warmup", "1", "--long", "4", "--out", str(tmp_path), "--no-progress"]
    assert main(argv) == 0
    md = (tmp_path / "animate_bench.md").read_text()
    assert "| tiny | 64² | 16² |" in md and "Long drive" in md and "frames/s" in md
    assert "| cpu | float32 |" in md
    head = parse_header(md)
    assert head["command"].startswith("nofa ")
    assert repeats_value(head) == 2  # the measured frames behind frames/s


def test_animate_bench_autocast_runs_the_frames_in_that_dtype(monkeypatch):
    from nofa.models.animatable import AnimatableAvatar

    seen = []
    orig_render = AnimatableAvatar.render

    def spy(self, *a, **k):
        seen.append(torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None)
        return orig_render(self, *a, **k)

    monkeypatch.setattr(AnimatableAvatar, "render", spy)
    res = animate_bench.run_animate_bench(
        "tiny", 64, frames=2, warmup=1, progress=False, autocast="bf16"
    )
    assert res["precision"] == "bf16 autocast" and res["fps"] > 0
    assert seen and set(seen) == {torch.bfloat16}
    with pytest.raises(ValueError, match="autocast"):
        animate_bench.run_animate_bench("tiny", 64, frames=1, autocast="fp8")


def test_pipelines_do_not_import_bench():
    # Layering: bench measures the pipelines, never the other way round.
    import ast
    from pathlib import Path

    import nofa.pipelines

    root = Path(nofa.pipelines.__file__).parent
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                name = "." * node.level + (node.module or "")
                assert "bench" not in name.split("."), f"{path} imports {name}"
            elif isinstance(node, ast.Import):
                assert not any("nofa.bench" in a.name for a in node.names), path
