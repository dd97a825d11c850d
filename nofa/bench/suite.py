"""Plans the benchmark jobs, runs them in worker processes and collects result rows.

Every (case, size, backend) is a job; the kernels and torch jobs of one size run in one worker
process (a
compile job in its own, under `compile_timeout_s`), one after another, never two at once.
A row is produced for every case x size x mode x backend, measured or not: a backend that
cannot run says why ("not available in this build", "no compiled kernel", "skipped").
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .. import ops
from . import measure
from .cases import all_cases
from .registry import MODES, Case
from .worker import RESULT_TAG

BACKENDS = ("kernels", "torch", "compile")


@dataclass
class SuiteConfig:
    device: str = "cpu"
    quick: bool = False
    compile: bool | None = None  # None: on for full runs, off for --quick
    cases: list[str] | None = None
    sweeps: bool = True
    threads: int | None = None
    warmup: int = 2
    budget_s: float | None = None  # per measurement; None: 0.05 s quick, 2 s full
    min_repeats: int | None = None  # timed repeats per median; None: 3 quick, 5 full
    max_repeats: int = 50
    compile_timeout_s: float = 300.0
    worker_timeout_s: float = 3600.0
    log: callable = field(default=print, repr=False)

    @property
    def plan(self) -> str:
        return "quick" if self.quick else ("cuda" if self.device == "cuda" else "cpu")

    @property
    def repeats(self) -> int:
        """The fewest timed repeats behind a median."""
        if self.min_repeats is not None:
            return self.min_repeats
        return 3 if self.quick else 5

    @property
    def use_compile(self) -> bool:
        return (not self.quick) if self.compile is None else self.compile


def _row(
    case: str,
    suite: str,
    index: int,
    params: dict,
    mode: str,
    backend: str,
    status: str,
    reason: str = "",
) -> dict:
    return {
        "suite": suite,
        "case": case,
        "index": index,
        "params": params,
        "mode": mode,
        "backend": backend,
        "status": status,
        "reason": reason,
    }


def _kernel_gap(case: Case, device: str) -> str | None:
    missing = [op for op in case.ops if not ops.kernels_available(device, op)]
    if not missing:
        return None
    return f"no compiled {', '.join(missing)} kernel for {device} in this build"


def plan_jobs(cfg: SuiteConfig) -> tuple[list[dict], list[dict]]:
    """(jobs to run, rows decided without running: unavailable cases/backends, skips)."""
    jobs, fixed = [], []
    method = measure.CUDA_ALLOCATOR if cfg.device == "cuda" else measure.cpu_memory_method()
    budget = cfg.budget_s if cfg.budget_s is not None else (0.05 if cfg.quick else 2.0)
    selected = [c for c in all_cases() if not cfg.cases or c.name in cfg.cases]
    for case in selected:
        missing = case.unavailable()
        suites = ["headline"] + ([s for s in case.sizes if s != "headline"] if cfg.sweeps else [])
        for suite in suites:
            for index, params in enumerate(case.sizes[suite].get(cfg.plan, [])):
                for backend in BACKENDS:
                    if backend == "compile" and suite != "headline":
                        continue  # one compile per shape: headline sizes only
                    why = None
                    if missing:
                        why = f"not available in this build: {missing}"
                    elif backend == "kernels":
                        why = _kernel_gap(case, cfg.device)
                    elif backend == "compile" and not case.compile:
                        why = "torch.compile not attempted for this case (see docs/benchmarks.md)"
                    elif backend == "compile" and not cfg.use_compile:
                        why = "skipped (--quick or --no-compile)"
                    elif backend == "compile" and index and cfg.plan == "cpu":
                        why = (
                            "compiled at the first headline size only on a CPU (compiling takes "
                            "minutes)"
                        )
                    fixed += [
                        _row(
                            case.name,
                            suite,
                            index,
                            params,
                            m,
                            backend,
                            "n/a",
                            "forward only (no gradients in this case)",
                        )
                        for m in MODES
                        if m not in case.modes
                    ]
                    if why:
                        fixed += [
                            _row(case.name, suite, index, params, m, backend, "n/a", why)
                            for m in case.modes
                        ]
                        continue
                    jobs.append(
                        {
                            "id": len(jobs),
                            "suite": suite,
                            "index": index,
                            "case": case.name,
                            "backend": backend,
                            "device": cfg.device,
                            "params": params,
                            "modes": list(case.modes),
                            "warmup": cfg.warmup,
                            "budget_s": budget,
                            "min_repeats": cfg.repeats,
                            "max_repeats": cfg.max_repeats,
                            "memory_method": method,
                            "threads": cfg.threads,
                        }
                    )
    return jobs, fixed


def _groups(jobs: list[dict], cfg: SuiteConfig) -> list[tuple[list[dict], float]]:
    """Worker batches with their time limits."""
    fresh = any(j["memory_method"] == measure.FRESH_PROCESS for j in jobs)
    groups: list[tuple[list[dict], float]] = []
    if fresh:  # memory from each process's first call: one process per job and mode
        for backend in ("kernels", "torch"):
            batch = [j for j in jobs if j["backend"] == backend]
            groups += [
                ([{**j, "modes": [m]}], cfg.worker_timeout_s) for j in batch for m in j["modes"]
            ]
    else:
        # The kernels and torch runs of one problem size share a worker and run back to
        # back, so a change of load on a shared machine hits both sides of a ratio alike
        # (one worker per backend measured them minutes apart).
        # A --quick run (a smoke test of the machinery) keeps one worker per case: process
        # start-up would otherwise dominate it.
        sizes: dict[tuple, list[dict]] = {}
        for j in jobs:
            if j["backend"] in ("kernels", "torch"):
                key = (j["case"],) if cfg.quick else (j["case"], j["suite"], j["index"])
                sizes.setdefault(key, []).append(j)
        groups += [(batch, cfg.worker_timeout_s) for batch in sizes.values()]
    groups += [([j], cfg.compile_timeout_s) for j in jobs if j["backend"] == "compile"]
    return groups


def _worker_env() -> dict:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])  # the nofa this process imported wins
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def run_worker(batch: list[dict], timeout_s: float, log=print) -> list[dict]:
    """Run one worker process; rows for jobs it never reported say why."""
    rows: list[dict] = []
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "nofa.bench.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env=_worker_env(),
        )
        timed_out = threading.Event()

        def kill():
            timed_out.set()
            proc.kill()

        timer = threading.Timer(timeout_s, kill)
        timer.start()
        try:
            proc.stdin.write(json.dumps(batch))
            proc.stdin.close()
            for line in proc.stdout:
                if line.startswith(RESULT_TAG):
                    row = json.loads(line[len(RESULT_TAG) :])
                    rows.append(row)
                    log(_progress(row))
            proc.wait()
        finally:
            timer.cancel()
        err.seek(0)
        tail = " | ".join(err.read().strip().splitlines()[-3:])
    done = {(r["id"], r["mode"]) for r in rows}
    for job in batch:
        for mode in job["modes"]:
            if (job["id"], mode) in done:
                continue
            if timed_out.is_set():
                status, why = "n/a", f"timed out after {timeout_s:.0f} s"
            else:
                status, why = "error", f"worker exited with code {proc.returncode}: {tail[-300:]}"
            if job["backend"] == "compile" and timed_out.is_set():
                why = f"torch.compile too slow here: {why}"
            rows.append(
                {
                    "id": job["id"],
                    "case": job["case"],
                    "backend": job["backend"],
                    "mode": mode,
                    "status": status,
                    "reason": why,
                }
            )
            log(_progress(rows[-1]))
    return rows


def _progress(row: dict) -> str:
    what = f"{row['case']:<16} {row['backend']:<8} {row['mode']:<17} {row.get('shape', '')}"
    if row.get("status") == "ok":
        mem = row.get("peak_bytes")
        mem_s = f"{mem / 2**20:9.1f} MiB" if mem is not None else "      n/a"
        return f"  {what:<90} {row['median_ms']:10.3f} ms {mem_s}"
    return f"  {what:<90} {row.get('status')}: {row.get('reason', '')}"


def run_suite(cfg: SuiteConfig) -> dict:
    """Run everything the config asks for. Returns {"rows": [...], "copy_bandwidth": ...}."""
    jobs, fixed = plan_jobs(cfg)
    by_id = {j["id"]: j for j in jobs}
    rows = list(fixed)
    for batch, limit in _groups(jobs, cfg):
        for r in run_worker(batch, limit, cfg.log):
            job = by_id[r.pop("id")]
            rows.append(
                {**r, "suite": job["suite"], "index": job["index"], "params": job["params"]}
            )
    copy = None
    if not cfg.quick or cfg.device == "cuda":
        copy = measure_copy_bandwidth(cfg)
    return {
        "rows": rows,
        "copy_bandwidth": copy,
        "memory_method": jobs[0]["memory_method"] if jobs else "",
    }


def measure_copy_bandwidth(cfg: SuiteConfig) -> dict | None:
    """Device copy bandwidth (read + write bytes per second of a large tensor copy)."""
    from .bandwidth import copy_bandwidth

    device = torch.device(cfg.device)
    nbytes = (64 if cfg.quick else 512) * 2**20
    try:
        return copy_bandwidth(device, nbytes)
    except RuntimeError as e:  # e.g. out of memory on a small device
        cfg.log(f"  copy bandwidth not measured: {e}")
        return None
