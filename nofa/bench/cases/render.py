"""The full tri-plane render (EG3D's ImportanceRenderer through nofa.render) as a benchmark.

One 256x256, 32-channel tri-plane, a randomly initialised OSG decoder, one FFHQ camera,
48 stratified + 48 importance samples per ray (deterministic, so every backend renders
the same points). Forward+backward back-propagates the feature image into the planes and
the decoder (what fast adaptation and training do). `render_deformed` is NOFA++'s animated
render: every sample point first goes through the deformation field (paper sizes), whose
weights then also receive gradients.
"""

from __future__ import annotations

import torch

from ... import render
from ..registry import Case, Params, Workload
from .ops import make_deformation_field


def _build_render(params: Params, device: torch.device) -> Workload:
    res = int(params["resolution"])
    coarse = int(params.get("coarse", 48))
    fine = int(params.get("fine", 48))
    R = int(params.get("plane_res", 256))
    C = int(params.get("channels", 32))
    g = torch.Generator().manual_seed(int(params.get("seed", 0)))
    torch.manual_seed(int(params.get("seed", 0)))  # decoder init
    options = render.RenderOptions(
        deterministic=True, coarse_samples=coarse, importance_samples=fine
    )
    renderer = render.TriplaneRenderer(render.OSGDecoder(n_features=C), options).to(device)
    planes = torch.randn(1, 3, C, R, R, generator=g).to(device)
    labels = render.default_label(yaw=0.3, pitch=-0.1)[None].to(device)
    deform, trained = None, list(renderer.parameters())
    if params.get("deform"):
        field, alpha, beta = make_deformation_field(params, g, device)
        trained += list(field.parameters())

        def deform(x: torch.Tensor):
            return field(x, alpha, beta)

    def fn(p: torch.Tensor):
        return renderer(p, labels, res, deform=deform)

    return Workload(
        fn=fn,
        reference=fn,  # compiled under use_backend("torch"), i.e. the pure-PyTorch render
        inputs=(planes,),
        grad_tensors=(planes, *trained),
        size=res * res,
        shape=f"{res}x{res} rays x ({coarse}+{fine}) samples, planes 3x{C}x{R}x{R}"
        + (", deformation field" if deform else ""),
        loss_outputs=lambda out: (out.features,),
    )


RENDER = Case(
    name="render",
    ops=("decode_triplane", "composite_rays"),
    build=_build_render,
    sizes={
        "headline": {
            "quick": [{"resolution": 8, "coarse": 8, "fine": 8, "plane_res": 32}],
            "cpu": [{"resolution": 64}, {"resolution": 128}],
            "cuda": [{"resolution": 64}, {"resolution": 128}],
        },
    },
)

RENDER_DEFORMED = Case(
    name="render_deformed",
    ops=("decode_triplane", "composite_rays", "deform_points"),
    build=_build_render,
    sizes={
        "headline": {
            "quick": [
                {
                    "resolution": 8,
                    "coarse": 8,
                    "fine": 8,
                    "plane_res": 32,
                    "deform": True,
                    "d_hidden": 32,
                    "w_hidden": 32,
                }
            ],
            "cpu": [{"resolution": 64, "deform": True}],
            "cuda": [{"resolution": 64, "deform": True}, {"resolution": 128, "deform": True}],
        },
    },
    # The plain render's compile already covers the renderer; compiling it again with the
    # field inside costs minutes on a CPU for little news.
    compile=False,
)

CASES = (RENDER, RENDER_DEFORMED)
