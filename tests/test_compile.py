"""torch.compile(fullgraph=True) of every public op and of the renderer, forward and
backward, matches eager mode, on the kernels and on the reference. The backend of each op
is chosen while tracing (docs/architecture.md, "Dispatch")."""

from __future__ import annotations

import pytest
import torch
from conftest import require_kernels

import nofa.ops as ops
from nofa.render import OSGDecoder, RenderOptions, TriplaneRenderer, default_label

BACKENDS = ["kernels", "torch"]


def _inputs():
    from nofa.models import DeformationField

    g = torch.Generator().manual_seed(0)
    planes = torch.randn(1, 3, 4, 8, 8, generator=g)
    pts = torch.rand(1, 20, 3, generator=g) - 0.5
    w = [
        torch.randn(16, 4, generator=g),
        torch.randn(16, generator=g),
        torch.randn(3, 16, generator=g),
        torch.randn(3, generator=g),
    ]
    c = torch.rand(1, 5, 6, 3, generator=g)
    d = torch.randn(1, 5, 6, 1, generator=g)
    z = torch.sort(torch.rand(1, 5, 6, 1, generator=g) + 2, 2)[0]
    torch.manual_seed(0)
    field = DeformationField(d_hidden=32, w_hidden=32)
    ab = (torch.randn(1, 80, generator=g), torch.randn(1, 64, generator=g))
    return {
        "sample_triplane": (lambda p, x: ops.sample_triplane(p, x, 1.0, "concat"), (planes, pts)),
        "decode_triplane": (lambda p, x, *w: ops.decode_triplane(p, x, 1.0, *w), (planes, pts, *w)),
        "composite_rays": (lambda c, d, z: ops.composite_rays(c, d, z, True), (c, d, z)),
        "composite_rays_merged": (
            lambda c, d, z: ops.composite_rays_merged(
                c[:, :, :2], d[:, :, :2], z[:, :, :2], c[:, :, 2:], d[:, :, 2:], z[:, :, 2:]
            ),
            (c, d, z),
        ),
        "deform_points": (lambda x, a, b: field(x, a, b), (pts, *ab)),
        "channels_last_planes": (lambda p: ops.channels_last_planes(p) * 2, (planes,)),
        "prepare_planes": (lambda p: ops.prepare_planes(p) * 2, (planes,)),
    }


def _fwd_bwd(fn, inputs):
    xs = [t.clone().requires_grad_() for t in inputs]
    outs = fn(*xs)
    outs = outs if isinstance(outs, tuple) else (outs,)
    loss = sum((o * o).sum() for o in outs)
    return [o.detach() for o in outs], torch.autograd.grad(loss, xs, allow_unused=True)


def _assert_same(a, b):
    for x, y in zip(a, b):
        if x is None or y is None:
            assert x is None and y is None
        else:
            torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("op", list(ops.OPS) + ["prepare_planes"])
def test_public_op_compiles_fullgraph(op, backend):
    if backend == "kernels":
        require_kernels("cpu")
    fn, inputs = _inputs()[op]
    torch._dynamo.reset()
    compiled = torch.compile(fn, fullgraph=True, backend="aot_eager")
    with ops.use_backend(backend):
        want = _fwd_bwd(fn, inputs)
        got = _fwd_bwd(compiled, inputs)
    _assert_same(got[0], want[0])
    _assert_same(got[1], want[1])


def _scene():
    torch.manual_seed(0)
    planes = torch.randn(1, 3, 8, 16, 16) * 0.8
    decoder = OSGDecoder(n_features=8, hidden=16, out_features=6)
    renderer = TriplaneRenderer(
        decoder,
        RenderOptions(
            deterministic=True, coarse_samples=8, importance_samples=8, ray_start=None, ray_end=None
        ),
    )
    labels = default_label(0.3, -0.1)[None]

    def render(p):
        out = renderer(p, labels, 6)
        return out.features, out.depth, out.weight

    def step(fn):
        p = planes.clone().requires_grad_()
        outs = fn(p)
        loss = sum((o * o).sum() for o in outs)
        return [o.detach() for o in outs], torch.autograd.grad(loss, [p, *decoder.parameters()])

    return render, step


@pytest.mark.parametrize("backend", BACKENDS)
def test_renderer_has_no_graph_breaks_and_compiles_fullgraph(backend):
    if backend == "kernels":
        require_kernels("cpu")
    render, step = _scene()
    with ops.use_backend(backend):
        torch._dynamo.reset()
        explained = torch._dynamo.explain(render)(torch.randn(1, 3, 8, 16, 16))
        assert explained.graph_break_count == 0, [b.reason for b in explained.break_reasons]
        torch._dynamo.reset()
        want = step(render)
        got = step(torch.compile(render, fullgraph=True, backend="aot_eager"))
    _assert_same(got[0], want[0])
    _assert_same(got[1], want[1])


@pytest.mark.slow
def test_renderer_compiles_with_inductor_and_matches_eager():
    # What users run: the default (Inductor) backend, kernels inside the compiled graph.
    require_kernels("cpu")
    render, step = _scene()
    with ops.use_backend("kernels"):
        torch._dynamo.reset()
        want = step(render)
        got = step(torch.compile(render, fullgraph=True))
    _assert_same(got[0], want[0])
    _assert_same(got[1], want[1])
