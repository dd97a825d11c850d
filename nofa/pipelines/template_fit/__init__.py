"""The template-fit pipeline: a procedural head baked into a tri-plane and adapted to one
portrait."""

from .adapt import AdaptConfig, fast_adapt
from .bake import bake_field, sample_pool
from .demo import DemoConfig, astronaut_portrait, run_demo
from .photo_skin import PhotoSkinHead, render_uint8
from .template import TemplateHead, head_sdf
from .warp import LandmarkWarp, WarpConfig, WarpedHead, fit_head_to_landmarks

__all__ = [
    "AdaptConfig",
    "DemoConfig",
    "LandmarkWarp",
    "PhotoSkinHead",
    "TemplateHead",
    "WarpConfig",
    "WarpedHead",
    "astronaut_portrait",
    "bake_field",
    "fast_adapt",
    "fit_head_to_landmarks",
    "head_sdf",
    "render_uint8",
    "run_demo",
    "sample_pool",
]
