"""End-to-end render and mesh benchmark: nofa kernels vs the pure-PyTorch reference.

    PYTHONPATH=$PWD python benchmarks/bench_render.py [--device cpu] [--repeats 3] [--out benchmarks/results/render_cpu.md]

Case (issue 5): one EG3D-size render, 64 x 64 rays, 48 + 48 samples, 256^2 planes, C = 32,
forward and forward + backward (gradients to planes and decoder), run once with backend
"auto" (every op that has a compiled kernel uses it; which ones is reported) and once with
"torch", in the same process. Also times marching-cubes mesh extraction at 256^3.
"""
from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import time
import warnings
from contextlib import nullcontext

import torch

import nofa.ops as ops
from nofa.io import Avatar, load_avatar
from nofa.pipelines.mesh import mesh_from_avatar
from nofa.render import OSGDecoder, RenderOptions, TriplaneRenderer, default_label


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--samples", type=int, default=48)
    p.add_argument("--planes", type=int, default=256)
    p.add_argument("--mesh-resolution", type=int, default=256)
    p.add_argument("--avatar", default=None, help="mesh this avatar file (level 10) instead of the random planes")
    p.add_argument("--out", default=None, help="append a Markdown report here")
    args = p.parse_args()
    warnings.simplefilter("ignore", RuntimeWarning)
    dev = torch.device(args.device)
    sync = (lambda: torch.cuda.synchronize()) if dev.type == "cuda" else (lambda: None)

    torch.manual_seed(0)
    C = 32
    planes = (torch.randn(1, 3, C, args.planes, args.planes, device=dev) * 0.5).requires_grad_(True)
    decoder = OSGDecoder(n_features=C).to(dev)
    opts = RenderOptions(coarse_samples=args.samples, importance_samples=args.samples, deterministic=True)
    renderer = TriplaneRenderer(decoder, opts)
    label = default_label(0.2, -0.1)[None].to(dev)

    def fwd():
        with torch.no_grad():
            renderer(planes, label, args.resolution)

    def fwd_bwd():
        out = renderer(planes, label, args.resolution)
        (out.features.square().mean() + out.depth.mean()).backward()

    # Backends interleaved call by call (warm-up first), so a change of machine load hits
    # both sides of each ratio alike.
    times = {(b, k): [] for b in ("auto", "torch") for k in ("f", "fb")}
    for rep in range(args.repeats + 1):
        for backend in ("auto", "torch"):
            # The warm-up of "auto" records which ops ran as kernels.
            with ops.use_backend(backend), (ops.trace_backends() if rep == 0 and backend == "auto" else nullcontext(None)) as t_:
                for kind, fn in (("f", fwd), ("fb", fwd_bwd)):
                    sync()
                    t = time.perf_counter()
                    fn()
                    sync()
                    if rep:
                        times[(backend, kind)].append(time.perf_counter() - t)
            if t_ is not None:
                tr = t_
    f_k, fb_k = (statistics.median(times[("auto", k)]) for k in ("f", "fb"))
    f_t, fb_t = (statistics.median(times[("torch", k)]) for k in ("f", "fb"))
    used_k = {op: sorted(tr.backends(op)) for op in
              ("decode_triplane", "composite_rays", "composite_rays_merged", "relayout_planes", "sample_triplane")
              if tr.backends(op)}

    if args.avatar:
        avatar, lvl, what = load_avatar(args.avatar), 10.0, f"{args.avatar}, level 10"
    else:
        avatar = Avatar(planes.detach().cpu(), decoder.cpu().state_dict(), decoder.config(), opts)
        with torch.no_grad():
            lvl = float(renderer.to("cpu").density(avatar.planes, torch.zeros(1, 1, 3)).item())
        what = "random planes, level = density at the origin"
    t = time.perf_counter()
    try:
        mesh = mesh_from_avatar(avatar, args.mesh_resolution, level=lvl, colors=True)
        mesh_s, nverts = time.perf_counter() - t, len(mesh.vertices)
    except ValueError:
        mesh_s, nverts = float("nan"), 0

    dev_name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"{platform.processor() or 'cpu'}, {torch.get_num_threads()} threads"
    report = f"""
## Render benchmark ({datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC)

Command: `python benchmarks/bench_render.py --device {args.device} --repeats {args.repeats}`
Device: {dev_name}; torch {torch.__version__}; median of {args.repeats} after one warm-up, backends interleaved.
Case: {args.resolution}x{args.resolution} rays, {args.samples} + {args.samples} samples, {args.planes}^2 planes, C = {C}.
Ops on the "auto" run: {used_k}.

| backend | forward (s) | forward + backward (s) |
|---|---|---|
| auto (kernels where compiled) | {f_k:.3f} | {fb_k:.3f} |
| torch (reference) | {f_t:.3f} | {fb_t:.3f} |
| speed-up | {f_t / f_k:.2f}x | {fb_t / fb_k:.2f}x |

Mesh extraction at {args.mesh_resolution}^3 ({what}, with vertex colours, CPU):
{mesh_s:.1f} s, {nverts} vertices.
"""
    print(report)
    if args.out:
        with open(args.out, "a") as fh:
            fh.write(report)


if __name__ == "__main__":
    main()
