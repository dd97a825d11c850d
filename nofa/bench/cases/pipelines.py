"""Benchmark entries above the ops: the NOFA++ avatar pipeline (one-shot reconstruction
and one animated frame, random weights: timings do not depend on them) and marching-cubes
mesh extraction from an avatar. Forward only (inference paths); deterministic renders."""

from __future__ import annotations

import torch

from ..registry import Case, Params, Workload


def _avatar_model(params: Params, device: torch.device):
    from ...models import NOFAAvatar
    from ...render import default_label

    torch.manual_seed(int(params.get("seed", 0)))
    model = (
        NOFAAvatar.from_preset(params.get("preset", "paper"), render={"deterministic": True})
        .to(device)
        .eval()
    )
    g = torch.Generator().manual_seed(int(params.get("seed", 0)))
    n = model.image_size
    image = (torch.rand(1, 3, n, n, generator=g) * 2 - 1).to(device)
    camera = default_label(yaw=0.3)[None].to(device)
    return model, image, camera, g


def _shape(model, preset: str) -> str:
    o = model.renderer.options
    return (
        f"{preset} preset: image {model.image_size}^2, neural render {model.render_resolution}^2, "
        f"{o.coarse_samples}+{o.importance_samples} samples"
    )


def _build_reconstruct(params: Params, device: torch.device) -> Workload:
    model, image, camera, _ = _avatar_model(params, device)
    fn = lambda img: model.reconstruct(img, camera)  # noqa: E731
    return Workload(
        fn=fn,
        reference=fn,
        inputs=(image,),
        grad_tensors=(),
        size=model.image_size**2,
        shape=_shape(model, params.get("preset", "paper")),
    )


def _build_animate(params: Params, device: torch.device) -> Workload:
    model, image, camera, g = _avatar_model(params, device)
    with torch.no_grad():
        volume = model.reconstruct(image, camera)
    alpha = torch.randn(1, 80, generator=g).to(device)
    beta = torch.randn(1, 64, generator=g).to(device)
    fn = lambda a, b: model.animate(volume, a, b, camera)  # noqa: E731
    return Workload(
        fn=fn,
        reference=fn,
        inputs=(alpha, beta),
        grad_tensors=(),
        size=model.image_size**2,
        shape=_shape(model, params.get("preset", "paper")) + ", deformation field",
    )


_AVATAR_SIZES = {
    "headline": {
        "quick": [{"preset": "tiny"}],
        "cpu": [{"preset": "paper"}],
        "cuda": [{"preset": "paper"}],
    }
}

AVATAR_RECONSTRUCT = Case(
    name="avatar_reconstruct",
    ops=("decode_triplane", "composite_rays"),
    build=_build_reconstruct,
    sizes=_AVATAR_SIZES,
    compile=False,
    modes=("forward",),
)

AVATAR_ANIMATE = Case(
    name="avatar_animate",
    ops=("decode_triplane", "composite_rays", "deform_points"),
    build=_build_animate,
    sizes=_AVATAR_SIZES,
    compile=False,
    modes=("forward",),
)


def _build_mesh(params: Params, device: torch.device) -> Workload:
    from ...io import Avatar
    from ...pipelines.mesh import mesh_from_avatar
    from ...render import OSGDecoder, RenderOptions, TriplaneRenderer

    res, R, C = (
        int(params["resolution"]),
        int(params.get("plane_res", 256)),
        int(params.get("channels", 32)),
    )
    torch.manual_seed(int(params.get("seed", 0)))
    planes = torch.randn(1, 3, C, R, R, generator=torch.Generator().manual_seed(0)) * 0.5
    decoder = OSGDecoder(n_features=C)
    options = RenderOptions(deterministic=True)
    avatar = Avatar(planes, decoder.state_dict(), decoder.config(), options)
    with torch.no_grad():  # a level the random field crosses: its density at the origin
        level = float(
            TriplaneRenderer(decoder, options).density(planes, torch.zeros(1, 1, 3)).item()
        )

    def fn():
        return mesh_from_avatar(avatar, res, level=level, colors=True, device=device)

    return Workload(
        fn=fn,
        reference=fn,
        inputs=(),
        grad_tensors=(),
        size=res**3,
        shape=f"{res}^3 grid with vertex colours, planes 3x{C}x{R}x{R}",
    )


MESH = Case(
    name="mesh",
    ops=("decode_triplane",),
    build=_build_mesh,
    sizes={
        "headline": {
            "quick": [{"resolution": 16, "plane_res": 32, "channels": 8}],
            "cpu": [{"resolution": 256}],
            "cuda": [{"resolution": 256}],
        }
    },
    compile=False,
    modes=("forward",),
)

CASES = (AVATAR_RECONSTRUCT, AVATAR_ANIMATE, MESH)
