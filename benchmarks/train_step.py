"""Training-step cost of a stage: images/s of one optimiser step and the memory the step's
autograd graph keeps for backward (bytes of the unique tensors saved by autograd, measured
with torch.autograd.graph.saved_tensors_hooks), with and without the renderer's per-chunk
checkpointing. On CUDA it also reports torch.cuda.max_memory_allocated.

    PYTHONPATH=. python benchmarks/train_step.py --preset tiny --batch 4
    PYTHONPATH=. python benchmarks/train_step.py --preset paper --batch 1
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch

import nofa.ops as ops
from nofa.train import load_config
from nofa.train.trainer import Trainer


def saved_bytes(tr: Trainer, batch) -> int:
    seen: dict[tuple, int] = {}

    def pack(t: torch.Tensor):
        try:
            key = (t.untyped_storage().data_ptr(), t.device.type)
            seen[key] = max(seen.get(key, 0), t.untyped_storage().nbytes())
        except (RuntimeError, NotImplementedError):
            pass
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        pred = tr.module(batch)
        loss, _ = tr.criterion(pred, batch)
    del loss, pred
    return sum(seen.values())


def measure(
    preset: str,
    stage: str,
    batch_size: int,
    steps: int,
    device: str,
    checkpoint: bool,
    amp: bool,
    threads: int,
) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        over = [
            f"model.preset={preset}",
            f"run.stage={stage}",
            f"data.batch_size={batch_size}",
            f"run.device={device}",
            "loss.lpips_random_backbone=true",
            "eval.samples=0",
            "log.progress=false",
            "log.tensorboard=false",
            f"run.out_dir={tmp}",
            f"model.chunk_checkpoint={str(checkpoint).lower()}",
            f"run.amp={str(amp).lower()}",
            f"run.threads={threads}",
        ]
        if preset == "tiny":
            over.append("model.teacher_gain=16.0")
        tr = Trainer(load_config(None, over))
        out = {
            "preset": preset,
            "stage": stage,
            "batch": batch_size,
            "device": str(tr.info.device),
            "chunk_checkpoint": checkpoint,
            "amp": tr.amp,
            "threads": torch.get_num_threads(),
        }
        with ops.use_backend("kernels"):
            batch = tr.source.batch(range(batch_size))
            batch = type(batch)(**{k: v.to(tr.info.device) for k, v in vars(batch).items()})
            out["saved_for_backward_MB"] = saved_bytes(tr, batch) / 2**20
            times = []
            for _ in range(steps + 1):
                if tr.info.device.type == "cuda":
                    torch.cuda.synchronize()
                    torch.cuda.reset_peak_memory_stats()
                t0 = time.perf_counter()
                tr.train_step()
                if tr.info.device.type == "cuda":
                    torch.cuda.synchronize()
                    out["cuda_peak_MB"] = torch.cuda.max_memory_allocated() / 2**20
                times.append(time.perf_counter() - t0)
        step = min(times[1:]) if steps else times[0]
        out["steps"] = max(steps, 1)  # timed steps behind step_s (the best of them)
        out["step_s"] = step
        out["images_per_s"] = batch_size / step
        out["param_MB"] = sum(p.numel() * p.element_size() for p in tr.model.parameters()) / 2**20
        out["trained_params"] = sum(p.numel() for p in tr.params)
        return out


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--preset", default="tiny")
    p.add_argument("--stage", default="encoder")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument(
        "--steps", type=int, default=5, help="timed steps after one warm-up step (best is reported)"
    )
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--amp", action="store_true")
    p.add_argument(
        "--checkpoint",
        choices=["off", "on", "both"],
        default="off",
        help="renderer per-chunk checkpointing",
    )
    a = p.parse_args()
    for ck in [False, True] if a.checkpoint == "both" else [a.checkpoint == "on"]:
        print(
            json.dumps(
                measure(a.preset, a.stage, a.batch, a.steps, a.device, ck, a.amp, a.threads)
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
