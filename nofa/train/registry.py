"""The stage registry: `@register_stage("name")` on a Stage subclass, `get_stage(name)` for
the trainer. Stage modules (stages.py, video_stages.py) register themselves when imported;
the trainer imports them, so this module imports none of them."""

from __future__ import annotations

__all__ = ["STAGES", "get_stage", "register_stage"]

STAGES: dict[str, type] = {}


def register_stage(name: str):
    def deco(cls: type) -> type:
        cls.name = name
        STAGES[name] = cls
        return cls

    return deco


def get_stage(name: str):
    """A new instance of the stage registered as `name` (run.stage)."""
    if name not in STAGES:
        raise ValueError(f"unknown stage {name!r} (run.stage); registered stages: {sorted(STAGES)}")
    return STAGES[name]()
