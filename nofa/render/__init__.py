"""Rendering: EG3D cameras, rays, depth sampling, the OSG decoder and the tri-plane renderer.

from nofa.render import TriplaneRenderer, RenderOptions, default_label
renderer = TriplaneRenderer(OSGDecoder(), RenderOptions(deterministic=True))
out = renderer(planes, default_label(yaw=0.3)[None], resolution=64)
out.rgb, out.depth, out.weight      # [N, 3, H, W] in [-1, 1], [N, 1, H, W], [N, 1, H, W]
"""

from .cameras import (
    FFHQ_FOCAL,
    FFHQ_LOOK_AT,
    FFHQ_PRINCIPAL,
    FFHQ_RADIUS,
    camera_label,
    default_label,
    intrinsics_matrix,
    look_at_cam2world,
    orbit_labels,
    orbit_origin,
    parse_label,
    pitch_to_polar,
    sphere_origin,
)
from .decoder import OSGDecoder
from .rays import generate_rays, ray_box_bounds
from .renderer import Deformation, RenderOptions, RenderResult, TriplaneRenderer
from .sampling import importance_depths, merge_samples, sample_pdf, stratified_depths

__all__ = [
    "FFHQ_FOCAL",
    "FFHQ_LOOK_AT",
    "FFHQ_PRINCIPAL",
    "FFHQ_RADIUS",
    "Deformation",
    "OSGDecoder",
    "RenderOptions",
    "RenderResult",
    "TriplaneRenderer",
    "camera_label",
    "default_label",
    "generate_rays",
    "importance_depths",
    "intrinsics_matrix",
    "look_at_cam2world",
    "merge_samples",
    "orbit_labels",
    "orbit_origin",
    "parse_label",
    "pitch_to_polar",
    "ray_box_bounds",
    "sample_pdf",
    "sphere_origin",
    "stratified_depths",
]
