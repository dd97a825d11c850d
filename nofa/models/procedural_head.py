"""Procedural heads: one signed-distance head builder and its two presets.

A head is built from nofa.render.sdf primitives in EG3D's world frame (y up, the face looks
along +z, the subject's left is +x): the skin is a chain of parts, each smoothly joined to (or
carved out of) the skin so far; the hair is a cap cut at a hairline, joined to the skin; eyeballs,
if any, join last. It evaluates on NumPy arrays and torch tensors alike (see nofa.render.sdf).

- `template_head()`: the template head that stands in for the learned generator
  (nofa.pipelines.template_fit.template bakes it into a tri-plane): skull, jaw, cheeks, chin,
  brow ridges, nose, eye sockets with eyeballs, lips, ears, a capsule neck, a hair cap.
- `synthetic_head(width, length, nose, jaw)`: the family of the synthetic talking-head data
  (nofa.train.procedural_heads), sized to nofa.faces.LANDMARKS_3D: cranium, lower face, nose,
  ears, neck, hair above a hairline plane; the lower face drops as the jaw opens.

The two are still separate shapes (the data generated from each must not change);
a later head can be one parametric preset for both.

    head = template_head()
    d = head.sdf(points)                    # points [..., 3] -> [...]
    parts = head.parts(points)              # {"skin", "hair", "eyes", "lips"} -> [...]
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence

import numpy as np
import torch

from ..render.sdf import Array, capsule, ellipsoid, mirror_x, smooth_max, smooth_min, sphere

__all__ = ["JAW_DROP", "Part", "SdfHead", "synthetic_head", "template_head"]

Shape = Callable[[Array], Array]  # points [..., 3] -> signed distance [...] (NumPy or torch)

JAW_DROP = 0.075  # synthetic_head: how far the lower lip and chin go down at jaw = 1 (world units)


@dataclasses.dataclass(frozen=True)
class Part:
    """One piece of a head. `shape`: points [..., 3] -> distance [...], or a tuple of Parts (a
    sub-chain, joined like the skin). `blend`: smooth radius of the join with what comes before
    (0: a hard min / max; unused for a chain's first part). `mirrored`: evaluated at (|x|, y, z),
    so a left-right pair is written once. `carve`: cut out instead of joined. `name`: its
    distance is also returned by `SdfHead.parts` under that name."""

    shape: Shape | tuple[Part, ...]
    blend: float = 0.0
    mirrored: bool = False
    carve: bool = False
    name: str | None = None


def _mirrored(parts: Sequence[Part]) -> bool:
    """Whether any part (sub-chains included) is evaluated mirrored."""
    return any(
        _mirrored(part.shape) if isinstance(part.shape, tuple) else part.mirrored for part in parts
    )


def _chain(parts: Sequence[Part], p: Array, m: Array, named: dict[str, Array]) -> Array:
    """Parts joined in order at points p (m: p mirrored onto x >= 0) -> distance [...]."""
    d = None
    for part in parts:
        if isinstance(part.shape, tuple):
            e = _chain(part.shape, p, m, named)
        else:
            e = part.shape(m if part.mirrored else p)
        if part.name:
            named[part.name] = e
        if d is None:
            d = e
        elif part.carve:
            d = smooth_max(d, -e, part.blend)
        else:
            d = smooth_min(d, e, part.blend)
    return d


@dataclasses.dataclass(frozen=True)
class SdfHead:
    """A head's signed-distance function: `skin` parts joined in order, `hair` joined to the skin
    with its blend, then `eyes` (optional) joined hard."""

    skin: tuple[Part, ...]
    hair: Part
    eyes: Part | None = None

    @functools.cached_property
    def _mirrors(self) -> bool:
        return _mirrored([*self.skin, self.hair] + ([self.eyes] if self.eyes else []))

    def parts(self, p: Array) -> dict[str, Array]:
        """Distances [...] at points [..., 3]: {"skin", "hair", "eyes" (if any), and each named
        part}."""
        if isinstance(p, np.ndarray):
            # Column-major: NumPy primitives read one coordinate at a time, contiguous so.
            p = np.asfortranarray(p)
        m = mirror_x(p) if self._mirrors else p
        named: dict[str, Array] = {}
        out = {"skin": _chain(self.skin, p, m, named), "hair": _chain((self.hair,), p, m, named)}
        if self.eyes is not None:
            out["eyes"] = _chain((self.eyes,), p, m, named)
        return {**named, **out}

    def combine(self, parts: dict[str, Array]) -> Array:
        """The head's distance [...] from its `parts`."""
        d = smooth_min(parts["skin"], parts["hair"], self.hair.blend)
        return d if self.eyes is None else smooth_min(d, parts["eyes"], 0.0)

    def sdf(self, p: Array) -> Array:
        """Signed distance (negative inside), points [..., 3] -> [...]."""
        return self.combine(self.parts(p))


def _ellipsoid(centre: Sequence[float], radii: Sequence[float]) -> Shape:
    return functools.partial(ellipsoid, centre=centre, radii=radii)


def _relu(a: Array) -> Array:
    return a.clamp_min(0) if isinstance(a, torch.Tensor) else np.maximum(a, 0)


def _template_hair(p: Array) -> Array:
    # A cap slightly outside the skull, above a hairline that drops towards the back.
    z, y = p[..., 2], p[..., 1]
    hairline = (0.135 - y) - 1.3 * _relu(0.06 - z)
    return smooth_max(ellipsoid(p, (0, 0.065, -0.035), (0.198, 0.235, 0.228)), hairline, 0.02)


def template_head() -> SdfHead:
    """The template head, sized so that the FFHQ default camera frames it like an FFHQ-aligned
    crop (eyes at about 47 % of the image height, mouth at 70 %, chin at 88 %). Parts: skin,
    hair, eyes, lips."""
    return SdfHead(
        skin=(
            Part(_ellipsoid((0, 0.05, -0.02), (0.185, 0.235, 0.215))),  # skull
            Part(_ellipsoid((0, -0.08, 0.03), (0.142, 0.16, 0.165)), 0.06),  # jaw
            Part(_ellipsoid((0.085, -0.05, 0.118), (0.07, 0.06, 0.07)), 0.03, mirrored=True),
            Part(_ellipsoid((0, -0.193, 0.133), (0.055, 0.045, 0.05)), 0.03),  # chin
            Part(  # brow ridges
                _ellipsoid((0.062, 0.045, 0.178), (0.042, 0.016, 0.026)), 0.02, mirrored=True
            ),
            Part(
                (  # nose: bridge, tip, wings
                    Part(_ellipsoid((0, -0.02, 0.2), (0.026, 0.066, 0.05))),
                    Part(_ellipsoid((0, -0.058, 0.232), (0.024, 0.022, 0.024)), 0.02),
                    Part(
                        _ellipsoid((0.024, -0.072, 0.212), (0.02, 0.014, 0.02)),
                        0.015,
                        mirrored=True,
                    ),
                ),
                0.02,
            ),
            Part(  # eye sockets
                _ellipsoid((0.068, 0.02, 0.2), (0.042, 0.026, 0.042)),
                0.012,
                mirrored=True,
                carve=True,
            ),
            Part(
                (  # upper and lower lip
                    Part(_ellipsoid((0, -0.111, 0.196), (0.064, 0.014, 0.025))),
                    Part(_ellipsoid((0, -0.138, 0.191), (0.057, 0.016, 0.025)), 0.008),
                ),
                0.01,
                name="lips",
            ),
            Part(_ellipsoid((0.186, 0.01, -0.02), (0.03, 0.065, 0.045)), 0.02, mirrored=True),
            Part(
                functools.partial(capsule, a=(0, -0.12, -0.03), b=(0, -0.7, -0.05), radius=0.1),
                0.05,
            ),
        ),
        hair=Part(_template_hair, 0.008),
        eyes=Part(
            functools.partial(sphere, centre=(0.068, 0.02, 0.163), radius=0.032), mirrored=True
        ),
    )


def synthetic_head(width: float, length: float, nose: float, jaw: float) -> SdfHead:
    """A head of the synthetic talking-head family: `width`, `length` and `nose` scale the face
    (1: the mean head), `jaw` in [0, 1] opens it (the lower face drops by up to 0.75 JAW_DROP).
    Parts: skin, hair."""
    w, L = width, length
    drop = 0.75 * JAW_DROP * jaw
    n = np.array([0.0, 1.0, -1.05])
    n = n / np.linalg.norm(n)
    hairline_d = float(n @ np.array([0.0, 0.155 * L, 0.16]))
    n_y, n_z = float(n[1]), float(n[2])

    def hair(p: Array) -> Array:
        above = hairline_d - (p[..., 1] * n_y + p[..., 2] * n_z)  # < 0 on the hair side
        return smooth_max(
            ellipsoid(p, (0.0, 0.075, -0.04), (0.185 * w, 0.245 * L, 0.245)), above, 0.0
        )

    ears = [
        Part(_ellipsoid((s * 0.162 * w, -0.005, -0.01), (0.022, 0.05, 0.032)), 0.01)
        for s in (-1, 1)
    ]
    return SdfHead(
        skin=(
            Part(_ellipsoid((0.0, 0.045, -0.025), (0.168 * w, 0.235 * L, 0.225))),  # cranium
            Part(
                _ellipsoid((0.0, -0.085 - drop, 0.035), (0.132 * w, 0.15 * L + 0.5 * drop, 0.175)),
                0.04,
            ),  # lower face
            Part(_ellipsoid((0.0, -0.035, 0.19), (0.02 * nose, 0.05 * nose, 0.05 * nose)), 0.025),
            *ears,
            Part(_ellipsoid((0.0, -0.32, -0.04), (0.092 * w, 0.3, 0.105)), 0.03),  # neck
        ),
        hair=Part(hair),
    )
