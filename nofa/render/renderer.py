"""Volume rendering of a tri-plane (EG3D's ImportanceRenderer), in chunks of rays, with an
optional deformation applied to every sample point (NOFA++'s bent rays, paper 3.3).

Every tri-plane lookup goes through :func:`nofa.ops.decode_triplane` (or
:func:`nofa.ops.sample_triplane` for a custom decoder) and every compositing step through
:func:`nofa.ops.composite_rays` / :func:`nofa.ops.composite_rays_merged`, so
`nofa.ops.use_backend(...)` switches the whole render between the compiled kernels and the
pure-PyTorch reference. Only public `nofa.ops` names are used, and nothing here asks which
backend runs, so the render traces with `torch.compile(fullgraph=True)`.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn as nn
from torch.utils.checkpoint import checkpoint

from .. import ops
from .decoder import OSGDecoder
from .rays import generate_rays, ray_box_bounds
from .sampling import importance_depths, stratified_depths

__all__ = ["Deformation", "RenderOptions", "RenderResult", "TriplaneRenderer"]

# points [N, M, 3] -> deformed points [N, M, 3] (or a tuple whose first item is them, as
# nofa's deformation field returns (x_c, offset, weight)).
Deformation = Callable[[torch.Tensor], "torch.Tensor | tuple[torch.Tensor, ...]"]


@dataclasses.dataclass
class RenderOptions:
    """How to render (EG3D FFHQ defaults).

    ray_start/ray_end: fixed sample range along every ray; set both to None to use each
        ray's intersection with the tri-plane cube instead (rays missing the cube get the
        range of the cube's bounding sphere; see docs/rendering.md for what points outside
        the cube read).
    coarse_samples/importance_samples: EG3D's depth_resolution / depth_resolution_importance.
    deterministic: no jitter, importance samples from u = linspace(0, 1, n): reproducible.
    chunk_rays: rays per chunk summed over the batch; bounds memory at any resolution.
    checkpoint: recompute each chunk in backward (torch.utils.checkpoint), so training
        memory is bounded per chunk too.

    An empty ray (all compositing weights 0) gets the image's far bound as depth: ray_end,
    or in box mode the largest per-ray far bound of that image, whatever the chunking.
    """

    ray_start: float | None = 2.25
    ray_end: float | None = 3.3
    box_warp: float = 1.0
    coarse_samples: int = 48
    importance_samples: int = 48
    white_back: bool = False
    deterministic: bool = False
    chunk_rays: int = 8192
    checkpoint: bool = False

    def __post_init__(self) -> None:
        for name in ("white_back", "deterministic", "checkpoint"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(
                    f"{name} must be a bool (True or False), got {getattr(self, name)!r}"
                )
        if (
            isinstance(self.box_warp, bool)
            or not isinstance(self.box_warp, numbers.Real)
            or not 0 < self.box_warp < float("inf")
        ):
            raise ValueError(f"box_warp must be a positive finite number, got {self.box_warp!r}")
        if self.coarse_samples < 2:
            raise ValueError(f"coarse_samples must be >= 2, got {self.coarse_samples}")
        if self.importance_samples < 0 or (self.importance_samples > 0 and self.coarse_samples < 3):
            raise ValueError(
                "importance sampling needs coarse_samples >= 3 and importance_samples >= 0, got "
                f"{self.coarse_samples} and {self.importance_samples}"
            )
        if self.chunk_rays < 1 or not self.box_warp > 0:
            raise ValueError(
                f"chunk_rays must be >= 1 and box_warp > 0, got {self.chunk_rays}, {self.box_warp}"
            )

    def replace(self, **changes) -> RenderOptions:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> RenderOptions:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


class RenderResult(NamedTuple):
    """features [N, C, H, W] and rgb [N, 3, H, W] in [-1, 1]; depth [N, 1, H, W]; weight
    [N, 1, H, W] (accumulated opacity, 0..1)."""

    features: torch.Tensor
    rgb: torch.Tensor
    depth: torch.Tensor
    weight: torch.Tensor


class TriplaneRenderer(nn.Module):
    """Renders tri-planes [N, 3, C, H, W] through an :class:`OSGDecoder` from EG3D cameras."""

    def __init__(
        self, decoder: OSGDecoder | None = None, options: RenderOptions | None = None
    ) -> None:
        super().__init__()
        self.decoder = decoder if decoder is not None else OSGDecoder()
        self.options = options if options is not None else RenderOptions()

    # -- point queries -------------------------------------------------------------------
    def query(
        self,
        planes: torch.Tensor,
        points: torch.Tensor,
        deform: Deformation | None = None,
        box_warp: float | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """points [N, M, 3] -> (raw density [N, M, 1], features [N, M, C_out])."""
        points, box_warp = _deformed(deform, points), box_warp or self.options.box_warp
        if _is_osg(self.decoder):
            d = self.decoder
            return ops.decode_triplane(
                planes, points, box_warp, d.fc0.weight, d.fc0.bias, d.fc1.weight, d.fc1.bias
            )
        return self.decoder(ops.sample_triplane(planes, points, box_warp, "mean"))

    def density(
        self, planes: torch.Tensor, points: torch.Tensor, box_warp: float | None = None
    ) -> torch.Tensor:
        """Raw density only, [N, M, 3] -> [N, M, 1] (cheaper: no colour rows)."""
        box_warp = box_warp or self.options.box_warp
        if _is_osg(self.decoder):
            d = self.decoder
            w1, b1 = d.fc1.weight[:1], d.fc1.bias[:1]  # density row only: no colour work
            return ops.decode_triplane(planes, points, box_warp, d.fc0.weight, d.fc0.bias, w1, b1)[
                0
            ]
        return self.decoder.density(ops.sample_triplane(planes, points, box_warp, "mean"))

    # -- rendering -----------------------------------------------------------------------
    def forward(
        self,
        planes: torch.Tensor,
        labels: torch.Tensor,
        resolution: int,
        deform: Deformation | None = None,
        options: RenderOptions | None = None,
    ) -> RenderResult:
        """Render planes [N, 3, C, H, W] from cameras labels [N, 25] at resolution x resolution.

        `deform` maps sample points [N, M, 3] in the observed (deformed) space to the
        canonical space where the tri-plane is read; gradients flow into its parameters.
        """
        opt = options or self.options
        if planes.dim() != 5 or planes.shape[1] != 3:
            raise ValueError(f"planes must have shape [N, 3, C, H, W], got {list(planes.shape)}")
        if labels.shape != (planes.shape[0], 25):
            raise ValueError(
                f"labels must have shape [N, 25] with N = {planes.shape[0]}, got "
                f"{list(labels.shape)}"
            )
        N = planes.shape[0]
        # The layout the kernels read fastest (channels-last on the CPU and CUDA): transposed once
        # per render rather than once per kernel call.
        planes = ops.prepare_planes(planes)
        # Ray geometry in the planes' float type even under autocast (bfloat16 rays would
        # misplace samples; the tri-plane kernels take half-precision planes themselves).
        with torch.autocast(planes.device.type, enabled=False):
            origins, dirs = generate_rays(labels.to(planes), resolution)
        near, far = self._bounds(origins, dirs, opt)
        per_chunk = max(1, opt.chunk_rays // max(N, 1))
        outs = []
        for s in range(0, origins.shape[1], per_chunk):
            args = (
                planes,
                origins[:, s : s + per_chunk],
                dirs[:, s : s + per_chunk],
                near[:, s : s + per_chunk],
                far[:, s : s + per_chunk],
            )
            if opt.checkpoint and torch.is_grad_enabled():
                outs.append(checkpoint(self._render_rays, *args, deform, opt, use_reentrant=False))
            else:
                outs.append(self._render_rays(*args, deform, opt))
        feats, depth, weight = (
            (torch.cat(x, 1) for x in zip(*outs)) if outs else self._empty(planes, N, opt)
        )
        # compositing gives an empty ray the largest depth of its chunk; the image's far
        # bound instead keeps the result independent of chunking (NaN rays stay NaN).
        depth = torch.where(weight == 0, far.amax(1, keepdim=True), depth)

        def image(t: torch.Tensor) -> torch.Tensor:
            return t.permute(0, 2, 1).reshape(N, t.shape[-1], resolution, resolution)

        feats = image(feats)
        return RenderResult(feats, feats[:, :3], image(depth), image(weight))

    def _empty(self, planes, N, opt):
        C = self.decoder.out_features
        z = planes.new_zeros
        return z(N, 0, C), z(N, 0, 1), z(N, 0, 1)

    @staticmethod
    def _bounds(origins: torch.Tensor, dirs: torch.Tensor, opt: RenderOptions):
        if (opt.ray_start is None) != (opt.ray_end is None):
            raise ValueError(
                "ray_start and ray_end must both be numbers or both None (box intersection)"
            )
        if opt.ray_start is not None:
            if not opt.ray_end > opt.ray_start:
                raise ValueError(f"ray_end must be > ray_start, got {opt.ray_start}, {opt.ray_end}")
            near = origins.new_full((*origins.shape[:-1], 1), float(opt.ray_start))
            return near, near + (opt.ray_end - opt.ray_start)
        near, far, hit = ray_box_bounds(origins, dirs, opt.box_warp)
        # Per-ray fallback (not a batch-wide one as in EG3D) keeps chunked renders exact.
        dist = origins.norm(dim=-1, keepdim=True)
        radius = opt.box_warp * 3**0.5 / 2
        near = torch.where(hit, near, (dist - radius).clamp_min(0.0))
        far = torch.where(hit, far, dist + radius)
        return near, far

    def _render_rays(self, planes, origins, dirs, near, far, deform, opt: RenderOptions):
        """One chunk: origins/dirs [N, r, 3], near/far [N, r, 1] -> features, depth, weight."""
        depths = stratified_depths(near, far, opt.coarse_samples, opt.deterministic)
        dens, cols = self._samples(planes, origins, dirs, depths, deform, opt)
        if opt.importance_samples > 0:
            with torch.no_grad():
                # Weights do not depend on colour: composite one channel to get them cheaply.
                _, _, w = ops.composite_rays(
                    dens.detach(), dens.detach(), depths.detach(), opt.white_back
                )
            fine = importance_depths(depths, w, opt.importance_samples, opt.deterministic)
            # Each set sorted along the ray, then composited together: where a kernel merges
            # them on the fly no [R, S, C] payloads are concatenated or gathered; elsewhere
            # the op concatenates and sorts itself (EG3D's way). Same images and gradients.
            fine = torch.sort(fine, -2).values
            dens_f, cols_f = self._samples(planes, origins, dirs, fine, deform, opt)
            feats, depth, weights = ops.composite_rays_merged(
                cols, dens, depths, cols_f, dens_f, fine, opt.white_back
            )
            return feats, depth, weights.sum(-2)
        feats, depth, weights = ops.composite_rays(cols, dens, depths, opt.white_back)
        return feats, depth, weights.sum(-2)

    def _samples(self, planes, origins, dirs, depths, deform, opt):
        N, r, S, _ = depths.shape
        points = (origins.unsqueeze(-2) + dirs.unsqueeze(-2) * depths).reshape(N, r * S, 3)
        dens, cols = self.query(planes, points, deform, opt.box_warp)
        return dens.reshape(N, r, S, 1), cols.reshape(N, r, S, cols.shape[-1])


def _is_osg(decoder: nn.Module) -> bool:
    """An OSGDecoder whose maths is the stock one, so the fused decode_triplane op applies."""
    return (
        isinstance(decoder, OSGDecoder)
        and type(decoder).forward is OSGDecoder.forward
        and type(decoder).density is OSGDecoder.density
    )


def _deformed(deform: Deformation | None, points: torch.Tensor) -> torch.Tensor:
    if deform is None:
        return points
    out = deform(points)
    if isinstance(out, (tuple, list)):
        out = out[0]
    if not isinstance(out, torch.Tensor) or out.shape != points.shape:
        got = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(
            f"deform must map points {list(points.shape)} to the same shape, got {got}"
        )
    return out
