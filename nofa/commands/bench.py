"""`nofa bench`: benchmark every kernel and the full render against pure PyTorch."""

from __future__ import annotations

import argparse
import sys

NAME = "bench"
HELP = "benchmark the kernels and the full render against pure PyTorch (tables, CSV, plots)"
DESCRIPTION = (
    "Times every nofa op (sampling, compositing, deformation), the full render, the avatar "
    "pipeline and mesh extraction, forward and forward+backward, on the compiled kernels, the "
    "pure-PyTorch reference and torch.compile of the reference; measures peak memory; sweeps "
    "the number of points (2^14..2^22) and the plane resolution (64..512). Writes "
    "<device>_results.md, <device>_results.csv and <device>_scaling.png (plus "
    "cuda_bandwidth.png on CUDA; file names get _quick after the device for --quick runs) into "
    "--out, each starting with its header (command, commit, machine, date, fewest repeats). "
    "See docs/benchmarks.md."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--quick", action="store_true", help="tiny sizes, no torch.compile: a smoke run of seconds"
    )
    p.add_argument(
        "--device", default="cpu", choices=["cpu", "cuda"], help="where to run (default: cpu)"
    )
    p.add_argument(
        "--out", default="benchmarks/results", help="output folder (default: benchmarks/results)"
    )
    p.add_argument("--cases", nargs="+", metavar="CASE", help="only these cases (default: all)")
    comp = p.add_mutually_exclusive_group()
    comp.add_argument(
        "--compile",
        dest="compile",
        action="store_true",
        default=None,
        help="also time torch.compile of the reference (default: on, off with --quick)",
    )
    comp.add_argument(
        "--no-compile", dest="compile", action="store_false", help="skip torch.compile"
    )
    p.add_argument(
        "--no-sweeps", action="store_true", help="headline table only, no scaling sweeps"
    )
    p.add_argument(
        "--threads",
        type=int,
        help="torch CPU threads in the measuring processes (default: torch's)",
    )
    p.add_argument(
        "--budget",
        type=float,
        help="seconds of timed repeats per measurement (default 2, 0.05 with --quick)",
    )
    p.add_argument(
        "--repeats",
        type=int,
        metavar="N",
        help="at least N timed repeats behind every median, however long a call takes "
        "(default 5, 3 with --quick); more where they fit the budget, up to 50",
    )
    p.add_argument(
        "--compile-timeout",
        type=float,
        default=300.0,
        help="seconds allowed for one torch.compile job before it is reported n/a (default 300)",
    )


def run(args: argparse.Namespace) -> int:
    import torch

    from nofa.bench import SuiteConfig, all_cases, run_and_write

    if args.device == "cuda" and not torch.cuda.is_available():
        print("nofa bench: --device cuda but no CUDA GPU is visible", file=sys.stderr)
        return 2
    known = {c.name for c in all_cases()}
    unknown = sorted(set(args.cases or ()) - known)
    if unknown:
        print(f"nofa bench: unknown case(s) {unknown}; known: {sorted(known)}", file=sys.stderr)
        return 2
    if args.repeats is not None and args.repeats < 1:
        print(f"nofa bench: --repeats must be >= 1, got {args.repeats}", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = SuiteConfig(
        device=args.device,
        quick=args.quick,
        compile=args.compile,
        cases=args.cases,
        sweeps=not args.no_sweeps,
        threads=args.threads,
        budget_s=args.budget,
        min_repeats=args.repeats,
        compile_timeout_s=args.compile_timeout,
    )
    print(
        f"nofa bench: device {args.device}, plan '{cfg.plan}', torch.compile "
        f"{'on' if cfg.use_compile else 'off'}, at least {cfg.repeats} repeats per median"
    )
    paths = run_and_write(cfg, args.out, command=["nofa", "bench", *_argv_of(args, cfg.repeats)])
    for kind, path in paths.items():
        print(f"wrote {kind}: {path}")
    return 0


def _argv_of(args: argparse.Namespace, repeats: int) -> list[str]:
    """The options as given, and the repeats in effect (defaults may change), so the result
    file records a command that reproduces it."""
    out = []
    if args.quick:
        out.append("--quick")
    out += ["--device", args.device, "--out", args.out]
    if args.cases:
        out += ["--cases", *args.cases]
    if args.compile is not None:
        out.append("--compile" if args.compile else "--no-compile")
    if args.no_sweeps:
        out.append("--no-sweeps")
    if args.threads:
        out += ["--threads", str(args.threads)]
    if args.budget is not None:
        out += ["--budget", str(args.budget)]
    out += ["--repeats", str(repeats)]
    if args.compile_timeout != 300.0:
        out += ["--compile-timeout", str(args.compile_timeout)]
    return out
