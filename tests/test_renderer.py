"""TriplaneRenderer: kernels vs reference (forward + gradients incl. deformation
parameters), chunking, checkpointing, deformation semantics, options."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn as nn
from conftest import DEVICES, assert_grads_close, rel_err, require_kernels

import nofa.ops as ops
from nofa.render import OSGDecoder, RenderOptions, TriplaneRenderer, default_label, parse_label


class RotateShift(nn.Module):
    """A small differentiable deformation: scale * R_y(angle) p + shift."""

    def __init__(self) -> None:
        super().__init__()
        self.angle = nn.Parameter(torch.tensor(0.15))
        self.shift = nn.Parameter(torch.tensor([0.02, -0.01, 0.03]))
        self.scale = nn.Parameter(torch.tensor(1.05))

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        c, s = torch.cos(self.angle), torch.sin(self.angle)
        zero, one = torch.zeros_like(c), torch.ones_like(c)
        R = torch.stack(
            [torch.stack([c, zero, s]), torch.stack([zero, one, zero]), torch.stack([-s, zero, c])]
        )
        return self.scale * p @ R.T + self.shift


def _scene(device, C=8, res=16, N=2):
    torch.manual_seed(0)
    planes = (torch.randn(N, 3, C, res, res, device=device) * 0.8).requires_grad_(True)
    decoder = OSGDecoder(n_features=C, hidden=16, out_features=6).to(device)
    with torch.no_grad():  # make density vary strongly so compositing is non-trivial
        decoder.fc1.bias[0] += 2.0
    labels = torch.stack([default_label(0.3, -0.1), default_label(-0.4, 0.2)])[:N].to(device)
    return planes, decoder, labels


OPTS = RenderOptions(deterministic=True, coarse_samples=12, importance_samples=12, chunk_rays=4096)


def _kernel_backend(device: str) -> str:
    """'kernels' when every op the renderer uses is compiled; otherwise 'auto' (kernels
    where they exist, the reference elsewhere), so this test covers new kernels as they land."""
    return "kernels" if ops.kernels_available(device, "composite_rays") else "auto"


def _render_and_grads(backend, planes, decoder, labels, deform, res=8, opts=OPTS):
    renderer = TriplaneRenderer(decoder, opts)
    params = [planes, *decoder.parameters(), *deform.parameters()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "auto" notes the missing composite kernel
        with ops.use_backend(backend), ops.trace_backends() as tr:
            out = renderer(planes, labels, res, deform=deform)
            g = torch.Generator(device="cpu").manual_seed(7)
            cot = [
                torch.randn(t.shape, generator=g).to(t)
                for t in (out.features, out.depth, out.weight)
            ]
            loss = sum((t * c).sum() for t, c in zip((out.features, out.depth, out.weight), cot))
            grads = torch.autograd.grad(loss, params)
    return out, grads, tr


@pytest.mark.parametrize("device", DEVICES)
def test_kernels_match_reference_forward_and_gradients(device):
    require_kernels(device)
    planes, decoder, labels = _scene(device)
    deform = RotateShift().to(device)
    out_k, g_k, tr = _render_and_grads(_kernel_backend(device), planes, decoder, labels, deform)
    out_t, g_t, tr_t = _render_and_grads("torch", planes, decoder, labels, deform)
    assert tr.backends("decode_triplane") == {"kernels"}
    want = {"kernels"} if ops.kernels_available(device, "composite_rays") else {"torch"}
    assert tr.backends("composite_rays") == want
    assert tr_t.backends("decode_triplane") == tr_t.backends("composite_rays") == {"torch"}
    for name, a, b in zip(("features", "rgb", "depth", "weight"), out_k, out_t):
        assert torch.isfinite(a).all(), name
        assert rel_err(a, b) < 1e-5, (name, rel_err(a, b))
    assert 0.05 < out_t.weight.mean() < 0.99  # the scene is neither empty nor fully opaque
    names = (
        ["planes"]
        + [f"decoder.{n}" for n, _ in decoder.named_parameters()]
        + ["angle", "shift", "scale"]
    )
    assert_grads_close(g_k, g_t, tol=1e-4, names=names)
    for name, g in zip(names, g_t):
        assert g.abs().sum() > 0, f"{name}: zero gradient"


def test_chunked_equals_unchunked():
    planes, decoder, labels = _scene("cpu")
    renderer = TriplaneRenderer(decoder, OPTS)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        whole = renderer(planes, labels, 12, options=OPTS.replace(chunk_rays=10**9))
        for chunk in (7, 50, 2 * 144 - 2):
            part = renderer(planes, labels, 12, options=OPTS.replace(chunk_rays=chunk))
            for a, b in zip(part, whole):
                torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


def _patch_scene(C=8, res=16):
    """Planes that are zero but for a bright central patch, and a decoder whose density
    underflows to exactly 0 away from it: rays that miss the patch are empty (weights 0)."""
    planes = torch.zeros(2, 3, C, res, res)
    planes[..., res // 2 - 2 : res // 2 + 2, res // 2 - 2 : res // 2 + 2] = 5.0
    decoder = OSGDecoder(n_features=C, hidden=16, out_features=6)
    with torch.no_grad():
        decoder.fc0.weight.fill_(0.5)
        decoder.fc0.bias.fill_(-5.0)
        decoder.fc1.weight[0].fill_(10.0)
        decoder.fc1.bias[0] = -300.0
    labels = torch.stack([default_label(0.3, -0.1), default_label(-0.4, 0.2)])
    return planes, decoder, labels


@pytest.mark.parametrize("bounds", ["fixed", "box"])
@pytest.mark.parametrize("backend", ["auto", "torch"])
def test_chunked_equals_unchunked_with_empty_rays(bounds, backend):
    planes, decoder, labels = _patch_scene()
    opts = OPTS if bounds == "fixed" else OPTS.replace(ray_start=None, ray_end=None)
    renderer = TriplaneRenderer(decoder, opts)
    with torch.no_grad(), ops.use_backend(backend):
        whole = renderer(planes, labels, 12, options=opts.replace(chunk_rays=10**9))
        parts = [renderer(planes, labels, 12, options=opts.replace(chunk_rays=c)) for c in (7, 33)]
    empty = whole.weight == 0
    assert 0 < empty.sum() < empty.numel(), "the scene must have empty and non-empty rays"
    for part in parts:
        for a, b in zip(part, whole):
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
    # An empty ray's depth is its image's far bound: ray_end, or the largest per-ray far.
    if bounds == "fixed":
        far = torch.full((2,), opts.ray_end)
    else:
        from nofa.render import generate_rays
        from nofa.render.rays import ray_box_bounds

        o, d = generate_rays(labels, 12)
        _, f, hit = ray_box_bounds(o, d, 1.0)
        sphere_far = o.norm(dim=-1, keepdim=True) + 3**0.5 / 2
        far = torch.where(hit, f, sphere_far).amax((1, 2))
    for n in range(2):
        assert torch.equal(whole.depth[n][empty[n]], far[n].expand(int(empty[n].sum())))


def test_checkpointed_gradients_equal():
    planes, decoder, labels = _scene("cpu")
    deform = RotateShift()
    _, g_plain, _ = _render_and_grads(
        "torch", planes, decoder, labels, deform, opts=OPTS.replace(chunk_rays=40)
    )
    _, g_ckpt, _ = _render_and_grads(
        "torch", planes, decoder, labels, deform, opts=OPTS.replace(chunk_rays=40, checkpoint=True)
    )
    assert_grads_close(g_ckpt, g_plain, tol=1e-6)


def test_translation_deformation_equals_moving_the_camera():
    # Deforming every sample by +t reads the volume where a camera moved by +t would look.
    planes, decoder, labels = _scene("cpu", N=1)
    t = torch.tensor([0.05, -0.03, 0.02])
    moved = labels.clone()
    c2w, K = parse_label(moved)
    c2w[:, :3, 3] += t
    moved = torch.cat([c2w.flatten(1), K.flatten(1)], 1)
    renderer = TriplaneRenderer(decoder, OPTS)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        a = renderer(planes, labels, 8, deform=lambda p: p + t)
        b = renderer(planes, moved, 8)
        ident = renderer(planes, labels, 8, deform=lambda p: (p, None))  # tuple: first item used
        plain = renderer(planes, labels, 8)
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-4)
    for x, y in zip(ident, plain):
        assert torch.equal(x, y)
    assert rel_err(a.rgb, plain.rgb) > 1e-3  # the deformation did change the picture


def test_random_mode_varies_and_deterministic_repeats():
    planes, decoder, labels = _scene("cpu")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        r = TriplaneRenderer(decoder, OPTS)
        assert torch.equal(r(planes, labels, 6).rgb, r(planes, labels, 6).rgb)
        rnd = OPTS.replace(deterministic=False)
        a, b = r(planes, labels, 6, options=rnd), r(planes, labels, 6, options=rnd)
        assert not torch.equal(a.rgb, b.rgb)
        assert rel_err(a.rgb, b.rgb) < 0.2  # noise, not a different picture


def test_outputs_shapes_ranges_and_no_importance():
    planes, decoder, labels = _scene("cpu")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out = TriplaneRenderer(decoder, OPTS.replace(importance_samples=0, white_back=True))(
            planes, labels, 5
        )
    assert out.features.shape == (2, 6, 5, 5) and out.rgb.shape == (2, 3, 5, 5)
    assert out.depth.shape == out.weight.shape == (2, 1, 5, 5)
    assert (out.weight >= 0).all() and (out.weight <= 1 + 1e-6).all()
    assert (out.depth >= 2.25 - 1e-5).all() and (out.depth <= 3.3 + 1e-5).all()
    assert torch.equal(out.rgb, out.features[:, :3])


def test_bad_arguments_raise():
    planes, decoder, labels = _scene("cpu")
    r = TriplaneRenderer(decoder, OPTS)
    with pytest.raises(ValueError, match="labels"):
        r(planes, labels[:1], 4)
    with pytest.raises(ValueError, match="planes"):
        r(planes[:, :2], labels, 4)
    with pytest.raises(ValueError, match="deform"):
        r(planes, labels, 4, deform=lambda p: p[..., :2])
    with pytest.raises(ValueError, match="ray_end"):
        r(planes, labels, 4, options=OPTS.replace(ray_end=None))


def test_decoder_density_matches_forward_and_eg3d_import():
    dec = OSGDecoder(n_features=8, hidden=16, out_features=5)
    x = torch.randn(4, 8)
    sigma, feats = dec(x)
    torch.testing.assert_close(dec.density(x), sigma)
    assert feats.min() >= -0.001 and feats.max() <= 1.001
    # EG3D's FullyConnectedLayer stores w / lr and applies w * lr / sqrt(in).
    raw = {
        "net.0.weight": torch.randn(16, 8),
        "net.0.bias": torch.randn(16),
        "net.2.weight": torch.randn(6, 16),
        "net.2.bias": torch.randn(6),
    }
    dec.load_eg3d_tensors(raw, lr_multiplier=1.0)
    h = torch.nn.functional.softplus(x @ (raw["net.0.weight"] / 8**0.5).T + raw["net.0.bias"])
    out = h @ (raw["net.2.weight"] / 16**0.5).T + raw["net.2.bias"]
    torch.testing.assert_close(dec(x)[0], out[:, :1])


def test_render_options_validate():
    with pytest.raises(ValueError, match="coarse_samples"):
        RenderOptions(coarse_samples=1)
    with pytest.raises(ValueError, match="importance"):
        RenderOptions(coarse_samples=2, importance_samples=2)
    RenderOptions(coarse_samples=2, importance_samples=0)  # fine without importance sampling


@pytest.mark.parametrize("deterministic", [True, False])
def test_merged_compositing_equals_eg3d_merge(deterministic, monkeypatch):
    """With the composite_rays_merged kernel the coarse and fine sets are composited
    together without concatenating them; where that kernel is missing the op concatenates,
    sorts and runs composite_rays itself (EG3D's way). Same images and gradients (random
    mode: same seed, same draws)."""
    require_kernels("cpu")
    from nofa.ops import _backend

    torch.manual_seed(3)
    planes = (torch.randn(1, 3, 32, 32, 32) * 0.5).requires_grad_()
    r = TriplaneRenderer(
        OSGDecoder(32),
        RenderOptions(
            coarse_samples=12,
            importance_samples=10,
            deterministic=deterministic,
            ray_start=None,
            ray_end=None,
        ),
    )
    label = default_label(0.3, 0.1)[None]
    outs = {}
    for merged in (True, False):
        if not merged:  # as on a device without the merging kernel
            monkeypatch.setattr(
                _backend, "lacks_kernel", lambda op, dev: op == "composite_rays_merged"
            )
        torch.manual_seed(7)
        with ops.trace_backends() as tr:
            res = r(planes, label, 16)
        assert tr.backends("composite_rays_merged") == ({"kernels"} if merged else {"torch"})
        assert tr.backends("composite_rays") == {
            "kernels"
        }  # the importance weights, and the fallback
        loss = res.features.square().mean() + res.depth.mean() + res.weight.mean()
        outs[merged] = (res, torch.autograd.grad(loss, [planes] + list(r.decoder.parameters())))
    (a, ga), (b, gb) = outs[True], outs[False]
    for x, y in zip(a, b):
        assert rel_err(x, y) <= 1e-5
    assert_grads_close(ga, gb, 1e-4)
