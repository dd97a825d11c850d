"""`nofa check`: run every op on the kernels and on the pure-PyTorch reference, side by side."""

from __future__ import annotations

import argparse
import time

NAME = "check"
HELP = "compare each compiled kernel with its pure-PyTorch twin (max error, gradients, time)"
DESCRIPTION = (
    "Runs every public nofa op (sample_triplane, decode_triplane, composite_rays, "
    "composite_rays_merged, deform_points, channels_last_planes) with backend 'kernels' and "
    "backend "
    "'torch' on the same random inputs and prints a table: forward max error, gradient relative "
    "error, and forward+backward time of each. A quick health check of an install; `nofa bench` "
    "is the full benchmark."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--device", default="cpu", choices=["cpu", "cuda"], help="where to run (default: cpu)"
    )
    p.add_argument(
        "--points",
        type=int,
        default=200_000,
        help="sample points for the point ops (default 200000; a quarter for deform_points)",
    )
    p.add_argument(
        "--repeats", type=int, default=3, help="timed repetitions, median reported (default 3)"
    )
    p.add_argument(
        "--plane-res", type=int, default=256, help="tri-plane resolution (default 256, EG3D's)"
    )
    p.add_argument(
        "--rays", type=int, default=4096, help="rays for the compositing ops (default 4096)"
    )


def _cases(device, points, plane_res=256, R=4096):
    """(op, kernel name for kernels_available/trace, fn, inputs): fn(*inputs) -> tensor(s)."""
    import torch

    from nofa import ops

    g = torch.Generator(device="cpu").manual_seed(0)

    def rnd(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g) * scale).to(device)

    planes = rnd(1, 3, 32, plane_res, plane_res)
    pts = (torch.rand(1, points, 3, generator=g) * 1.2 - 0.6).to(device)
    yield (
        "sample_triplane",
        "sample_triplane",
        (lambda p, x: ops.sample_triplane(p, x)),
        (planes, pts),
    )
    dec = (rnd(64, 32, scale=0.2), rnd(64, scale=0.1), rnd(33, 64, scale=0.2), rnd(33, scale=0.1))
    yield (
        "decode_triplane",
        "decode_triplane",
        (lambda p, x, *w: ops.decode_triplane(p, x, 1.0, *w)),
        (planes, pts, *dec),
    )
    S = 96
    colors = rnd(1, R, S, 32)
    dens = rnd(1, R, S, 1, scale=3)
    depths = torch.sort(torch.rand(1, R, S, 1, generator=g) + 2.25, dim=2)[0].to(device)
    yield (
        "composite_rays",
        "composite_rays",
        (lambda c, d: ops.composite_rays(c, d, depths)),
        (colors, dens),
    )
    h = S // 2
    z_a, z_b = depths[:, :, ::2].contiguous(), depths[:, :, 1::2].contiguous()
    yield (
        "composite_rays_merged",
        "composite_rays_merged",
        (lambda ca, da, cb, db: ops.composite_rays_merged(ca, da, z_a, cb, db, z_b)),
        (
            colors[:, :, :h].contiguous(),
            dens[:, :, :h].contiguous(),
            colors[:, :, h:].contiguous(),
            dens[:, :, h:].contiguous(),
        ),
    )
    from nofa.models import DeformationField

    torch.manual_seed(0)
    field = DeformationField().to(device)
    with torch.no_grad():  # a non-identity field, so offsets and their gradients are non-trivial
        field.d_weights[-1].normal_(0, 0.05)
    alpha, beta = rnd(1, 80), rnd(1, 64)
    yield (
        "deform_points",
        "deform_points",
        (lambda x: field(x, alpha, beta)),
        (pts[:, : points // 4].contiguous(),),
    )
    yield (
        "channels_last_planes",
        "channels_last_planes",
        (lambda p: ops.channels_last_planes(p)),
        (planes,),
    )


def _run(fn, inputs, backend, repeats, device, kernel):
    import torch

    from nofa import ops

    def once():
        xs = [t.detach().clone().requires_grad_() for t in inputs]
        with ops.use_backend(backend), ops.trace_backends() as tr:
            out = fn(*xs)
        outs = out if isinstance(out, tuple) else (out,)
        gen = torch.Generator().manual_seed(1)
        cots = [torch.randn(o.shape, generator=gen).to(o) for o in outs]
        grads = torch.autograd.grad(outs, xs, cots)
        if device == "cuda":
            torch.cuda.synchronize()
        if tr.backends(kernel) != {backend}:  # never report a fallback as a kernel
            raise RuntimeError(f"{kernel} ran on {sorted(tr.backends(kernel))}, not {backend}")
        return [o.detach() for o in outs], grads

    once()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out, grads = once()
        times.append(time.perf_counter() - t0)
    return out, grads, sorted(times)[len(times) // 2]


def _cpu_paths(device: str) -> dict | None:
    """Calls per (CPU op, instruction-set path) so far (None off the CPU)."""
    from nofa.ops.cpu_isa import path_calls

    return path_calls() if device == "cpu" else None


def _paths_used(before: dict | None, after: dict | None) -> str:
    """Which CPU path each op ran between two snapshots, e.g. "decode_triplane_forward avx2"."""
    if not before or not after:
        return ""
    used = []
    for op, calls in after.items():
        ran = [isa for isa, n in calls.items() if n > before[op][isa]]
        if ran:
            used.append(f"{op} {'+'.join(ran)}")
    return ", ".join(used)


def run(args: argparse.Namespace) -> int:
    import torch

    from nofa import ops

    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA GPU visible")
        return 1
    for name in ("points", "repeats", "plane_res", "rays"):
        if getattr(args, name) < 1:
            print(f"nofa check: --{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
            return 2
    print(
        f"nofa check on {args.device} (torch {torch.__version__}, {torch.get_num_threads()} "
        "threads)"
    )
    if args.device == "cpu":
        from nofa.ops.cpu_isa import cpu_isa_info

        isa = cpu_isa_info()
        if isa["compiled"]:
            print(f"cpu isa: detected {isa['detected']}, in force {isa['active'] or isa['error']}")
    print(
        f"{'op':<22} {'backend':<9} {'fwd max err':>12} {'grad rel err':>13} {'fwd+bwd ms':>11} "
        f"{'speed-up':>9}"
    )
    status = 0
    for name, kernel, fn, inputs in _cases(args.device, args.points, args.plane_res, args.rays):
        ref_out, ref_grads, ref_t = _run(fn, inputs, "torch", args.repeats, args.device, kernel)
        print(f"{name:<22} {'torch':<9} {'-':>12} {'-':>13} {ref_t * 1e3:>11.1f} {'1.0x':>9}")
        if not ops.kernels_available(args.device, kernel):
            print(f"{name:<22} {'kernels':<9} {'not compiled for ' + args.device:>36}")
            continue
        before = _cpu_paths(args.device)
        out, grads, t = _run(fn, inputs, "kernels", args.repeats, args.device, kernel)
        paths = _paths_used(before, _cpu_paths(args.device))
        err = max((a - b).abs().max().item() for a, b in zip(out, ref_out))
        gerr = max(
            ((a - b).norm() / b.norm().clamp_min(1e-12)).item() for a, b in zip(grads, ref_grads)
        )
        ok = err <= 1e-4 and gerr <= 1e-4
        status |= 0 if ok else 1
        print(
            f"{name:<22} {'kernels':<9} {err:>12.2e} {gerr:>13.2e} {t * 1e3:>11.1f} "
            f"{ref_t / t:>8.1f}x" + ("" if ok else "  MISMATCH")
        )
        if paths:
            print(f"{'':<22} cpu path: {paths}")
    return status
