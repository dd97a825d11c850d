"""nofa's kernel layer: custom ops with CPU and CUDA kernels and pure-PyTorch twins.

    import nofa.ops as ops
    feats = ops.sample_triplane(planes, points)          # kernels when compiled
    with ops.use_backend("torch"):                         # force the reference
        ref = ops.sample_triplane(planes, points)

Every public op validates its arguments, then `_backend.dispatch` picks the kernel or the
reference (docs/architecture.md, "Dispatch"). Layers above `ops` use only the names below.
"""

from . import cpu_isa, reference
from ._backend import (
    BACKENDS,
    build_info,
    get_backend,
    kernels_available,
    trace_backends,
    use_backend,
)
from .channels_last_planes import channels_last_planes, is_channels_last, prepare_planes
from .composite_rays import composite_rays
from .composite_rays_merged import composite_rays_merged
from .decode_triplane import decode_triplane
from .deform_points import deform_points
from .sample_triplane import sample_triplane

# The public ops: each runs the kernels torch.ops.nofa.<name> and records <name> in
# trace_backends() / looks it up in kernels_available().
OPS = (
    "sample_triplane",
    "decode_triplane",
    "composite_rays",
    "composite_rays_merged",
    "deform_points",
    "channels_last_planes",
)

__all__ = [
    "BACKENDS",
    "OPS",
    "build_info",
    "channels_last_planes",
    "composite_rays",
    "composite_rays_merged",
    "cpu_isa",
    "decode_triplane",
    "deform_points",
    "get_backend",
    "is_channels_last",
    "kernels_available",
    "prepare_planes",
    "reference",
    "sample_triplane",
    "trace_backends",
    "use_backend",
]
