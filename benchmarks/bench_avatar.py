"""End-to-end NOFAAvatar timings: `reconstruct` latency and per-frame `animate`, kernels vs
torch backend in one run, with the share of time in encoder, generator, render and SR.

    PYTHONPATH=. python benchmarks/bench_avatar.py --preset paper --frames 2 --out benchmarks/results/avatar_cpu.md

Weights are random (timings do not depend on them); rendering is deterministic.
"""
from __future__ import annotations

import argparse
import datetime
import platform
import time

import torch

import nofa.ops as ops
from nofa.models import NOFAAvatar
from nofa.models.detail import fuse
from nofa.render import default_label


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


class Timer:
    def __init__(self, device: torch.device) -> None:
        self.device, self.t = device, {}

    def __call__(self, name: str, fn, *args, **kwargs):
        _sync(self.device)
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        _sync(self.device)
        self.t[name] = self.t.get(name, 0.0) + time.perf_counter() - t0
        return out


@torch.no_grad()
def run_once(model: NOFAAvatar, image, cam, alpha, beta, frames: int, device) -> dict:
    """The reconstruct/animate pipeline, stage by stage (same calls NOFAAvatar makes)."""
    rec, ani = Timer(device), Timer(device)
    ws = rec("encoder", model.encode, image)
    f_c, skip = rec("generator", model.generator.head, ws)
    coarse = rec("generator", model.volume_from_feature, f_c, skip, ws)
    r = rec("render", model.renderer, coarse.planes, cam, model.render_resolution)
    img = rec("superres", model.superres, r.rgb, r.features, ws)
    f_res = rec("detail", model.detail, image - img)
    f_e = rec("detail", fuse, f_c, f_res, model.gamma, model.eta)
    vol = rec("generator", model.volume_from_feature, f_e, skip, ws)

    def deform(p):
        return model.deformation(p, alpha, beta)[0]

    for _ in range(frames):
        r = ani("render", model.renderer, vol.planes, cam, model.render_resolution, deform)
        ani("superres", model.superres, r.rgb, r.features, ws)
    return {"reconstruct": rec.t, "animate": {k: v / frames for k, v in ani.t.items()}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="paper")
    p.add_argument("--frames", type=int, default=2, help="animate frames timed per backend")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--backends", default="kernels,torch")
    p.add_argument("--resolution", type=int, default=None, help="override the neural rendering resolution")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--out", default=None, help="write a Markdown report here")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    overrides = {"render": {"deterministic": True, **({"resolution": args.resolution} if args.resolution else {})}}
    torch.manual_seed(0)
    model = NOFAAvatar.from_preset(args.preset, **overrides).to(device).eval()
    n = model.image_size
    image = (torch.rand(1, 3, n, n) * 2 - 1).to(device)
    cam = default_label(yaw=0.3)[None].to(device)
    alpha, beta = torch.randn(1, 80, device=device), torch.randn(1, 64, device=device)
    results = {}
    for backend in args.backends.split(","):
        with ops.use_backend(backend):
            run_once(model, image, cam, alpha, beta, 1, device)  # warm-up
            results[backend] = run_once(model, image, cam, alpha, beta, args.frames, device)

    lines = [
        f"# NOFAAvatar end to end ({args.preset} preset, {device.type})", "",
        f"Command: `PYTHONPATH=. python benchmarks/bench_avatar.py --preset {args.preset} --frames {args.frames}"
        + (f" --resolution {args.resolution}" if args.resolution else "")
        + (f" --threads {args.threads}" if args.threads else "") + f" --device {args.device}`  ",
        f"Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; torch {torch.__version__}; "
        f"device: {torch.cuda.get_device_name(device) if device.type == 'cuda' else platform.processor() or 'cpu'} "
        f"({torch.get_num_threads()} threads)  ",
        f"Image {n}^2, neural rendering {model.render_resolution}^2, "
        f"{model.renderer.options.coarse_samples}+{model.renderer.options.importance_samples} samples, batch 1.", "",
        "| backend | phase | total s | encoder | generator | detail | render | superres |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for backend, res in results.items():
        for phase in ("reconstruct", "animate"):
            t = res[phase]
            total = sum(t.values())
            cells = [f"{t[k]:.3f} ({100 * t[k] / total:.0f}%)" if k in t else "-"
                     for k in ("encoder", "generator", "detail", "render", "superres")]
            label = "animate (per frame)" if phase == "animate" else phase
            lines.append(f"| {backend} | {label} | {total:.3f} | " + " | ".join(cells) + " |")
    if len(results) == 2 and "torch" in results:
        other = next(b for b in results if b != "torch")
        for phase in ("reconstruct", "animate"):
            a, b = sum(results[other][phase].values()), sum(results["torch"][phase].values())
            lines.append(f"\n{phase}: torch / {other} = {b / a:.2f}x")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
