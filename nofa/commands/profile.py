"""`nofa profile`: where a benchmark case's time goes, kernel by kernel."""

from __future__ import annotations

import argparse
import sys

NAME = "profile"
HELP = "per-kernel time breakdown of benchmark cases (torch.profiler) -> Markdown table"
DESCRIPTION = """Runs each case's headline workload (its largest size for the device; --quick: the
              tiny
one) on each backend and mode, times --repeats calls without the profiler, then profiles as many:
every CUDA kernel / copy by self device time (on the CPU: every operator by self CPU time),
nofa's share, the device's busy share of the wall time, kernel launches and host reads of device
values per call. Writes OUT/<device>_profile.md and .json. Cases: those of `nofa bench` (an
unknown name lists them). Example:
  nofa profile --device cuda --cases render render_deformed avatar_animate --out outputs/profile"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--device", default="cpu", choices=["cpu", "cuda"], help="where to run (default: cpu)"
    )
    p.add_argument(
        "--cases",
        nargs="+",
        default=["render"],
        metavar="CASE",
        help="benchmark cases (default: render)",
    )
    p.add_argument(
        "--backends",
        nargs="+",
        choices=["kernels", "torch"],
        default=["kernels", "torch"],
        help="op implementations to profile (default: both)",
    )
    p.add_argument(
        "--modes",
        nargs="+",
        choices=["forward", "forward+backward"],
        default=["forward", "forward+backward"],
        help="modes (default: both; a forward-only case skips forward+backward)",
    )
    p.add_argument("--quick", action="store_true", help="the cases' tiny sizes (a smoke run)")
    p.add_argument("--repeats", type=int, default=3, help="profiled calls, averaged (default 3)")
    p.add_argument("--top", type=int, default=15, help="rows listed per call (default 15)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument(
        "--out", default="outputs/profile", help="output folder (default outputs/profile)"
    )


def run(args: argparse.Namespace) -> int:
    import torch

    from nofa.bench import get_case
    from nofa.bench.environment import describe
    from nofa.bench.profile import profile_case, write_profiles

    if args.device == "cuda" and not torch.cuda.is_available():
        print("nofa profile: --device cuda but no CUDA GPU is visible", file=sys.stderr)
        return 2
    for name in args.cases:
        try:
            get_case(name)
        except KeyError as e:
            print(f"nofa profile: {e.args[0]}", file=sys.stderr)
            return 2
    if args.repeats < 1 or args.top < 1:
        print(
            f"nofa profile: --repeats and --top must be >= 1, got {args.repeats} and {args.top}",
            file=sys.stderr,
        )
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    profiles, failed = [], []
    env = describe(args.device, threads=args.threads)
    for name in args.cases:
        why = get_case(name).unavailable()
        if why:
            print(f"nofa profile: {name} skipped: {why}")
            continue
        for backend in args.backends:
            for mode in args.modes:
                if mode not in get_case(name).modes:
                    continue
                try:
                    p = profile_case(
                        name,
                        args.device,
                        backend,
                        mode,
                        quick=args.quick,
                        repeats=args.repeats,
                        top=args.top,
                    )
                except Exception as e:  # noqa: BLE001  (one failing case must not lose the others)
                    failed.append(f"{name} {backend} {mode}: {type(e).__name__}: {e}")
                    print(f"nofa profile: {failed[-1]}", file=sys.stderr)
                    continue
                profiles.append(p)
                print(
                    f"{name} {backend} {mode}: wall {p.wall_ms:.3g} ms, busy {p.busy_ms:.3g} ms, "
                    f"nofa {p.nofa_ms:.3g} ms, {p.launches:.0f} launches, {p.host_reads:.0f} host "
                    "reads"
                )
                # Rewritten after each profile: a run cut short keeps what it has.
                write_profiles(args.out, profiles, env)
                if args.device == "cuda":
                    torch.cuda.empty_cache()
    if profiles:
        print(f"wrote {args.out}/{args.device}_profile.md and .json")
    return 1 if failed or not profiles else 0
