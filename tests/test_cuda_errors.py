"""Bad input to the CUDA ops called directly (torch.ops.nofa.*, no Python checks in front):
each must raise a RuntimeError naming the argument, never crash the process.

Both GPU runs so far died (SIGSEGV) in the unsupported deform_points width cases, cause not
yet found. So the cases run in child processes (tests/isolated_cases.py): a crash fails this
test naming the case, with the Python stack of the crash (faulthandler) and, where
NOFA_CRASH_DEBUGGER names a debugger (tools/gpu_check.sh sets cuda-gdb), its native stack;
the cases after it still run in a new child, so every case reports.
"""
from __future__ import annotations

import os
import textwrap

import pytest

from conftest import HAS_CUDA, require_kernels
from isolated_cases import CASE_RUNNER, run_isolated

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not HAS_CUDA, reason="no CUDA GPU visible: CUDA kernel not exercised")]

SCRIPT = textwrap.dedent(
    r'''
    import torch
    import nofa.ops  # registers the ops
    from nofa.models.deformation import DeformationField

    dev = "cuda"
    cases = []

    def case(name, word):
        def deco(fn):
            cases.append((name, word, fn))
            return fn
        return deco

    def dp_args(d_hidden):
        m = DeformationField(n_freqs=2, id_dim=4, exp_dim=3, d_hidden=d_hidden, d_layers=3, w_hidden=32,
                             w_layers=2).to(dev)
        pts, a, b = torch.rand(1, 50, 3, device=dev), torch.randn(1, 4, device=dev), torch.randn(1, 3, device=dev)
        return m, (pts, a, b, list(m.d_weights), list(m.d_biases), list(m.w_weights), list(m.w_biases), 2, False)

    # Controls first: if these crash too, C++ exceptions crash on this machine in general
    # (torch's own, then one thrown by nofa's CPU glue), not because of the CUDA glue.
    @case("control: ATen shape error", "size of tensor")
    def _():
        torch.zeros(2, device=dev) + torch.zeros(3, device=dev)

    @case("control: nofa CPU op check", "densities")
    def _():
        c = torch.rand(1, 2, 4, 3)
        torch.ops.nofa.composite_rays(c, c, c[..., :1], False)

    @case("deform_points width 40 (no grad)", "supports hidden widths")
    def _():
        with torch.no_grad():
            torch.ops.nofa.deform_points(*dp_args(40)[1])

    @case("deform_points width 40 (autograd)", "supports hidden widths")
    def _():
        torch.ops.nofa.deform_points(*dp_args(40)[1])

    @case("deform_points_backward width 40", "supports hidden widths")
    def _():
        m, args = dp_args(40)
        g = torch.zeros(1, 50, 3, device=dev)
        torch.ops.nofa.deform_points_backward(g, g, g[..., :1], *args, torch.empty(0, 50, 0, device=dev))

    @case("deform_points_backward CPU cotangent", "grad_x_c")
    def _():
        m, args = dp_args(32)
        g = torch.zeros(1, 50, 3, device=dev)
        torch.ops.nofa.deform_points_backward(g.cpu(), g, g[..., :1], *args, torch.empty(0, 50, 0, device=dev))

    @case("sample_triplane_backward CPU grad_out", "grad_out")
    def _():
        planes, pts = torch.randn(1, 3, 4, 5, 5, device=dev), torch.rand(1, 7, 3, device=dev)
        torch.ops.nofa.sample_triplane_backward(torch.zeros(1, 7, 4), planes, pts, 1.0, "mean", True, True)

    @case("composite_rays_backward CPU grad_features", "grad_features")
    def _():
        c, d, z = torch.rand(1, 2, 4, 3, device=dev), torch.rand(1, 2, 4, 1, device=dev), torch.rand(1, 2, 4, 1, device=dev)
        torch.ops.nofa.composite_rays_backward(torch.zeros(1, 2, 3), None, None, c, d, z, False, True, True, True)

    def dec(C=4, Hd=6, F=2):
        planes, pts = torch.randn(1, 3, C, 5, 5, device=dev), torch.rand(1, 7, 3, device=dev)
        return [planes, pts, torch.randn(Hd, C, device=dev), torch.randn(Hd, device=dev),
                torch.randn(1 + F, Hd, device=dev), torch.randn(1 + F, device=dev)]

    @case("decode_triplane_backward CPU grad_features", "grad_features")
    def _():
        p, x, *w = dec()
        torch.ops.nofa.decode_triplane_backward(torch.zeros(1, 7, 1, device=dev), torch.zeros(1, 7, 2), None,
                                                p, x, 1.0, *w, True, True, True)

    @case("decode_triplane zero hidden", "hidden >= 1")
    def _():
        p, x, *w = dec(Hd=0)
        torch.ops.nofa.decode_triplane(p, x, 1.0, *w)

    @case("decode_triplane zero channels", "C >= 1")
    def _():
        p, x, *w = dec(C=0)
        torch.ops.nofa.decode_triplane(p, x, 1.0, *w)

    '''
) + CASE_RUNNER + "\nrun_cases(cases)\n"


def test_cuda_ops_raise_on_bad_input_without_crashing():
    require_kernels("cuda")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {"PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", ""), "TORCH_SHOW_CPP_STACKTRACES": "1"}
    # tools/gpu_check.sh names cuda-gdb here, so that a crash comes back with its native stack.
    report = run_isolated(SCRIPT, env=env, debugger=os.environ.get("NOFA_CRASH_DEBUGGER"))
    assert report.outcomes and not report.failures, report.text()
