"""Benchmark composite_rays: nofa kernel vs the pure-PyTorch reference, forward + backward.

    PYTHONPATH=$PWD python benchmarks/bench_composite.py --rays 4096 16384 \
        --write benchmarks/results/composite_cpu.md

Time: median of --repeats forward+backward passes after --warmup passes, both backends
interleaved in one process (so the machine's load affects both alike). Cotangents on all
three outputs (features, depth, weights).

Peak extra memory: one fresh subprocess per (rays, backend). It builds the inputs and
cotangents, runs one small warm-up pass, then resets the kernel's peak-RSS counter
(`echo 5 > /proc/self/clear_refs`), notes VmRSS, runs one full-size forward+backward
keeping the gradients, and reports VmHWM - VmRSS(before): the most memory the pass held
beyond its inputs, outputs of the pass included. glibc is told to serve every block of
64 KiB or more with mmap (MALLOC_MMAP_THRESHOLD_), so a freed tensor goes back to the OS
and the RSS follows what the allocator really holds (PyTorch's CPU allocator does not cache).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from nofa.bench.environment import cpu_model  # noqa: E402

import nofa.ops as ops  # noqa: E402


def make_problem(rays: int, S: int, C: int, device: str, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    colors = torch.rand(1, rays, S, C, generator=g)
    densities = torch.randn(1, rays, S, 1, generator=g) * 3
    gaps = torch.rand(1, rays, S, 1, generator=g) + 0.1
    depths = 2.25 + 1.05 * torch.cumsum(gaps, 2) / gaps.sum(2, keepdim=True)  # EG3D FFHQ range
    leaves = [t.to(device).requires_grad_() for t in (colors, densities, depths)]
    cots = [
        torch.randn(1, rays, C, generator=g).to(device),
        torch.randn(1, rays, 1, generator=g).to(device),
        torch.randn(1, rays, S - 1, 1, generator=g).to(device),
    ]
    return leaves, cots


def step(backend: str, leaves, cots):
    with ops.use_backend(backend):
        outs = ops.composite_rays(*leaves)
    return torch.autograd.grad(outs, leaves, cots)


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_both(rays, S, C, device, warmup, repeats):
    leaves, cots = make_problem(rays, S, C, device)
    times = {"kernels": [], "torch": []}
    for i in range(warmup + repeats):
        for backend in times:
            sync(device)
            t0 = time.perf_counter()
            step(backend, leaves, cots)
            sync(device)
            if i >= warmup:
                times[backend].append(time.perf_counter() - t0)
    return {b: statistics.median(v) for b, v in times.items()}


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def memory_child(rays: int, S: int, C: int, backend: str) -> None:
    """Runs in a fresh process: prints {"extra_bytes": ...} for one forward+backward."""
    small, small_cots = make_problem(64, S, C, "cpu", seed=1)
    step(backend, small, small_cots)  # load code, start the thread pool
    leaves, cots = make_problem(rays, S, C, "cpu")
    del small, small_cots
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current RSS
    before = _status_kib("VmRSS")
    grads = step(backend, leaves, cots)
    peak = _status_kib("VmHWM")
    assert all(g.shape == x.shape for g, x in zip(grads, leaves))
    print(json.dumps({"extra_bytes": (peak - before) * 1024}))


def measure_memory(rays, S, C, backend, threads) -> int:
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", PYTHONPATH=ROOT)
    cmd = [sys.executable, os.path.abspath(__file__), "--_memory_child", backend, "--threads", str(threads),
           "--rays", str(rays), "--samples", str(S), "--channels", str(C)]
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])["extra_bytes"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rays", type=int, nargs="+", default=[4096, 16384])
    p.add_argument("--samples", type=int, default=96)
    p.add_argument("--channels", type=int, default=32)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--write", help="write a Markdown results file here")
    p.add_argument("--append", action="store_true", help="append the run's section to --write")
    p.add_argument("--_memory_child", help=argparse.SUPPRESS)
    args = p.parse_args()
    S, C = args.samples, args.channels
    if args.threads:
        torch.set_num_threads(args.threads)
    if args._memory_child:
        memory_child(args.rays[0], S, C, args._memory_child)
        return 0
    if not ops.kernels_available(args.device, "composite_rays"):
        print(f"no composite_rays kernel compiled for {args.device}: {ops.build_info()}", file=sys.stderr)
        return 1
    device_name = torch.cuda.get_device_name() if args.device == "cuda" else cpu_model()
    rows = []
    for rays in args.rays:
        t = time_both(rays, S, C, args.device, args.warmup, args.repeats)
        mem = None
        if args.device == "cpu":
            mem = {b: measure_memory(rays, S, C, b, args.threads) for b in ("kernels", "torch")}
        rows.append((rays, t, mem))
        line = f"R={rays} S={S} C={C}: kernel {t['kernels'] * 1e3:.2f} ms, reference {t['torch'] * 1e3:.2f} ms, " \
               f"speed-up {t['torch'] / t['kernels']:.2f}x"
        if mem:
            line += f"; peak extra memory kernel {mem['kernels'] / 2**20:.1f} MiB, reference " \
                    f"{mem['torch'] / 2**20:.1f} MiB (ratio {mem['kernels'] / mem['torch']:.3f})"
        print(line, flush=True)
    if args.write:
        write_results(args, rows, device_name)
    return 0


def write_results(args, rows, device_name) -> None:
    S, C = args.samples, args.channels
    cmd = "PYTHONPATH=$PWD python benchmarks/bench_composite.py " + " ".join(sys.argv[1:])
    lines = []
    if not args.append:
        doc = " ".join(__doc__.split("Peak extra memory:", 1)[1].split())
        lines += [
            f"# composite_rays benchmark ({args.device})",
            "",
            f"Problem: N = 1, S = {S} samples, C = {C} channels, float32; forward + backward with "
            "cotangents on features, depth and weights (gradients to colors, densities, depths).",
            "",
            "Time: median of the repeats after the warm-up runs, both backends interleaved in one "
            "process, so load on the machine affects both alike.",
            "",
            "Peak extra memory: " + doc,
            "",
        ]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines += [
        f"## {torch.get_num_threads()} thread(s)",
        "",
        f"- Command: `{cmd}`",
        f"- Device: {device_name}, {os.cpu_count()} logical CPUs; torch {torch.__version__}; "
        f"{torch.get_num_threads()} torch threads; load average {load:.1f} at the end of the run",
        f"- Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}; "
        f"{args.repeats} repeats after {args.warmup} warm-up runs",
        "",
        "| rays R | kernel fwd+bwd (ms) | reference fwd+bwd (ms) | speed-up | kernel peak extra (MiB) "
        "| reference peak extra (MiB) | kernel / reference memory |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for rays, t, mem in rows:
        m = (f"{mem['kernels'] / 2**20:.1f} | {mem['torch'] / 2**20:.1f} | {mem['kernels'] / mem['torch']:.3f}"
             if mem else "n/a | n/a | n/a")
        lines.append(f"| {rays} | {t['kernels'] * 1e3:.2f} | {t['torch'] * 1e3:.2f} | "
                     f"{t['torch'] / t['kernels']:.2f}x | {m} |")
    lines.append("")
    with open(args.write, "a" if args.append else "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {args.write}")


if __name__ == "__main__":
    sys.exit(main())
