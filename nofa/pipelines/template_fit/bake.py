"""Bake any (density, colour) field into a tri-plane + OSG decoder with the nofa kernels.

The field is sampled once into a pool of points (uniform in the box plus points jittered
around the surface, where the density crosses `surface_level`); then planes and decoder are
fitted by Adam to the raw density (everywhere) and the colour (near and inside the surface),
through :func:`nofa.ops.sample_triplane`. The result is an :class:`nofa.io.Avatar`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from ...io.avatar import Avatar
from ...render.decoder import OSGDecoder
from ...render.renderer import RenderOptions, TriplaneRenderer

__all__ = ["Field", "bake_field", "sample_pool"]

# points [M, 3] -> (raw density [M], rgb [M, 3] in 0..1)
Field = Callable[[torch.Tensor], "tuple[torch.Tensor, torch.Tensor]"]


@torch.no_grad()
def sample_pool(
    field: Field,
    n_points: int,
    box_warp: float = 1.0,
    surface_level: float = 10.0,
    jitter: float = 0.01,
    generator: torch.Generator | None = None,
    chunk: int = 1 << 16,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Training points for baking -> points, density, rgb.

    3/8 uniform in the box, 1/2 jittered around the surface, 1/8 in a shell outside the box.
    Outside the box every plane reads zero (zero padding), yet camera rays sample there
    (EG3D's fixed 2.25..3.3 range leaves the box), and a plane read inside the box paired with
    a zero read from another plane shows up as a ghost copy of the face in side views: those
    points are taught to be empty whatever the field says.
    """
    half = box_warp / 2

    def evaluate(p: torch.Tensor):
        outs = [field(p[s : s + chunk]) for s in range(0, len(p), chunk)]
        return torch.cat([o[0].reshape(-1) for o in outs]), torch.cat(
            [o[1].reshape(-1, 3) for o in outs]
        )

    n_out = n_points // 8
    n_uniform = 3 * n_points // 8
    n_near = n_points - n_out - n_uniform
    uniform = (torch.rand(max(n_uniform, 4 * n_near), 3, generator=generator) * 2 - 1) * half
    dens, _ = evaluate(uniform)
    # Points whose density is between "empty" and "solid" lie in the surface band; jitter
    # copies of them to cover the surface densely.
    lo, hi = dens.min(), dens.max()
    band = uniform[(dens > lo + 0.02 * (hi - lo)) & (dens < hi - 0.02 * (hi - lo))]
    inside = uniform[dens > surface_level]
    seeds = band if len(band) >= 64 else inside
    if len(seeds) == 0:
        raise ValueError("the field has no surface inside the box (its density is constant there)")
    idx = torch.randint(len(seeds), (n_near,), generator=generator)
    near = (seeds[idx] + torch.randn(n_near, 3, generator=generator) * jitter).clamp(-half, half)
    shell = (torch.rand(4 * n_out + 64, 3, generator=generator) * 2 - 1) * (1.6 * half)
    shell = shell[(shell.abs() > half).any(-1)][:n_out]
    points = torch.cat([uniform[:n_uniform], near])
    dens, rgb = evaluate(points)
    floor = dens.min()
    points = torch.cat([points, shell])
    dens = torch.cat([dens, floor.expand(len(shell))])
    rgb = torch.cat([rgb, rgb.new_zeros(len(shell), 3)])
    return points, dens, rgb


def bake_field(
    field: Field,
    plane_resolution: int = 128,
    channels: int = 32,
    steps: int = 600,
    hidden: int = 64,
    batch: int = 1 << 15,
    pool: int = 1 << 19,
    box_warp: float = 1.0,
    lr: float = 0.04,
    density_scale: float = 20.0,
    surface_level: float = 10.0,
    options: RenderOptions | None = None,
    seed: int = 0,
    progress: bool = False,
    metadata: dict | None = None,
    init: Avatar | None = None,
) -> Avatar:
    """Fit planes [1, 3, channels, R, R] + an OSGDecoder to `field`; returns the Avatar.

    The avatar's render options are `options` (default: EG3D's, but with the sample range
    from each ray's intersection with the box, see RenderOptions.ray_start).

    init: start from this avatar's planes, decoder and options instead of random ones
    (plane_resolution, channels and hidden are then the init's).

    The density loss is an L2 on raw density / density_scale; the colour loss an L2 on the
    decoder's first three feature channels, weighted by how solid the point is.
    """
    if not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be an int >= 0, got {steps!r}")
    g = torch.Generator().manual_seed(seed)
    points, dens_t, rgb_t = sample_pool(field, pool, box_warp, surface_level, generator=g)
    solid = torch.sigmoid((dens_t - surface_level) / 4.0)[:, None]  # colour matters where visible
    torch.manual_seed(seed)
    if init is None:
        decoder = OSGDecoder(n_features=channels, hidden=hidden)
        planes = torch.nn.Parameter(
            torch.randn(1, 3, channels, plane_resolution, plane_resolution, generator=g) * 0.1
        )
    # warm start: a nearby field (e.g. the template warped to a person) converges in far fewer steps
    else:
        decoder = init.decoder()
        planes = torch.nn.Parameter(init.planes.detach().clone().float())
        options = options or init.options
    # Baked avatars sample only inside the tri-plane box by default (ray/box intersection):
    # outside it every plane reads zero, which a baked decoder has not learned to ignore.
    opts = options or RenderOptions(ray_start=None, ray_end=None)
    renderer = TriplaneRenderer(decoder, opts.replace(box_warp=box_warp))
    opt = torch.optim.Adam(
        [{"params": [planes], "lr": lr}, {"params": decoder.parameters(), "lr": lr * 0.25}]
    )
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1), eta_min=lr * 0.05)
    bar = _progress(steps, "bake template", progress)
    start = time.perf_counter()
    loss_d = loss_c = None  # steps=0: the untrained (random) planes and decoder, no losses
    for _ in range(steps):
        idx = torch.randint(len(points), (batch,), generator=g)
        dens, feats = renderer.query(planes, points[idx][None])
        # What rendering sees is opacity: compare the opacity of a short interval (strong
        # gradients where empty space is not empty enough), plus a squashed raw density.
        raw = dens[0, :, 0]
        loss_d = F.mse_loss(_opacity(raw), _opacity(dens_t[idx])) + 0.25 * F.mse_loss(
            torch.tanh(raw / density_scale), torch.tanh(dens_t[idx] / density_scale)
        )
        loss_c = ((feats[0, :, :3] - rgb_t[idx]) ** 2 * solid[idx]).mean() * 3
        loss = loss_d + loss_c
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        bar.update(1)
        bar.set_postfix(density=f"{loss_d.item():.4f}", colour=f"{loss_c.item():.4f}")
    bar.close()
    meta = {
        "source": "bake_field",
        "bake_steps": steps,
        "bake_seconds": round(time.perf_counter() - start, 2),
        "bake_loss_density": None if loss_d is None else loss_d.item(),
        "bake_loss_colour": None if loss_c is None else loss_c.item(),
    }
    return Avatar.from_renderer(planes.detach(), renderer, **meta, **(metadata or {}))


def _opacity(raw: torch.Tensor, interval: float = 0.05) -> torch.Tensor:
    return 1 - torch.exp(-F.softplus(raw - 1) * interval)


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, **kw) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, desc: str, enabled: bool):
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="step", dynamic_ncols=True)
