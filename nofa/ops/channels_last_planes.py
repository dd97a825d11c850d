"""`channels_last_planes` and `prepare_planes`: tri-planes stored channels-last (the
`torch.ops.nofa.channels_last_planes` kernels), with autograd and fake registrations.

The CPU kernels read the C values of a bilinear tap as one contiguous vector; they accept
[N, 3, C, H, W] planes in either memory layout and transpose ordinary ones themselves on
every call. A caller that runs several kernels on the same planes (the renderer: coarse
pass, fine pass, backward) transposes once with this op instead.
"""

from __future__ import annotations

import torch

from . import _backend, _checks, reference


def channels_last_planes(planes: torch.Tensor) -> torch.Tensor:
    """The same [N, 3, C, H, W] values, stored channels-last ([N, 3, H, W, C] in memory).

    Differentiable; the gradient comes back in planes' own layout. A no-op copy-wise when
    planes already are channels-last.
    """
    _checks.tensor("planes", planes, dims=5, layout="[N, 3, C, H, W]")
    _checks.dim_size("planes", planes, 1, 3, "[N, 3, C, H, W]")
    if is_channels_last(planes):
        return planes
    return _backend.dispatch(
        "channels_last_planes",
        planes.device,
        lambda: torch.ops.nofa.channels_last_planes(planes, True),
        lambda: reference.channels_last_planes(planes),
    )


def prepare_planes(planes: torch.Tensor) -> torch.Tensor:
    """planes [N, 3, C, H, W] in the memory layout the tri-plane kernels read fastest on
    planes' device, for a caller that runs several lookups on the same planes.

    Today: channels-last on the CPU and on CUDA when the device's decode_triplane kernel will
    run (backend not "torch"), else planes unchanged. Differentiable; the gradient comes back in
    planes'
    own layout. A choice of layout, never an error or a fallback warning.
    """
    _checks.tensor("planes", planes, dims=5, layout="[N, 3, C, H, W]")
    _checks.dim_size("planes", planes, 1, 3, "[N, 3, C, H, W]")
    if planes.device.type in ("cpu", "cuda") and _backend.prefers_kernel(
        "decode_triplane", planes.device.type
    ):
        return channels_last_planes(planes)
    return planes


def is_channels_last(planes: torch.Tensor) -> bool:
    """Whether [N, 3, C, H, W] planes are stored as [N, 3, H, W, C]."""
    return planes.dim() == 5 and planes.permute(0, 1, 3, 4, 2).is_contiguous()


def _register() -> None:
    @torch.library.register_fake("nofa::channels_last_planes")
    def _(planes, channels_last):
        if channels_last:
            return torch.empty_permuted(
                planes.shape, (0, 1, 3, 4, 2), dtype=planes.dtype, device=planes.device
            )
        return planes.new_empty(planes.shape)

    def setup_context(ctx, inputs, output):
        ctx.channels_last = inputs[1]

    def backward(ctx, grad):
        return torch.ops.nofa.channels_last_planes(grad, not ctx.channels_last), None

    torch.library.register_autograd(
        "nofa::channels_last_planes", backward, setup_context=setup_context
    )


if _backend._C is not None:
    _register()
