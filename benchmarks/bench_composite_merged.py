"""Benchmark composite_rays_merged (two sorted sample sets merged on the fly) against
torch.cat of both sets + stable sort + gather + the nofa composite_rays kernel.

    PYTHONPATH=$PWD python benchmarks/bench_composite_merged.py --threads 2 \
        --write benchmarks/results/composite_merged_cpu.md

Median of --repeats runs after --warmup, the two variants interleaved in one process (so
the machine's load affects both alike). Forward alone, and forward + backward with
cotangents on all three outputs and gradients for all six inputs.
"""
from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import nofa.ops as ops  # noqa: E402
from nofa.bench.environment import cpu_model  # noqa: E402


def make_sets(rays: int, Sa: int, Sb: int, C: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    sets = []
    for S in (Sa, Sb):
        sets += [
            torch.rand(1, rays, S, C, generator=g),
            torch.randn(1, rays, S, 1, generator=g) * 3,
            torch.sort(2.25 + 1.05 * torch.rand(1, rays, S, 1, generator=g), dim=2).values,
        ]
    return [t.requires_grad_() for t in sets]


def merged(*x):
    return ops.composite_rays_merged(*x)


def cat_sort(ca, da, za, cb, db, zb):
    z = torch.cat([za, zb], 2)
    order = torch.sort(z, dim=2, stable=True).indices
    c = torch.gather(torch.cat([ca, cb], 2), 2, order.expand(-1, -1, -1, ca.shape[3]))
    d = torch.gather(torch.cat([da, db], 2), 2, order)
    return ops.composite_rays(c, d, torch.gather(z, 2, order))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rays", type=int, default=4096)
    p.add_argument("--samples", type=int, nargs=2, default=[48, 48], metavar=("S_A", "S_B"))
    p.add_argument("--channels", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--write", help="write a Markdown results file here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    leaves = make_sets(args.rays, *args.samples, args.channels)
    with torch.no_grad():
        cots = [torch.randn_like(o) for o in merged(*leaves)]
    fns = {"merged": merged, "cat+sort+gather+composite_rays": cat_sort}
    times = {(name, kind): [] for name in fns for kind in ("forward", "forward+backward")}
    with ops.use_backend("kernels"):
        for i in range(args.warmup + args.repeats):
            for name, fn in fns.items():
                t0 = time.perf_counter()
                with torch.no_grad():
                    fn(*leaves)
                t1 = time.perf_counter()
                torch.autograd.grad(fn(*leaves), leaves, cots)
                t2 = time.perf_counter()
                if i >= args.warmup:
                    times[(name, "forward")].append(t1 - t0)
                    times[(name, "forward+backward")].append(t2 - t1)
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    Sa, Sb = args.samples
    lines = [
        "# composite_rays_merged on the CPU",
        "",
        f"N=1, R={args.rays}, S_a={Sa}, S_b={Sb}, C={args.channels}, float32, {args.threads} threads; "
        f"median of {args.repeats} runs (ms).",
        "",
        "| variant | forward | forward+backward |",
        "|---|---|---|",
    ]
    for name in fns:
        lines.append(f"| {name} | {med[(name, 'forward')]:.2f} | {med[(name, 'forward+backward')]:.2f} |")
    base = "cat+sort+gather+composite_rays"
    lines += [
        "",
        f"Speed-up of merged: forward {med[(base, 'forward')] / med[('merged', 'forward')]:.2f}x, "
        f"forward+backward {med[(base, 'forward+backward')] / med[('merged', 'forward+backward')]:.2f}x.",
        "",
        f"Command: `PYTHONPATH=$PWD python benchmarks/bench_composite_merged.py --threads {args.threads}`; "
        f"CPU {cpu_model()}, torch {torch.__version__}, {datetime.date.today().isoformat()}.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        with open(args.write, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
