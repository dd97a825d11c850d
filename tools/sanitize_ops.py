"""Every nofa kernel variant once, on small inputs: the workload that tools/gpu_sanitize.sh
runs under NVIDIA's compute-sanitizer (memcheck, racecheck, synccheck).

Each call runs an op forward and backward on the kernels (asserted with trace_backends) and
then synchronises, so a sanitizer report lands next to the "== name" line of the call that
made it. The variants are the kernels' code paths: the 16-byte and the one-channel
sample_triplane kernels, float64, half planes and colours under autocast, the decode
fast path and the general one, compositing with and without the colour gradient, the
deformation field at widths that are not multiples of the warp.

    python tools/sanitize_ops.py --device cuda     # what gpu_sanitize.sh runs
    python tools/sanitize_ops.py --device cpu      # the same calls on the CPU kernels
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

import torch

import nofa.ops as ops
from nofa.models import DeformationField


def _run(
    name: str, op: str, fn: Callable[[], object], leaves: list[torch.Tensor], device: str
) -> None:
    print(f"== {name}", flush=True)
    for t in leaves:
        t.grad = None
    with ops.use_backend("kernels"), ops.trace_backends() as tr:
        out = fn()
        outs = [o for o in (out if isinstance(out, tuple) else (out,)) if o.requires_grad]
        g = torch.Generator().manual_seed(0)
        torch.autograd.backward(
            [o.float() for o in outs],
            [torch.randn(o.shape, generator=g).to(o.device) for o in outs],
        )
    if device == "cuda":
        torch.cuda.synchronize()
    if tr.backends(op) != {"kernels"}:
        raise RuntimeError(
            f"{name}: {op} ran on {sorted(tr.backends(op)) or 'nothing'}, not the kernels"
        )
    missing = [
        i for i, t in enumerate(leaves) if t.grad is None or not torch.isfinite(t.grad).all()
    ]
    if missing:
        raise RuntimeError(f"{name}: no finite gradient for leaves {missing}")


def _leaf(t: torch.Tensor, device: str) -> torch.Tensor:
    return t.to(device).requires_grad_()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", choices=["cpu", "cuda"])
    args = ap.parse_args(argv)
    dev = args.device
    if dev == "cuda" and not torch.cuda.is_available():
        print("sanitize_ops: --device cuda but no CUDA GPU is visible", file=sys.stderr)
        return 2
    if not ops.kernels_available(dev):
        print(
            f"sanitize_ops: nofa kernels not compiled for {dev}: {ops.build_info()}",
            file=sys.stderr,
        )
        return 2
    g = torch.Generator().manual_seed(0)
    half = torch.autocast(dev, dtype=torch.bfloat16)  # the CUDA half kernels; float32 on the CPU

    def points(n: int, m: int) -> torch.Tensor:
        return _leaf(torch.rand(n, m, 3, generator=g) * 1.2 - 0.6, dev)

    # sample_triplane: vec4 (C % 4 == 0) and one-channel kernels, both reductions, float64, half.
    for C, dtype, reduce in (
        (32, torch.float32, "mean"),
        (32, torch.float32, "concat"),
        (5, torch.float32, "mean"),
        (4, torch.float64, "concat"),
    ):
        planes = _leaf(torch.randn(2, 3, C, 16, 12, generator=g, dtype=dtype), dev)
        pts = _leaf((torch.rand(2, 300, 3, generator=g, dtype=dtype) * 1.2 - 0.6), dev)
        _run(
            f"sample_triplane C={C} {dtype} {reduce}",
            "sample_triplane",
            lambda p=planes, x=pts, r=reduce: ops.sample_triplane(p, x, 1.0, r),
            [planes, pts],
            dev,
        )
    planes, pts = _leaf(torch.randn(1, 3, 32, 16, 16, generator=g), dev), points(1, 300)

    def sample_half():
        with half:
            return ops.sample_triplane(planes, pts, 1.0, "mean")

    _run("sample_triplane bf16 autocast", "sample_triplane", sample_half, [planes, pts], dev)

    # decode_triplane: the fast path (EG3D's 32-64-33 decoder), a general shape, float64, half.
    for C, hidden, out, dtype in (
        (32, 64, 33, torch.float32),
        (6, 10, 5, torch.float32),
        (32, 64, 33, torch.float64),
    ):
        planes = _leaf(torch.randn(1, 3, C, 16, 16, generator=g, dtype=dtype), dev)
        pts = _leaf(torch.rand(1, 333, 3, generator=g, dtype=dtype) * 1.2 - 0.6, dev)
        w = [
            _leaf(torch.randn(*s, generator=g, dtype=dtype) * 0.2, dev)
            for s in ((hidden, C), (hidden,), (out, hidden), (out,))
        ]
        _run(
            f"decode_triplane C={C} hidden={hidden} out={out} {dtype}",
            "decode_triplane",
            lambda p=planes, x=pts, w=w: ops.decode_triplane(p, x, 1.0, *w),
            [planes, pts, *w],
            dev,
        )

    def decode_half():
        with half:
            return ops.decode_triplane(planes, pts, 1.0, *w)

    planes = _leaf(torch.randn(1, 3, 32, 16, 16, generator=g), dev)
    pts = points(1, 333)
    w = [_leaf(torch.randn(*s, generator=g) * 0.2, dev) for s in ((64, 32), (64,), (33, 64), (33,))]
    _run("decode_triplane bf16 autocast", "decode_triplane", decode_half, [planes, pts, *w], dev)

    # composite_rays / composite_rays_merged: float32 and float64, without the colour
    # gradient, half colours.
    def samples(rays: int, S: int, C: int, dtype=torch.float32, colors_grad: bool = True):
        col = (
            torch.rand(1, rays, S, C, generator=g, dtype=dtype).to(dev).requires_grad_(colors_grad)
        )
        dens = _leaf(torch.randn(1, rays, S, 1, generator=g, dtype=dtype) * 3, dev)
        z = _leaf(
            torch.sort(torch.rand(1, rays, S, 1, generator=g, dtype=dtype) + 2, dim=2)[0], dev
        )
        return col, dens, z

    for dtype, cg in ((torch.float32, True), (torch.float64, True), (torch.float32, False)):
        col, dens, z = samples(50, 24, 32, dtype, cg)
        _run(
            f"composite_rays {dtype} colors_grad={cg}",
            "composite_rays",
            lambda c=col, d=dens, z=z: ops.composite_rays(c, d, z),
            [t for t in (col, dens, z) if t.requires_grad],
            dev,
        )
    a, b = samples(50, 12, 32), samples(50, 20, 32)
    _run(
        "composite_rays_merged",
        "composite_rays_merged",
        lambda: ops.composite_rays_merged(*a, *b),
        [*a, *b],
        dev,
    )

    def merged_half():
        with half:
            return ops.composite_rays_merged(*a, *b)

    _run("composite_rays_merged bf16 autocast", "composite_rays_merged", merged_half, [*a, *b], dev)

    # deform_points: widths that are not multiples of 32, float32 and float64.
    for dtype in (torch.float32, torch.float64):
        torch.manual_seed(0)
        field = DeformationField(
            n_freqs=4, id_dim=6, exp_dim=5, d_hidden=40, d_layers=3, w_hidden=16, w_layers=2
        ).to(dev, dtype)
        pts = _leaf(torch.rand(2, 97, 3, generator=g, dtype=dtype) * 1.2 - 0.6, dev)
        alpha = _leaf(torch.randn(2, 6, generator=g, dtype=dtype), dev)
        beta = _leaf(torch.randn(2, 5, generator=g, dtype=dtype), dev)
        _run(
            f"deform_points {dtype}",
            "deform_points",
            lambda f=field, x=pts, al=alpha, be=beta: f(x, al, be),
            [pts, alpha, beta, *field.parameters()],
            dev,
        )

    planes = _leaf(torch.randn(1, 3, 8, 6, 5, generator=g), dev)
    _run(
        "channels_last_planes",
        "channels_last_planes",
        lambda: ops.channels_last_planes(planes) * 1.0,
        [planes],
        dev,
    )
    print("sanitize_ops: every call ran on the kernels", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
