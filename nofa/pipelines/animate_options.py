"""How to animate an avatar: :class:`AnimateOptions` (camera path, timing, batching, render
quality) for :func:`nofa.pipelines.animate.animate` (docs/animate.md, "Options").

Kept apart from the animation code so that `nofa animate`'s argument parser can read
:data:`CAMERA_MODES` without importing the models.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = ["CAMERA_MODES", "AnimateOptions"]

CAMERA_MODES = ("source", "driving", "fixed", "orbit")


@dataclasses.dataclass(frozen=True)
class AnimateOptions:
    """Settings of one animation (all optional; the defaults are `nofa animate`'s).

    camera: "source" (the source's camera), "driving" (the driving head pose as camera
        motion), "fixed" (frontal, or `yaw`/`pitch` degrees), "orbit" (a sine sweep of
        +-`orbit_yaw` degrees at `orbit_pitch`).
    fps: frame rate; None = the driving format's (25 for expression sequences), else 25.
    smoothing: odd window (frames) of a centred moving average over the driving
        coefficients; 0 = off.
    batch: frames rendered per batch.
    max_frames: only the first N driving frames (None: all).
    device: where the avatar renders (and a portrait source is encoded).
    resolution: neural rendering size of avatars without SR (demo avatars; None: theirs).
    samples: coarse (= importance) samples per ray (None: the avatar's).
    chunk_rays: rays per render chunk (None: the avatar's).
    overlay: a caption drawn at the bottom of every frame (None: none).

    Frozen, and checked when built: a bad camera or batch fails here, not mid-drive.
    """

    camera: str = "source"
    yaw: float = 0.0
    pitch: float = 0.0
    orbit_yaw: float = 25.0
    orbit_pitch: float = 0.0
    fps: float | None = None
    smoothing: int = 0
    batch: int = 4
    max_frames: int | None = None
    device: str | torch.device = "cpu"
    resolution: int | None = None
    samples: int | None = None
    chunk_rays: int | None = None
    overlay: str | None = None

    def __post_init__(self) -> None:
        if self.camera not in CAMERA_MODES:
            raise ValueError(f"camera must be one of {CAMERA_MODES}, got {self.camera!r}")
        if self.batch < 1:
            raise ValueError(f"batch must be >= 1, got {self.batch}")

    def replace(self, **changes) -> AnimateOptions:
        """A copy with `changes` (checked again)."""
        return dataclasses.replace(self, **changes)
