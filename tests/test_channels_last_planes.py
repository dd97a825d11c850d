"""channels_last_planes: exact values, layouts, gradients, both directions (the op and
torch.ops.nofa.channels_last_planes, its kernels)."""

from __future__ import annotations

import pytest
import torch
from conftest import DEVICES, require_kernels

import nofa.ops as ops
from nofa.ops import reference


def cl_strides(shape):
    N, P, C, H, W = shape
    return (P * H * W * C, H * W * C, 1, W * C, C)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    "shape", [(1, 3, 32, 17, 9), (2, 3, 5, 64, 70), (1, 3, 1, 1, 1), (0, 3, 4, 5, 6)]
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_both_directions_are_exact(device, shape, dtype):
    require_kernels(device)
    x = torch.randn(shape, device=device, dtype=dtype)
    with ops.trace_backends() as tr:
        y = ops.channels_last_planes(x)
    trivial = ops.is_channels_last(x)  # sizes of 0 or 1 make both layouts the same
    assert tr.backends("channels_last_planes") == (set() if trivial else {"kernels"})
    assert y.shape == x.shape and torch.equal(y, x)
    assert trivial or y.stride() == cl_strides(shape)
    assert ops.is_channels_last(y) and ops.channels_last_planes(y) is y
    z = torch.ops.nofa.channels_last_planes(y, False)
    assert z.is_contiguous() and torch.equal(z, x)


def test_odd_layouts_fall_back_to_a_plain_copy():
    require_kernels("cpu")
    x = torch.randn(2, 3, 6, 7, 8).transpose(3, 4)  # neither contiguous nor channels-last
    y = torch.ops.nofa.channels_last_planes(x, True)
    assert y.stride() == cl_strides(x.shape) and torch.equal(y, x)
    z = torch.ops.nofa.channels_last_planes(x, False)
    assert z.is_contiguous() and torch.equal(z, x)


def test_gradient_comes_back_contiguous():
    require_kernels("cpu")
    x = torch.randn(1, 3, 8, 12, 10, requires_grad=True)
    w = torch.randn(1, 3, 8, 12, 10)
    y = ops.channels_last_planes(x)
    (y * w).sum().backward()
    assert x.grad.is_contiguous() and torch.equal(x.grad, w)


def test_reference_twin_and_opcheck():
    require_kernels("cpu")
    x = torch.randn(1, 3, 4, 5, 6, requires_grad=True)
    assert torch.equal(reference.channels_last_planes(x), ops.channels_last_planes(x))
    with ops.use_backend("torch"), ops.trace_backends() as tr:
        y = ops.channels_last_planes(x)
    assert tr.backends("channels_last_planes") == {"torch"} and y.stride() == cl_strides(x.shape)
    torch.library.opcheck(torch.ops.nofa.channels_last_planes.default, (x, True))
    torch.library.opcheck(
        torch.ops.nofa.channels_last_planes.default, (y.detach().requires_grad_(), False)
    )


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="planes"):
        ops.channels_last_planes(torch.randn(3, 4, 5, 6))
    if ops.kernels_available("cpu", "channels_last_planes"):
        with pytest.raises(RuntimeError, match="planes"):
            torch.ops.nofa.channels_last_planes(torch.zeros(3, 4, 5, 6, dtype=torch.int64), True)
