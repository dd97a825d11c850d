"""How much can the detail path's head feature change the reconstruction? A reference
for what the detail stage could reach (benchmarks/results/train_cpu_attempts.md): for
each held-out
sample of the CPU proof, optimise the head feature F_e directly (starting at F_c, Adam,
source-view L2 on the SR and raw images) and report the source-/novel-view PSNR against V_c.

    PYTHONPATH=. python benchmarks/detail_headroom.py outputs/train/encoder_tiny/model.nofa-model
    PYTHONPATH=. python benchmarks/detail_headroom.py MODEL --head 16   # another generator split
"""

from __future__ import annotations

import argparse

import torch

import nofa.ops as ops
from nofa.models import NOFAAvatar
from nofa.train.data import SyntheticSource
from nofa.train.evaluation import heldout_batches
from nofa.train.losses import psnr


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("model", help="an encoder-stage model file (model.nofa-model)")
    p.add_argument(
        "--head", type=int, default=0, help="generator split resolution (0: the model's)"
    )
    p.add_argument("--iters", type=int, default=100)
    p.add_argument("--lr", type=float, default=0.02)
    p.add_argument("--samples", type=int, default=16)
    p.add_argument(
        "--seed", type=int, default=0, help="run.seed of the proof (the held-out stream's seed)"
    )
    a = p.parse_args()
    torch.set_num_threads(1)
    model = NOFAAvatar.load(a.model).requires_grad_(False)
    if a.head:
        model.generator.head_resolution = a.head  # the split only: no weight depends on it
    model.renderer.options = model.renderer.options.replace(deterministic=True)
    src = SyntheticSource(model, a.seed, truncation=1.0)  # the tiny configs' truncation
    scores = []
    with ops.use_backend("kernels"):
        for b in heldout_batches(src, a.samples, 4):
            with torch.no_grad():
                ws = model.encode(b.image_s)
                f_c, skip = model.generator.head(ws)
                coarse = model.volume_from_feature(f_c, skip, ws)
                c_s, c_t = (
                    model.render(coarse, b.camera_s)["image"],
                    model.render(coarse, b.camera_t)["image"],
                )
            f = f_c.clone().requires_grad_(True)
            opt = torch.optim.Adam([f], lr=a.lr)
            for _ in range(a.iters):
                out = model.render(model.volume_from_feature(f, skip, ws), b.camera_s)
                loss = (out["image"] - b.image_s).pow(2).mean() + (out["image_raw"] - b.raw_s).pow(
                    2
                ).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
            with torch.no_grad():
                vol = model.volume_from_feature(f, skip, ws)
                o_s, o_t = (
                    model.render(vol, b.camera_s)["image"],
                    model.render(vol, b.camera_t)["image"],
                )
            scores.append(
                torch.stack(
                    [
                        psnr(c_s, b.image_s),
                        psnr(o_s, b.image_s),
                        psnr(c_t, b.image_t),
                        psnr(o_t, b.image_t),
                    ],
                    1,
                )
            )
    s = torch.cat(scores).mean(0)
    print(
        f"head {model.generator.head_resolution}^2, {a.iters} iterations: source view V_c "
        f"{s[0]:.2f} dB, optimised "
        f"F_e {s[1]:.2f} dB ({s[1] - s[0]:+.2f}); novel view V_c {s[2]:.2f} dB, optimised F_e "
        f"{s[3]:.2f} dB "
        f"({s[3] - s[2]:+.2f})"
    )


if __name__ == "__main__":
    main()
