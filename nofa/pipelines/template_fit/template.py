"""A procedural template head: raw density and colour as functions of world position.

Its geometry, `nofa.models.procedural_head.template_head`, is built from smooth
signed-distance primitives (skull and jaw ellipsoids, cheeks, chin, nose, brow ridges, eye
sockets with eyeballs, lips, ears, neck, a hair cap; nofa.render.sdf), sized so that the
FFHQ default camera (radius 2.7, focal 4.2647, looking at (0, 0, 0.2)) frames it like an
FFHQ-aligned crop: eyes at about 47 % of the image height, mouth at 70 %, chin at 88 %.
World axes: y up, the face looks along +z, the subject's left is +x.

This is a stand-in for the learned NOFA++ generator (no trained weights ship with nofa);
`nofa.pipelines.template_fit.bake_field` turns it into a tri-plane avatar.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ...models.procedural_head import template_head
from ...render.rays import generate_rays
from ...render.sdf import ellipsoid, mirror_x, ray_aabb_bounds, sphere_trace

__all__ = ["HEAD_BOX", "TEMPLATE_HEAD", "TemplateHead", "head_sdf", "trace_template"]

SKIN = (0.86, 0.67, 0.56)
HAIR = (0.22, 0.15, 0.10)
LIPS = (0.72, 0.36, 0.36)
BROW = (0.25, 0.18, 0.13)
SCLERA = (0.93, 0.91, 0.88)
IRIS = (0.18, 0.12, 0.09)
LID = (0.80, 0.60, 0.50)
LASH = (0.12, 0.08, 0.06)
LIGHT = (0.35, 0.45, 1.0)


# The geometry is built by the head builder the synthetic training heads share; the colours,
# the shading and the field live here.
TEMPLATE_HEAD = template_head()


def head_sdf(p: torch.Tensor) -> torch.Tensor:
    """Signed distance (negative inside) of the template head, points [..., 3] -> [...]."""
    return TEMPLATE_HEAD.sdf(p)


class TemplateHead:
    """The procedural head as a field: points [M, 3] -> (raw density [M], rgb [M, 3] in 0..1).

    Raw density follows EG3D's scale (the compositor applies softplus(x - 1)):
    `peak * sigmoid(-sdf / sharpness) + floor`, i.e. about `floor` (empty) outside and
    `peak + floor` inside; colour has soft Lambert shading from a frontal-top light baked in.
    """

    def __init__(self, peak: float = 60.0, floor: float = -8.0, sharpness: float = 0.006) -> None:
        self.peak, self.floor, self.sharpness = peak, floor, sharpness

    def sdf(self, p: torch.Tensor) -> torch.Tensor:
        return head_sdf(p)

    def density(self, p: torch.Tensor) -> torch.Tensor:
        return self.peak * torch.sigmoid(-head_sdf(p) / self.sharpness) + self.floor

    def hair_weight(self, p: torch.Tensor) -> torch.Tensor:
        """0..1 per point [M, 3] -> [M]: how much the point belongs to the hair (vs skin)."""
        parts = TEMPLATE_HEAD.parts(p)
        return torch.sigmoid(-(parts["hair"] - parts["skin"]) / 0.002)

    def density_and_colour(self, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Density only, with a placeholder colour: for sampling the surface without shading."""
        return self.density(p), p.new_zeros(p.shape[0], 3)

    def __call__(self, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.enable_grad():
            q = p.detach().requires_grad_(True)
            parts = TEMPLATE_HEAD.parts(q)
            sdf = TEMPLATE_HEAD.combine(parts)
            (normal,) = torch.autograd.grad(sdf.sum(), q)
        parts = {k: v.detach() for k, v in parts.items()}
        sdf = sdf.detach()
        normal = F.normalize(normal, dim=-1)
        rgb = self._albedo(p, parts)
        light = F.normalize(p.new_tensor(LIGHT), dim=0)
        shade = 0.55 + 0.45 * (normal @ light).clamp_min(0)
        density = self.peak * torch.sigmoid(-sdf / self.sharpness) + self.floor
        return density, (rgb * shade[:, None]).clamp(0, 1)

    @staticmethod
    def _albedo(p: torch.Tensor, parts: dict[str, torch.Tensor]) -> torch.Tensor:
        def colour(c):
            return p.new_tensor(c).expand(p.shape[0], 3)

        def near(d: torch.Tensor, width: float = 0.004) -> torch.Tensor:
            return torch.sigmoid(-d / width)[:, None]

        m = mirror_x(p)
        rgb = colour(SKIN)
        brows = ellipsoid(m, (0.065, 0.053, 0.195), (0.045, 0.009, 0.05))
        rgb = torch.lerp(rgb, colour(BROW), near(brows))
        rgb = torch.lerp(rgb, colour(LIPS), near(parts["lips"] - 0.003))
        # The line where the lips meet, dark like a closed mouth's, fading towards the corners.
        seam = (p[:, 1] + 0.1245).abs() - 0.0022 * (1 - (p[:, 0] / 0.058) ** 2).clamp_min(0)
        front = ((p[:, 0].abs() < 0.062) & (p[:, 2] > 0.15))[:, None]
        rgb = torch.lerp(rgb, colour(LASH), 0.75 * near(seam, 0.0012) * front)
        rgb = torch.lerp(rgb, colour(HAIR), near(parts["hair"] - parts["skin"], 0.002))
        # Eyes as a face has them: an almond-shaped opening between the lids (the eyeball
        # outside it is painted as lid skin), a dark lash line along its rim and an iris the
        # lids partly cover. A whole white eyeball reads to dlib's predictor as a ring and it
        # puts the eye corners on the iris, which stops them following the head's turn.
        d = m[:, :2] - m.new_tensor((0.068, 0.02))
        lid = (
            d[:, 1].abs() - 0.0115 * (1 - (d[:, 0] / 0.031) ** 2).clamp_min(0) + 0.0009
        )  # < 0 inside
        eye_axis = d.norm(dim=-1)
        eye = torch.lerp(
            colour(SCLERA), colour(IRIS), torch.sigmoid((0.0105 - eye_axis) / 0.0015)[:, None]
        )
        eye = torch.lerp(colour(LID), eye, torch.sigmoid(-lid / 0.0008)[:, None])
        lash = torch.exp(-((lid / 0.0018) ** 2)) * (
            0.4 + 0.6 * (d[:, 1] > 0)
        )  # darker on the upper lid
        eye = torch.lerp(eye, colour(LASH), lash[:, None])
        rgb = torch.lerp(
            rgb, eye, near(parts["eyes"] - torch.minimum(parts["skin"], parts["hair"]), 0.002)
        )
        # Nostrils: dark shadows under the tip, where dlib's nose-base points sit.
        nostril = ellipsoid(m, (0.014, -0.076, 0.226), (0.009, 0.005, 0.012))
        return torch.lerp(rgb, colour(LASH), 0.7 * near(nostril, 0.002))


# Axis-aligned box (min corner, max corner) around the head: the part of it any FFHQ-like
# camera frames, the neck cut below the chin.
HEAD_BOX = ((-0.26, -0.5, -0.3), (0.26, 0.36, 0.3))


@torch.no_grad()
def trace_template(
    label: torch.Tensor,
    resolution: int,
    head: TemplateHead | None = None,
    steps: int = 64,
    background: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sphere-trace the procedural head's surface from one camera (no tri-plane, no baking).

    Exact renders of the template at a known camera, used to measure landmark detection and
    camera estimation against ground truth. label: [25] EG3D camera label. head: any object
    with the TemplateHead interface (e.g. a landmark-warped head, nofa.pipelines.template_fit.warp).
    Returns rgb [3, R, R] in [-1, 1] (background `background`), depth [R, R] along the ray
    (inf where missed) and the hit mask [R, R] (bool).
    """
    head = head or TemplateHead()
    origins, dirs = generate_rays(
        torch.as_tensor(label, dtype=torch.float32).reshape(1, 25), resolution
    )
    origins, dirs = origins[0], dirs[0]
    # March only inside a box holding the head (and the top of the neck) so misses stop early.
    near, far, valid = ray_aabb_bounds(origins, dirs, *HEAD_BOX)
    hit, t = sphere_trace(head.sdf, origins, dirs, near, far, valid, steps, 2e-4, two_sided=False)
    rgb = torch.full((resolution * resolution, 3), float(background))
    idx = hit.nonzero().squeeze(-1)
    if idx.numel():
        _, col = head(origins[idx] + t[idx, None] * dirs[idx])
        rgb[idx] = col * 2 - 1
    depth = torch.where(hit, t, torch.full_like(t, float("inf")))
    return (
        rgb.T.reshape(3, resolution, resolution),
        depth.reshape(resolution, resolution),
        hit.reshape(resolution, resolution),
    )
