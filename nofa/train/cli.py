"""Argument handling shared by `nofa train` and `python -m nofa.train` (torchrun)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["add_arguments", "main", "run_from_args"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", metavar="CONFIG.toml", help="training config (see configs/)")
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="override config fields, e.g. stage=encoder optim.lr=1e-4 run.out_dir=outputs/x",
    )
    p.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=None,
        metavar="CHECKPOINT",
        help="continue a run: the latest checkpoint of run.out_dir, or the given file",
    )


def run_from_args(args: argparse.Namespace) -> int:
    from .config import ConfigError, load_config
    from .trainer import train

    overrides, resume = list(args.overrides), args.resume
    if isinstance(resume, str) and "=" in resume and not Path(resume).exists():
        overrides, resume = (
            overrides + [resume],
            True,
        )  # `--resume key=value`: the flag took an override
    try:
        cfg = load_config(args.config, overrides)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        return train(cfg, resume)
    except (FileNotFoundError, FileExistsError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m nofa.train", description="Train a NOFA++ stage (torchrun-ready)."
    )
    add_arguments(p)
    return run_from_args(p.parse_args(argv))
