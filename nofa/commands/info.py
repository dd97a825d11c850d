"""`nofa info`: versions, compiled kernels, visible GPUs."""
from __future__ import annotations

import argparse
import platform

NAME = "info"
HELP = "show torch version, which nofa kernels are compiled (CPU/CUDA, arch list) and visible GPUs"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", metavar="PRESET", default=None,
                   help="also print the NOFAAvatar parameter counts per module for a preset (paper, tiny)")


def run(args: argparse.Namespace) -> int:
    import torch

    import nofa
    from nofa import ops

    info = ops.build_info()
    print(f"nofa {nofa.__version__}  (python {platform.python_version()}, torch {torch.__version__}, "
          f"torch CUDA {torch.version.cuda or 'none'})")
    if not info["compiled"]:
        print(f"kernels: NOT compiled ({info['error']}); every op runs the pure-PyTorch reference")
    else:
        print(f"kernels: cpu={'yes' if ops.kernels_available('cpu') else 'no'}  "
              f"cuda={'yes (archs ' + info['cuda_archs'] + ')' if info['cuda'] else 'no (CPU-only build)'}")
    print(f"backend: {ops.get_backend()} (set NOFA_BACKEND or use nofa.ops.use_backend)")
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            cap = torch.cuda.get_device_capability(i)
            print(f"gpu {i}: {torch.cuda.get_device_name(i)} (sm_{cap[0]}{cap[1]})")
    else:
        print("gpu: none visible")
    print(f"cpu threads: {torch.get_num_threads()}")
    if args.model:
        from nofa.models.summary import print_summary

        print_summary(args.model)
    return 0
