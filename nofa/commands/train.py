"""`nofa train CONFIG.toml [key=value ...] [--resume]`: train a NOFA++ stage."""

from __future__ import annotations

import argparse

NAME = "train"
HELP = "train a NOFA++ stage from a TOML config (`nofa train --help` lists the stages)"
DESCRIPTION = (
    "Train one stage of NOFA++ (paper 3.4): synthetic stages on renders of the frozen "
    "generator,\nvideo stages on face videos (docs/datasets.md).\n"
    "Every config field can be overridden as section.key=value.\n\n"
    "examples:\n"
    "  nofa train configs/encoder_tiny.toml run.steps=200\n"
    "  nofa train configs/encoder.toml model.weights=ffhq.nofa-model "
    "loss.lpips_backbone=alexnet-owt-7be5be79.pth\n"
    "  nofa train configs/encoder.toml --resume\n"
    "  torchrun --nproc-per-node 4 -m nofa.train configs/encoder.toml   # N GPUs"
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from nofa.train.cli import add_arguments as add

    add(p)


def run(args: argparse.Namespace) -> int:
    from nofa.train.cli import run_from_args

    return run_from_args(args)
