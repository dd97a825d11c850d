"""Argument handling shared by `nofa train` and `python -m nofa.train` (torchrun)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["add_arguments", "main", "run_from_args", "stage_names"]


def stage_names() -> list[str]:
    """The stages `run.stage` may name (the stage registry), sorted."""
    from . import trainer  # noqa: F401  (the trainer imports every stage module: they register)
    from .registry import STAGES

    return sorted(STAGES)


def _list_stages_in_help(p: argparse.ArgumentParser) -> None:
    # The stage modules import the models: they are looked up when the help is printed, not
    # when the parser is built (every `nofa` command builds this parser).
    format_help, epilog = p.format_help, p.epilog

    def with_stages() -> str:
        line = f"stages (run.stage): {', '.join(stage_names())}"
        p.epilog = f"{epilog}\n\n{line}" if epilog else line
        return format_help()

    p.format_help = with_stages


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
    _list_stages_in_help(p)


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
