"""Bad input to the CUDA ops called directly (torch.ops.nofa.*, no Python checks in front):
each must raise a RuntimeError naming the argument, never crash the process.

Both GPU runs so far died (SIGSEGV) in the unsupported deform_points width cases, cause not
yet found. So the cases run in child processes (tests/isolated_cases.py): a crash fails this
test naming the case, with the Python stack of the crash (faulthandler) and, where
NOFA_CRASH_DEBUGGER names a debugger (tools/gpu_check.sh sets cuda-gdb), its native stack;
the cases after it still run in a new child, so every case reports.

Without a GPU the same cases (those needing one device only) run with CPU tensors handed
to the CUDA kernels' entry points by redispatch: every check that comes before device work
is tested wherever the CUDA kernels are compiled.
"""

from __future__ import annotations

import os
import textwrap

import pytest
from conftest import HAS_CUDA, require_kernels
from isolated_cases import CASE_RUNNER, run_isolated

import nofa.ops as ops

SCRIPT = (
    textwrap.dedent(
        r"""
    import os
    import torch
    import nofa.ops  # registers the ops
    from nofa.models.deformation import DeformationField

    # "cuda": CUDA tensors through the dispatcher (a GPU). "redispatch": CPU tensors handed
    # straight to the CUDA kernels' entry points (their C++ checks run before any device
    # work), so the checks and these cases run wherever the CUDA kernels are compiled.
    MODE = os.environ["NOFA_ERRORS_MODE"]
    dev = "cuda" if MODE == "cuda" else "cpu"
    cases = []

    def case(name, word, two_devices=False):
        def deco(fn):
            if not (two_devices and MODE == "redispatch"):
                cases.append((name, word, fn))
            return fn
        return deco

    def call(name, *args):
        op = getattr(torch.ops.nofa, name)
        if MODE == "redispatch" and name != "composite_rays":  # composite_rays: the CPU control
            return op.default.redispatch(torch._C.DispatchKeySet(torch._C.DispatchKey.CUDA), *args)
        return op(*args)

    def dp_args(d_hidden):
        m = DeformationField(n_freqs=2, id_dim=4, exp_dim=3, d_hidden=d_hidden, d_layers=3,
        w_hidden=32,
                             w_layers=2).to(dev)
        pts, a, b = torch.rand(1, 50, 3, device=dev), torch.randn(1, 4, device=dev), torch.randn(1,
        3, device=dev)
        return m, (pts, a, b, list(m.d_weights), list(m.d_biases), list(m.w_weights),
        list(m.w_biases), 2, False)

    # Controls first: if these crash too, C++ exceptions crash on this machine in general
    # (torch's own, then one thrown by nofa's CPU glue), not because of the CUDA glue.
    @case("control: ATen shape error", "size of tensor")
    def _():
        torch.zeros(2, device=dev) + torch.zeros(3, device=dev)

    @case("control: nofa CPU op check", "densities")
    def _():
        c = torch.rand(1, 2, 4, 3)
        call("composite_rays", c, c, c[..., :1], False)

    @case("deform_points width 264 (no grad)", "supports hidden widths")
    def _():
        with torch.no_grad():
            call("deform_points", *dp_args(264)[1])

    @case("deform_points width 264 (autograd)", "supports hidden widths")
    def _():
        call("deform_points", *dp_args(264)[1])

    @case("deform_points_backward width 264", "supports hidden widths")
    def _():
        m, args = dp_args(264)
        g = torch.zeros(1, 50, 3, device=dev)
        call("deform_points_backward", g, g, g[..., :1], *args[:-1], torch.empty(0, 50, 0,
        device=dev))

    @case("deform_points_backward CPU cotangent", "grad_x_c", two_devices=True)
    def _():
        m, args = dp_args(32)
        g = torch.zeros(1, 50, 3, device=dev)
        call("deform_points_backward", g.cpu(), g, g[..., :1], *args[:-1], torch.empty(0, 50, 0,
        device=dev))

    @case("sample_triplane_backward CPU grad_out", "grad_out", two_devices=True)
    def _():
        planes, pts = torch.randn(1, 3, 4, 5, 5, device=dev), torch.rand(1, 7, 3, device=dev)
        call("sample_triplane_backward", torch.zeros(1, 7, 4), planes, pts, 1.0, "mean", True, True)

    @case("composite_rays_backward CPU grad_features", "grad_features", two_devices=True)
    def _():
        c, d, z = torch.rand(1, 2, 4, 3, device=dev), torch.rand(1, 2, 4, 1, device=dev),
        torch.rand(1, 2, 4, 1, device=dev)
        call("composite_rays_backward", torch.zeros(1, 2, 3), None, None, c, d, z, False, True,
        True, True)

    def dec(C=4, Hd=6, F=2):
        planes, pts = torch.randn(1, 3, C, 5, 5, device=dev), torch.rand(1, 7, 3, device=dev)
        return [planes, pts, torch.randn(Hd, C, device=dev), torch.randn(Hd, device=dev),
                torch.randn(1 + F, Hd, device=dev), torch.randn(1 + F, device=dev)]

    @case("decode_triplane_backward CPU grad_features", "grad_features", two_devices=True)
    def _():
        p, x, *w = dec()
        call("decode_triplane_backward", torch.zeros(1, 7, 1, device=dev), torch.zeros(1, 7, 2),
        None,
                                                p, x, 1.0, *w, True, True, True)

    @case("decode_triplane zero hidden", "hidden >= 1")
    def _():
        p, x, *w = dec(Hd=0)
        call("decode_triplane", p, x, 1.0, *w)

    @case("decode_triplane zero channels", "C >= 1")
    def _():
        p, x, *w = dec(C=0)
        call("decode_triplane", p, x, 1.0, *w)

    """
    )
    + CASE_RUNNER
    + "\nrun_cases(cases)\n"
)


def _run(mode: str):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {
        "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "NOFA_ERRORS_MODE": mode,
    }
    # tools/gpu_check.sh names cuda-gdb here, so that a crash comes back with its native stack.
    return run_isolated(SCRIPT, env=env, debugger=os.environ.get("NOFA_CRASH_DEBUGGER"))


@pytest.mark.cuda
@pytest.mark.skipif(not HAS_CUDA, reason="no CUDA GPU visible: CUDA kernel not exercised")
def test_cuda_ops_raise_on_bad_input_without_crashing():
    require_kernels("cuda")
    report = _run("cuda")
    assert report.outcomes and not report.failures, report.text()


@pytest.mark.skipif(
    not ops.kernels_available("cuda", "deform_points"), reason="nofa built without CUDA kernels"
)
def test_cuda_entry_point_checks_without_a_gpu():
    """The same cases with CPU tensors handed to the CUDA kernels' entry points: the C++
    checks that come before any device work raise, with the argument named."""
    report = _run("redispatch")
    assert len(report.outcomes) >= 7 and not report.failures, report.text()
