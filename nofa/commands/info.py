"""`nofa info`: versions, compiled kernels, visible GPUs; `nofa info FILE`: what a nofa file is
(kind, version, sizes)."""

from __future__ import annotations

import argparse
import platform

NAME = "info"
HELP = (
    "show torch version, which nofa kernels are compiled (CPU/CUDA, arch list) and visible "
    "GPUs; with FILE, what that nofa file is (kind, version, sizes)"
)
DESCRIPTION = """Without FILE: the environment (nofa and torch versions, compiled kernels, GPUs,
CPU instruction set). With FILE: what that nofa file holds, read without running anything from
it (the file's "format" entry decides, not its name):
  nofa info outputs/demo/avatar.nofa-avatar
  nofa info outputs/train/encoder/model.nofa-model
  nofa info outputs/train/encoder/checkpoints/step-00001000.nofa-ckpt
A file that is not a nofa file ends with one line and exit status 1. Suffixes: docs/files.md."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "file",
        metavar="FILE",
        nargs="?",
        default=None,
        help="a nofa file (model, avatar, animatable avatar, training checkpoint) to describe",
    )
    p.add_argument(
        "--model",
        metavar="PRESET",
        default=None,
        help="also print the NOFAAvatar parameter counts per module for a preset (paper, tiny)",
    )


def _print_cpu_isa() -> None:
    """The CPU instruction-set tier and the path each CPU op takes (docs/cpu_isa.md)."""
    from nofa.ops.cpu_isa import cpu_isa_info

    isa = cpu_isa_info()
    if not isa["compiled"]:
        return
    if isa["error"]:
        print(f"cpu isa: detected {isa['detected']}; ERROR: {isa['error']}")
        return
    how = (
        f"forced by NOFA_CPU_ISA={isa['env']}"
        if isa["forced"] and isa["env"]
        else ("forced" if isa["forced"] else "auto; NOFA_CPU_ISA=scalar|avx2|avx512 caps it")
    )
    print(f"cpu isa: detected {isa['detected']}, in force {isa['active']} ({how})")
    print("cpu path per op (float32; other dtypes and shapes run scalar):")
    for op, v in isa["ops"].items():
        print(f"  {op:<26} {v['path']:<7} (best on this cpu: {v['best']})")


def _describers() -> dict:
    from nofa.io.avatar import describe_avatar
    from nofa.io.nofa_file import (
        ANIMATABLE,
        LEGACY_MODEL,
        MODEL,
        TRAINING_CHECKPOINT,
        VOLUME_AVATAR,
    )
    from nofa.models.animatable import describe_animatable
    from nofa.models.model_file import describe_model
    from nofa.train.checkpoint import describe_checkpoint

    return {
        MODEL.format: describe_model,
        LEGACY_MODEL.format: describe_model,
        VOLUME_AVATAR.format: describe_avatar,
        ANIMATABLE.format: describe_animatable,
        TRAINING_CHECKPOINT.format: describe_checkpoint,
    }


def _size(n: int) -> str:
    if n < 1024:
        return f"{n:,d} bytes"
    return (
        f"{n / 2**20:.1f} MiB ({n:,d} bytes)"
        if n >= 2**20
        else f"{n / 1024:.1f} KiB ({n:,d} bytes)"
    )


def describe_file(path: str) -> list[str]:
    """The lines `nofa info FILE` prints: kind, format/version, suffix, sizes, then the kind's
    own key facts (plane shape, preset, step, ...) and any conversion notes. Raises
    NofaFileError / FileNotFoundError for a file that is not a readable nofa file."""
    from pathlib import Path

    from nofa.io.nofa_file import kind_for_suffix, read_nofa_file, tensor_stats

    f = read_nofa_file(path, warn=False)
    kind = f.kind
    count, numel = tensor_stats(f.payload)
    named = kind_for_suffix(f.path)
    suffix = f.path.suffix or "(none)"
    if named is not None and named.format in (kind.format, kind.successor):
        suffix += " (documented)"
    elif kind.successor is None:
        suffix += f" (documented: {kind.suffix})"
    version = (
        f" (older; current: {kind.successor})"
        if kind.successor
        else f" (this nofa writes {kind.version})"
    )
    facts = [
        ("format", f"{kind.format}, version {f.version}{version}"),
        ("suffix", suffix),
        ("on disk", _size(Path(path).stat().st_size)),
        ("tensors", f"{count:,d} ({numel:,d} numbers)"),
        *_describers()[kind.format](f),
        *(("note", n) for n in f.notes),
    ]
    width = max(len(label) for label, _ in facts) + 1
    return [f"{f.path}: nofa {kind.name}"] + [
        f"  {label + ':':<{width}} {text}" for label, text in facts
    ]


def run(args: argparse.Namespace) -> int:
    if args.file is not None:
        from nofa.io.nofa_file import NofaFileError

        from ._common import fail

        try:
            lines = describe_file(args.file)
        except (NofaFileError, FileNotFoundError, IsADirectoryError, PermissionError) as e:
            fail(args, " ".join(str(e).split()))
        print("\n".join(lines))
        return 0
    import torch

    import nofa
    from nofa import ops

    info = ops.build_info()
    print(
        f"nofa {nofa.__version__}  (python {platform.python_version()}, torch {torch.__version__}, "
        f"torch CUDA {torch.version.cuda or 'none'})"
    )
    if not info["compiled"]:
        print(f"kernels: NOT compiled ({info['error']}); every op runs the pure-PyTorch reference")
    else:
        print(
            f"kernels: cpu={'yes' if ops.kernels_available('cpu') else 'no'}  "
            "cuda="
            + (f"yes (archs {info['cuda_archs']})" if info["cuda"] else "no (CPU-only build)")
        )
    print(f"backend: {ops.get_backend()} (set NOFA_BACKEND or use nofa.ops.use_backend)")
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            cap = torch.cuda.get_device_capability(i)
            print(f"gpu {i}: {torch.cuda.get_device_name(i)} (sm_{cap[0]}{cap[1]})")
    else:
        print("gpu: none visible")
    print(f"cpu threads: {torch.get_num_threads()}")
    _print_cpu_isa()
    if args.model:
        from nofa.models.summary import print_summary

        print_summary(args.model)
    return 0
