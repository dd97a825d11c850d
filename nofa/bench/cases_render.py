"""The full tri-plane render (EG3D's ImportanceRenderer through nofa.render) as a benchmark.

One 256x256, 32-channel tri-plane, a randomly initialised OSG decoder, one FFHQ camera,
48 stratified + 48 importance samples per ray (deterministic, so every backend renders
the same points). Forward+backward back-propagates the feature image into the planes and
the decoder (what fast adaptation and training do).
"""
from __future__ import annotations

import importlib

import torch

from .registry import Case, Params, Workload, register


def _render_module():
    try:
        return importlib.import_module("nofa.render")
    except ImportError:
        return None


def _unavailable() -> str | None:
    mod = _render_module()
    if mod is None or not hasattr(mod, "TriplaneRenderer"):
        return "nofa.render.TriplaneRenderer is not in this build"
    return None


def _build_render(params: Params, device: torch.device) -> Workload:
    render = _render_module()
    res = int(params["resolution"])
    coarse = int(params.get("coarse", 48))
    fine = int(params.get("fine", 48))
    R = int(params.get("plane_res", 256))
    C = int(params.get("channels", 32))
    g = torch.Generator().manual_seed(int(params.get("seed", 0)))
    torch.manual_seed(int(params.get("seed", 0)))  # decoder init
    options = render.RenderOptions(deterministic=True, coarse_samples=coarse, importance_samples=fine)
    renderer = render.TriplaneRenderer(render.OSGDecoder(n_features=C), options).to(device)
    planes = torch.randn(1, 3, C, R, R, generator=g).to(device)
    labels = render.default_label(yaw=0.3, pitch=-0.1)[None].to(device)

    def fn(p: torch.Tensor):
        return renderer(p, labels, res)

    return Workload(
        fn=fn,
        reference=fn,  # compiled under use_backend("torch"), i.e. the pure-PyTorch render
        inputs=(planes,),
        grad_tensors=(planes, *renderer.parameters()),
        size=res * res,
        shape=f"{res}x{res} rays x ({coarse}+{fine}) samples, planes 3x{C}x{R}x{R}",
        loss_outputs=lambda out: (out.features,),
    )


register(Case(
    name="render",
    ops=("sample_triplane", "composite_rays"),
    build=_build_render,
    unavailable=_unavailable,
    sizes={
        "headline": {
            "quick": [{"resolution": 8, "coarse": 8, "fine": 8, "plane_res": 32}],
            "cpu": [{"resolution": 64}, {"resolution": 128}],
            "cuda": [{"resolution": 64}, {"resolution": 128}],
        },
    },
    compile_note="the whole render compiled under backend 'torch'",
))
