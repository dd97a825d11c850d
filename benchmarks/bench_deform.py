"""Benchmark the fused deformation field (nofa.ops.deform_points) against its pure-PyTorch
twin: forward (no grad) and forward+backward time, and the peak memory of forward+backward.

    PYTHONPATH=$PWD python benchmarks/bench_deform.py                # CPU, M = 393216, N = 1
    PYTHONPATH=$PWD python benchmarks/bench_deform.py --device cuda --out benchmarks/results/deform_cuda.md

Timing: kernel and reference runs alternate in the same process (so load changes on a
shared machine hit both alike); each figure is the median of --repeats runs after
--warmup runs. Memory (CPU): each backend runs forward+backward once in a fresh
subprocess, which reports its RSS high-water mark (VmHWM) before and after; the
difference is the memory the forward+backward needed on top of the loaded process.
Memory (CUDA): torch.cuda.max_memory_allocated around the call, minus what was allocated
before it.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

import torch

import nofa.ops as ops
from nofa.models import DeformationField


def setup(M: int, N: int, device: str, seed: int = 0):
    torch.manual_seed(seed)
    model = DeformationField().to(device)
    with torch.no_grad():  # a trained-looking (non-identity) field
        model.d_weights[-1].normal_(0, 0.05)
        model.d_biases[-1].normal_(0, 0.01)
    pts = (torch.rand(N, M, 3) * 2 - 1).to(device)
    alpha = torch.randn(N, model.id_dim).to(device)
    beta = torch.randn(N, model.exp_dim).to(device)
    return model, pts, alpha, beta


def forward(model, pts, alpha, beta):
    with torch.no_grad():
        return model(pts, alpha, beta)


def forward_backward(model, pts, alpha, beta):
    x = pts.detach().requires_grad_()
    x_c, offset, weight = model(x, alpha, beta)
    (x_c.sum() + offset.square().sum() + weight.sum()).backward()
    model.zero_grad(set_to_none=True)
    return x.grad


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def timed(fn, device, *args) -> float:
    sync(device)
    t0 = time.perf_counter()
    fn(*args)
    sync(device)
    return time.perf_counter() - t0


def bench_times(M, N, device, repeats, warmup):
    model, pts, alpha, beta = setup(M, N, device)
    out = {}
    for name, fn in (("forward", forward), ("forward+backward", forward_backward)):
        times = {"kernels": [], "torch": []}
        for i in range(warmup + repeats):
            for backend in ("kernels", "torch"):
                with ops.use_backend(backend), ops.trace_backends() as tr:
                    t = timed(fn, device, model, pts, alpha, beta)
                assert tr.backends("deform_points") == {backend}
                if i >= warmup:
                    times[backend].append(t)
        out[name] = {b: statistics.median(v) for b, v in times.items()}
    return out


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def rss_hwm() -> int:
    """This process's RSS high-water mark in bytes. VmHWM belongs to the process image (a
    fresh one after exec); ru_maxrss would carry over the parent's peak across fork+exec."""
    hwm = _status_kib("VmHWM")
    if hwm is None:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return hwm * 1024


def memory_child(M, N, device, backend) -> None:
    model, pts, alpha, beta = setup(M, N, device)
    with ops.use_backend(backend):
        if device == "cuda":
            torch.cuda.synchronize()
            base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            forward_backward(model, pts, alpha, beta)
            torch.cuda.synchronize()
            peak, before = torch.cuda.max_memory_allocated(), base
        else:
            before = rss_hwm()
            forward_backward(model, pts, alpha, beta)
            peak = rss_hwm()
    print(json.dumps({"before": before, "peak": peak}))


def bench_memory(M, N, device):
    out = {}
    for backend in ("kernels", "torch"):
        cmd = [sys.executable, os.path.abspath(__file__), "--memory-child", backend,
               "--points", str(M), "--batch", str(N), "--device", device]
        res = subprocess.run(cmd, capture_output=True, text=True, check=True, env=os.environ.copy())
        out[backend] = json.loads(res.stdout.strip().splitlines()[-1])
    return out


def device_name(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name()
    name = platform.processor() or "cpu"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} logical cores, torch threads {torch.get_num_threads()}"


def report(args, times, mem) -> str:
    mib = 2.0**20
    rows = []
    for name, t in times.items():
        rows.append(f"| {name} time | {t['kernels'] * 1e3:.1f} ms | {t['torch'] * 1e3:.1f} ms | "
                    f"{t['torch'] / t['kernels']:.2f}x faster |")
    dk = mem["kernels"]["peak"] - mem["kernels"]["before"]
    dr = mem["torch"]["peak"] - mem["torch"]["before"]
    rows.append(f"| forward+backward peak memory (increase) | {dk / mib:.0f} MiB | {dr / mib:.0f} MiB | "
                f"{dk / dr:.2f} of the reference |")
    rows.append(f"| forward+backward peak memory (whole process) | {mem['kernels']['peak'] / mib:.0f} MiB | "
                f"{mem['torch']['peak'] / mib:.0f} MiB | {mem['kernels']['peak'] / mem['torch']['peak']:.2f} of the reference |")
    cmd = "PYTHONPATH=$PWD python benchmarks/bench_deform.py " + " ".join(sys.argv[1:])
    return "\n".join([
        f"# deform_points benchmark ({args.device})",
        "",
        f"- command: `{cmd.strip()}`",
        f"- device: {device_name(args.device)}",
        f"- torch {torch.__version__}, nofa build {ops.build_info()}",
        f"- date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- M = {args.points} points, N = {args.batch}, DeformationField defaults (L = 6, D-Net 4x128, "
        "W-Net 3x64, alpha 80, beta 64), float32",
        f"- times: median of {args.repeats} runs after {args.warmup} warm-up, kernel and reference "
        "alternating in one process",
        "- memory: " + ("torch.cuda.max_memory_allocated minus the allocation before the call"
                        if args.device == "cuda" else
                        "RSS high-water mark (VmHWM) of a fresh subprocess per backend, after "
                        "minus before forward+backward; the whole-process figure includes torch itself"),
        "",
        "| measure | kernels | reference (torch) | ratio |",
        "|---|---|---|---|",
        *rows,
        "",
    ])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--points", type=int, default=393216)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--out", default=None, help="write the Markdown report here")
    p.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.memory_child:
        memory_child(args.points, args.batch, args.device, args.memory_child)
        return 0
    times = bench_times(args.points, args.batch, args.device, args.repeats, args.warmup)
    mem = bench_memory(args.points, args.batch, args.device)
    text = report(args, times, mem)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
