"""`sample_triplane`: the public op, its autograd and fake registrations."""

from __future__ import annotations

import torch

from . import _backend, _checks, reference

REDUCES = ("mean", "concat")


def sample_triplane(
    planes: torch.Tensor, points: torch.Tensor, box_warp: float = 1.0, reduce: str = "mean"
) -> torch.Tensor:
    """Bilinear lookup of EG3D tri-plane features at 3D points.

    Args:
        planes: [N, 3, C, H, W] float32/float64 tri-plane features (EG3D layout), in either
            memory layout (see :func:`prepare_planes`).
        points: [N, M, 3] world coordinates. Plane 0 samples (x, y), plane 1 (x, z), plane 2
            (z, x) (EG3D's convention), each square spanning [-box_warp/2, box_warp/2]^2.
        box_warp: side length of the tri-plane box (a positive finite number).
        reduce: "mean" (EG3D: average of the three planes) or "concat".

    Returns:
        [N, M, C] for "mean", [N, M, 3C] for "concat" (plane 0, 1, 2 channel blocks).

    Bilinear, align_corners=False, zero padding, per plane: a plane reads zero where the
    point's projection onto it falls outside its square, so a point outside the cube still
    reads the planes whose projection lands inside (as in EG3D). A non-finite coordinate
    (NaN, +-inf) counts as outside: the planes that use it read zero and pass no gradient
    to it; the other planes are unaffected. Differentiable w.r.t. planes and points (first
    derivatives only: double backward through the kernel raises).
    """
    _checks.tensor("planes", planes, dims=5, layout="[N, 3, C, H, W]")
    _checks.tensor("points", points, dims=3, layout="[N, M, 3]")
    _checks.dim_size("planes", planes, 1, 3, "[N, 3, C, H, W]")
    _checks.dim_size("points", points, 2, 3, "[N, M, 3]")
    _checks.same_batch(planes=planes, points=points)
    _checks.same_device(planes=planes, points=points)
    _checks.same_dtype(planes=planes, points=points)
    if reduce not in REDUCES:
        raise ValueError(f"reduce must be one of {REDUCES}, got {reduce!r}")
    box_warp = _checks.box_warp(box_warp)
    return _backend.dispatch(
        "sample_triplane",
        planes.device,
        lambda: torch.ops.nofa.sample_triplane(planes, points, box_warp, reduce),
        lambda: reference.sample_triplane(planes, points, box_warp, reduce),
    )


def _out_channels(planes: torch.Tensor, reduce: str):
    return planes.shape[2] * (3 if reduce == "concat" else 1)


def _register() -> None:
    @torch.library.register_fake("nofa::sample_triplane")
    def _(planes, points, box_warp, reduce):
        return planes.new_empty(planes.shape[0], points.shape[1], _out_channels(planes, reduce))

    @torch.library.register_fake("nofa::sample_triplane_backward")
    def _(grad_out, planes, points, box_warp, reduce, planes_grad, points_grad):
        # The kernels return the plane gradient with planes' own layout (empty_like's strides).
        gp = torch.empty_like(planes) if planes_grad else planes.new_empty(0)
        gx = points.new_empty(points.shape) if points_grad else points.new_empty(0)
        return gp, gx

    def setup_context(ctx, inputs, output):
        planes, points, box_warp, reduce = inputs
        ctx.save_for_backward(planes, points)
        ctx.box_warp, ctx.reduce = box_warp, reduce

    def backward(ctx, grad):
        planes, points = ctx.saved_tensors
        need_p, need_x = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        gp, gx = torch.ops.nofa.sample_triplane_backward(
            grad, planes, points, ctx.box_warp, ctx.reduce, need_p, need_x
        )
        return (gp if need_p else None), (gx if need_x else None), None, None

    torch.library.register_autograd("nofa::sample_triplane", backward, setup_context=setup_context)
    torch.library.register_autograd(
        "nofa::sample_triplane_backward", _backend.no_double_backward("sample_triplane")
    )


if _backend._C is not None:
    _register()
