"""nofa's measurement code: the benchmark suite (every kernel op, the full render, the avatar
pipeline and mesh extraction against pure PyTorch), per-kernel profiles, the animation
benchmark and the face measurements (docs/benchmarks.md).

    from nofa.bench import SuiteConfig, run_and_write
    paths = run_and_write(SuiteConfig(device="cpu", quick=True), "bench_out")

`registry` defines what a case is, `cases/` lists them all explicitly, `measure` holds the
one timing and memory probe, `worker` the measuring process, `suite` the planner/runner,
`report` and `plots` the output files (`nofa bench`); `profile` the per-kernel breakdown
(`nofa profile`); `animate` the animation throughput (`nofa animate-bench`); `faces/` the
camera and landmark measurements (`python -m nofa.bench.faces.<name>`); `environment` and
`provenance` the header every result file starts with. Nothing else in nofa imports this
package; `benchmarks/results/` keeps the published results.
"""

from __future__ import annotations

from pathlib import Path

from .cases import CASES, all_cases, get_case
from .registry import Case, Workload
from .suite import SuiteConfig, run_suite

__all__ = [
    "CASES",
    "Case",
    "SuiteConfig",
    "Workload",
    "all_cases",
    "get_case",
    "run_and_write",
    "run_suite",
]


def run_and_write(
    cfg: SuiteConfig, out: str | Path, command: list[str] | None = None
) -> dict[str, Path]:
    """Run the suite and write <stem>_results.md/.csv and <stem>_scaling.png into `out`;
    stem is the device ("cpu", "cuda"), with "_quick" appended for --quick runs so a smoke
    run never overwrites full results."""
    from . import environment, report

    env = environment.describe(cfg.device, command, cfg.threads)
    result = run_suite(cfg)
    return report.write_all(Path(out), result, env, cfg.device + ("_quick" if cfg.quick else ""))
