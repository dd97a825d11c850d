"""nofa's kernel layer: custom ops with CPU and CUDA kernels and pure-PyTorch twins.

    import nofa.ops as ops
    feats = ops.sample_triplane(planes, points)          # kernels when compiled
    with ops.use_backend("torch"):                         # force the reference
        ref = ops.sample_triplane(planes, points)
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
from .composite_merged import composite_rays_merged
from .composite_rays import composite_rays
from .decode_triplane import decode_triplane
from .deform_points import deform_points
from .relayout_planes import channels_last_planes, is_channels_last
from .sample_triplane import sample_triplane

__all__ = [
    "BACKENDS",
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
    "reference",
    "sample_triplane",
    "trace_backends",
    "use_backend",
]
