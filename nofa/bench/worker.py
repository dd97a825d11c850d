"""The measuring process: `python -m nofa.bench.worker` reads a JSON list of jobs on stdin
and prints one result line (prefixed by `RESULT_TAG`) per job and mode as soon as it has it,
so a crash or a timeout loses only the jobs not yet reported.

A job: {"id", "case", "backend": "kernels"|"torch"|"compile", "device", "params",
"modes", "warmup", "budget_s", "min_repeats", "max_repeats", "memory_method"}.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from typing import Any

import torch

from .. import ops
from . import measure
from .calls import BackendMismatch, check_backends, make_call
from .cases import get_case
from .registry import MODES, Workload  # noqa: F401  (MODES re-exported for callers)

RESULT_TAG = "@@nofa-bench "


def _emit(row: dict) -> None:
    sys.stdout.write(RESULT_TAG + json.dumps(row) + "\n")
    sys.stdout.flush()


def _run_mode(job: dict, case, wl: Workload, fn, mode: str, device: torch.device) -> dict:
    call, before = make_call(wl, fn, job["backend"], mode)
    fresh = job["memory_method"] == measure.FRESH_PROCESS and device.type == "cpu"
    out: dict[str, Any] = {}
    with ops.trace_backends() as tr:  # the first call is the first warm-up, and traced
        t0 = time.perf_counter()
        if fresh:  # memory from the process's first call (no VmHWM reset here)
            out["peak_bytes"] = measure.peak_memory(call, device, before)
        else:
            if before:
                before()
            call()
            measure.sync(device)
        out["first_call_s"] = time.perf_counter() - t0
    check_backends(tr, case, job["backend"])
    res = measure.measure_call(
        call,
        device,
        out["first_call_s"],
        warmup=max(0, job["warmup"] - 1),
        budget_s=job["budget_s"],
        min_repeats=job["min_repeats"],
        max_repeats=job["max_repeats"],
        before=before,
        memory=not fresh,
    )
    if fresh:
        res["peak_bytes"] = (
            None if job["backend"] == "compile" else out["peak_bytes"]
        )  # compile's first call compiled
    out.update(res)
    return out


def run_job(job: dict) -> None:
    base = {
        "id": job["id"],
        "case": job["case"],
        "backend": job["backend"],
        "device": job["device"],
    }
    device = torch.device(job["device"])
    case = get_case(job["case"])
    try:
        wl = case.build(job["params"], device)
    except Exception as e:  # noqa: BLE001  (reported, not fatal for the other jobs)
        for mode in job["modes"]:
            _emit(
                {
                    **base,
                    "mode": mode,
                    "status": "error",
                    "reason": f"building inputs failed: {e!r}",
                }
            )
        return
    info = {"size": wl.size, "shape": wl.shape, "bytes_min": wl.bytes_min}
    fn = wl.fn
    if job["backend"] == "compile":
        fn = torch.compile(wl.reference, dynamic=False)
    for mode in job["modes"]:
        try:
            res = _run_mode(job, case, wl, fn, mode, device)
            _emit({**base, **info, "mode": mode, "status": "ok", **res})
        except BackendMismatch as e:
            _emit({**base, **info, "mode": mode, "status": "error", "reason": str(e)})
        except Exception as e:  # noqa: BLE001
            what = "torch.compile failed" if job["backend"] == "compile" else "run failed"
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            _emit(
                {
                    **base,
                    **info,
                    "mode": mode,
                    "status": "n/a" if job["backend"] == "compile" else "error",
                    "reason": f"{what}: {type(e).__name__}: {msg[:300]}",
                }
            )
            traceback.print_exc(file=sys.stderr)
        if device.type == "cuda":
            torch.cuda.empty_cache()


def main() -> int:
    jobs = json.loads(sys.stdin.read())
    threads = jobs[0].get("threads") if jobs else None
    if threads:
        torch.set_num_threads(int(threads))
    for job in jobs:
        run_job(job)
    return 0


if __name__ == "__main__":
    sys.exit(main())
