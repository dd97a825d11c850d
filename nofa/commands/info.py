"""`nofa info`: versions, compiled kernels, visible GPUs."""

from __future__ import annotations

import argparse
import platform

NAME = "info"
HELP = "show torch version, which nofa kernels are compiled (CPU/CUDA, arch list) and visible GPUs"


def add_arguments(p: argparse.ArgumentParser) -> None:
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


def run(args: argparse.Namespace) -> int:
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
