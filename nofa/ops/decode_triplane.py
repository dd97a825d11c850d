"""`decode_triplane`: tri-plane lookup fused with EG3D's OSG decoder; autograd and fake
registrations."""

from __future__ import annotations

import torch

from . import _backend, _checks, reference


def decode_triplane(
    planes: torch.Tensor,
    points: torch.Tensor,
    box_warp: float,
    fc0_weight: torch.Tensor,
    fc0_bias: torch.Tensor,
    fc1_weight: torch.Tensor,
    fc1_bias: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`sample_triplane(planes, points, box_warp, "mean")` followed by the OSG decoder.

    Args:
        planes: [N, 3, C, H, W] tri-plane features (EG3D layout).
        points: [N, M, 3] world coordinates (see :func:`sample_triplane`).
        box_warp: side length of the tri-plane box (> 0).
        fc0_weight, fc0_bias: [Hd, C], [Hd] (nn.Linear layout).
        fc1_weight, fc1_bias: [1 + F, Hd], [1 + F].

    Returns:
        (raw density [N, M, 1], features [N, M, F]) with x = fc1(softplus(fc0(f))),
        density = x[..., :1], features = sigmoid(x[..., 1:]) * 1.002 - 0.001.

    Non-finite coordinates follow :func:`sample_triplane`'s rule (the planes using them read
    zero), so such a point decodes the remaining planes' features. Differentiable w.r.t.
    planes, points and all four decoder tensors (first derivatives only: double backward
    through the kernel raises). The kernels never materialise the [N, M, Hd] hidden
    activations.
    """
    _checks.tensor("planes", planes, dims=5, layout="[N, 3, C, H, W]")
    _checks.tensor("points", points, dims=3, layout="[N, M, 3]")
    _checks.dim_size("planes", planes, 1, 3, "[N, 3, C, H, W]")
    _checks.dim_size("points", points, 2, 3, "[N, M, 3]")
    _checks.tensor("fc0_weight", fc0_weight, dims=2, layout="[Hd, C]")
    _checks.tensor("fc0_bias", fc0_bias, dims=1, layout="[Hd]")
    _checks.tensor("fc1_weight", fc1_weight, dims=2, layout="[1 + F, Hd]")
    _checks.tensor("fc1_bias", fc1_bias, dims=1, layout="[1 + F]")
    C, Hd, O = planes.shape[2], fc0_weight.shape[0], fc1_weight.shape[0]
    _checks.dim_size("fc0_weight", fc0_weight, 1, C, f"[Hd, C = {C}]")
    _checks.dim_size("fc0_bias", fc0_bias, 0, Hd, f"[Hd = {Hd}]")
    _checks.dim_size("fc1_weight", fc1_weight, 1, Hd, f"[1 + F, Hd = {Hd}]")
    if O < 1:
        raise ValueError(
            "fc1_weight must have shape [1 + F, Hd] with at least 1 row, got "
            f"{list(fc1_weight.shape)}"
        )
    _checks.dim_size("fc1_bias", fc1_bias, 0, O, f"[1 + F = {O}]")
    _checks.same_batch(planes=planes, points=points)
    tensors = dict(
        planes=planes,
        points=points,
        fc0_weight=fc0_weight,
        fc0_bias=fc0_bias,
        fc1_weight=fc1_weight,
        fc1_bias=fc1_bias,
    )
    _checks.same_device(**tensors)
    _checks.same_dtype(**tensors)
    box_warp = _checks.box_warp(box_warp)
    args = (fc0_weight, fc0_bias, fc1_weight, fc1_bias)
    return _backend.dispatch(
        "decode_triplane",
        planes.device,
        lambda: torch.ops.nofa.decode_triplane(planes, points, box_warp, *args),
        lambda: reference.decode_triplane(planes, points, box_warp, *args),
    )


def _register() -> None:
    @torch.library.register_fake("nofa::decode_triplane")
    def _(planes, points, box_warp, w0, b0, w1, b1):
        N, M = planes.shape[0], points.shape[1]
        # float16 / bfloat16 planes (CUDA autocast): the outputs are float32 like the points.
        like = points if planes.dtype in (torch.float16, torch.bfloat16) else planes
        return like.new_empty(N, M, 1), like.new_empty(N, M, w1.shape[0] - 1)

    @torch.library.register_fake("nofa::decode_triplane_backward")
    def _(
        gd,
        gf,
        features,
        planes,
        points,
        box_warp,
        w0,
        b0,
        w1,
        b1,
        planes_grad,
        points_grad,
        weights_grad,
    ):
        gp = torch.empty_like(planes) if planes_grad else planes.new_empty(0)  # planes' layout
        gx = points.new_empty(points.shape) if points_grad else points.new_empty(0)
        gw = [w.new_empty(w.shape) if weights_grad else w.new_empty(0) for w in (w0, b0, w1, b1)]
        return (gp, gx, *gw)

    def setup_context(ctx, inputs, output):
        planes, points, box_warp, w0, b0, w1, b1 = inputs
        # The features output is kept alive by any consumer anyway; the CPU kernel reads
        # the output layer's sigmoid from it instead of recomputing that layer.
        ctx.save_for_backward(planes, points, w0, b0, w1, b1, output[1])
        ctx.box_warp = box_warp

    def backward(ctx, grad_density, grad_features):
        planes, points, w0, b0, w1, b1, features = ctx.saved_tensors
        need = ctx.needs_input_grad
        # One flag for the four decoder tensors: their gradients come from the same products.
        grads = torch.ops.nofa.decode_triplane_backward(
            grad_density,
            grad_features,
            features,
            planes,
            points,
            ctx.box_warp,
            w0,
            b0,
            w1,
            b1,
            need[0],
            need[1],
            any(need[3:7]),
        )
        gp, gx, gw0, gb0, gw1, gb1 = grads
        keep = lambda g, i: g if need[i] else None  # noqa: E731
        return (
            keep(gp, 0),
            keep(gx, 1),
            None,
            keep(gw0, 3),
            keep(gb0, 4),
            keep(gw1, 5),
            keep(gb1, 6),
        )

    torch.library.register_autograd("nofa::decode_triplane", backward, setup_context=setup_context)
    torch.library.register_autograd(
        "nofa::decode_triplane_backward", _backend.no_double_backward("decode_triplane")
    )


if _backend._C is not None:
    _register()
