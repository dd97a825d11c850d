"""The template-fit pipeline: a procedural head baked into a tri-plane and adapted to one portrait."""
from .adapt import AdaptConfig, fast_adapt
from .bake import bake_field, sample_pool
from .demo import DemoConfig, astronaut_portrait, run_demo
from .template import TemplateHead, head_sdf

__all__ = ["AdaptConfig", "DemoConfig", "TemplateHead", "astronaut_portrait", "bake_field", "fast_adapt",
           "head_sdf", "run_demo", "sample_pool"]
