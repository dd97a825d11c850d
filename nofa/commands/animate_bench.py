"""`nofa animate-bench`: animation frames/s, per-frame split, memory per frame, flat memory."""

from __future__ import annotations

import argparse

NAME = "animate-bench"
HELP = (
    "measure animation throughput (frames/s, deformation/render/SR split, memory) -> Markdown table"
)
DESCRIPTION = """Drive one encoded random portrait of the preset (random weights) for --frames
frames at --size px (neural rendering at size/4, SR x4) and report frames/s, the per-frame
split (deformation, render, SR) and working memory per frame; --long N also streams an N-frame
drive to an MP4 and checks that peak memory after 100 frames and at the end differ by < 5%.
Writes OUT/animate_bench.md (starting with its result header: command, commit, machine, date,
measured frames) and .json. Code: nofa/bench/animate.py. Example:
  nofa animate-bench --preset tiny --size 512 --frames 50 --long 1000 \\
      --out outputs/animate_bench"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--preset",
        choices=["tiny", "paper"],
        nargs="+",
        default=["paper"],
        help="model preset(s) (default paper)",
    )
    p.add_argument(
        "--size", type=int, default=512, help="output image size (default 512: 128 raw, SR x4)"
    )
    p.add_argument("--frames", type=int, default=30, help="measured frames (default 30)")
    p.add_argument("--warmup", type=int, default=2, help="warm-up frames, not measured (default 2)")
    p.add_argument("--batch", type=int, default=1, help="frames per batch (default 1)")
    p.add_argument(
        "--samples",
        type=int,
        default=None,
        help="coarse (= importance) samples (default: the preset's)",
    )
    p.add_argument(
        "--chunk-rays",
        type=int,
        default=None,
        help="rays per render chunk (default: 8192 on cpu, one chunk per frame on cuda)",
    )
    p.add_argument(
        "--long",
        type=int,
        default=None,
        metavar="N",
        help="flat-memory drive of N frames (default 1000 on cuda, 0 = off on cpu)",
    )
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument(
        "--backend", choices=["auto", "kernels", "torch"], default=None, help="op implementation"
    )
    p.add_argument(
        "--autocast",
        choices=["bf16", "fp16"],
        default=None,
        help="run the frames under torch.autocast with this dtype (default: float32)",
    )
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument(
        "--out",
        default="outputs/animate_bench",
        help="output folder (default outputs/animate_bench)",
    )
    p.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    import torch

    from nofa.bench.animate import format_results, run_animate_bench, write_results
    from nofa.bench.environment import describe

    from ._common import backend

    if args.threads:
        torch.set_num_threads(args.threads)
    long = args.long if args.long is not None else (1000 if args.device.startswith("cuda") else 0)
    rows = []
    with backend(args):
        for preset in args.preset:
            rows.append(
                run_animate_bench(
                    preset,
                    args.size,
                    args.frames,
                    args.device,
                    args.batch,
                    long,
                    args.warmup,
                    args.samples,
                    not args.no_progress,
                    chunk_rays=args.chunk_rays,
                    autocast=args.autocast,
                )
            )
    env = describe("cuda" if args.device.startswith("cuda") else "cpu", threads=args.threads)
    md, js = write_results(args.out, rows, env)
    print(format_results(rows, env))
    bad = [r for r in rows if r.get("long_frames") and abs(r["rss_growth_pct"]) >= 5]
    for r in bad:
        print(
            f"FLAT-MEMORY CHECK FAILED: {r['preset']}: peak RSS grew {r['rss_growth_pct']:+.1f}% "
            "over "
            f"{r['long_frames']} frames"
        )
    print(f"wrote {md} and {js}")
    return 1 if bad else 0
