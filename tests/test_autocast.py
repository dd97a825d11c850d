"""torch.autocast around the ops whose kernels compute in float32 / float64 (docs/ops.md,
"Autocast"): autocast is off inside the kernels (their own ATen calls keep the inputs'
dtype), half-precision arguments are cast to float32 first, and a backward run inside an
autocast region works. deform_points had no Autocast kernel, and its first-layer bias came
back in bfloat16 under autocast ("self and mat2 must have the same dtype")."""

from __future__ import annotations

import pytest
import torch
from conftest import DEVICES, require_kernels
from test_deformation import SMALL, inputs, randomised

import nofa.ops as ops
from nofa.models.deformation import DeformationField


def _autocast(device: str):
    return torch.autocast(device, dtype=torch.bfloat16)


def _outputs_and_grads(model, pts, alpha, beta, autocast_device: str | None):
    leaves = [t.detach().clone().requires_grad_() for t in (pts, alpha, beta)]
    params = list(model.parameters())
    with torch.autocast(
        autocast_device or "cpu", dtype=torch.bfloat16, enabled=autocast_device is not None
    ):
        with ops.use_backend("kernels"), ops.trace_backends() as tr:
            outs = model(*leaves)
        # The backward inside the autocast region too (what a training loop often does).
        loss = outs[0].square().sum() + outs[1].sum() + outs[2].sum()
        grads = torch.autograd.grad(loss, leaves + params)
    assert tr.backends("deform_points") == {"kernels"}
    return [o.detach() for o in outs], grads


@pytest.mark.parametrize("device", DEVICES)
def test_deform_points_under_autocast_equals_float32(device):
    require_kernels(device)
    model = randomised(DeformationField(**SMALL)).to(device)
    pts, alpha, beta = inputs(model, 2, 97, device)
    plain, g_plain = _outputs_and_grads(model, pts, alpha, beta, None)
    auto, g_auto = _outputs_and_grads(model, pts, alpha, beta, device)
    for a, p in zip(auto, plain):
        assert a.dtype == torch.float32
        torch.testing.assert_close(a, p, rtol=0, atol=0)
    for a, p in zip(g_auto, g_plain):
        assert a.dtype == torch.float32
        torch.testing.assert_close(a, p, rtol=1e-6, atol=1e-6)


def test_half_arguments_are_computed_in_float32_on_the_cpu():
    """Half-precision arguments reaching an op under CPU autocast (a direct torch.ops call) are
    cast to float32: the result is the float32 op on the rounded inputs, and the gradient
    reaches the half-precision leaf in its dtype. Without autocast they are refused."""
    require_kernels("cpu")
    g = torch.Generator().manual_seed(0)
    planes = torch.randn(1, 3, 4, 6, 5, generator=g).bfloat16().requires_grad_()
    points = torch.rand(1, 40, 3, generator=g) * 2 - 1
    with _autocast("cpu"):
        out = torch.ops.nofa.sample_triplane(planes, points, 1.0, "mean")
    assert out.dtype == torch.float32
    torch.testing.assert_close(
        out,
        torch.ops.nofa.sample_triplane(planes.detach().float(), points, 1.0, "mean"),
        rtol=0,
        atol=0,
    )
    out.sum().backward()
    assert planes.grad is not None and planes.grad.dtype == torch.bfloat16
    with pytest.raises(RuntimeError, match="planes must be float32 or float64"):
        torch.ops.nofa.sample_triplane(planes.detach(), points, 1.0, "mean")

    # Tensor lists too: deform_points with bfloat16 weights.
    model = randomised(DeformationField(**SMALL))
    pts, alpha, beta = inputs(model, 1, 20, "cpu")
    lists = [
        [t.detach().bfloat16() for t in ts]
        for ts in (model.d_weights, model.d_biases, model.w_weights, model.w_biases)
    ]
    with _autocast("cpu"):
        got = torch.ops.nofa.deform_points(pts, alpha, beta, *lists, SMALL["n_freqs"], False)
    want = torch.ops.nofa.deform_points(
        pts, alpha, beta, *[[t.float() for t in ts] for ts in lists], SMALL["n_freqs"], False
    )
    for a, b in zip(got[:3], want[:3]):
        assert a.dtype == torch.float32
        torch.testing.assert_close(a, b, rtol=0, atol=0)
