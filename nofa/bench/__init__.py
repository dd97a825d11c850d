"""nofa's benchmark suite: every kernel op and the full render against pure PyTorch.

    from nofa.bench import SuiteConfig, run_and_write
    paths = run_and_write(SuiteConfig(device="cpu", quick=True), "bench_out")

`registry` defines what a case is, `cases/` lists them all explicitly (kernel ops, the
full render, the avatar pipeline, mesh extraction), `measure` holds the one timing and
memory probe, `worker` the measuring process, `suite` the planner/runner, `report` and
`plots` the output files. The CLI is `nofa bench`; `benchmarks/` keeps the results.
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
