"""NOFAAvatar: the whole NOFA++ model (paper Fig. 2).

    ws   = E(I_s) + w_avg                                 (eq. 1)
    F_c  = G.head(ws);  V_c = G.tail(F_c)                 coarse canonical volume
    I^_s = SR(render(V_c, camera_s))                      coarse reconstruction
    F_res = C(I_s - I^_s)                                 (eq. 2)
    F_e  = gamma(F_res) * F_c + eta(F_res);  V_e = G.tail(F_e)   (eq. 3)
    animate: rays in the target-expression space are bent into the canonical space by the
    deformation field D(x, alpha_s, beta_t), rendered from V_e, and super-resolved.

Every tri-plane lookup and compositing step runs through :mod:`nofa.ops` (kernels or the
reference, per `nofa.ops.use_backend`), via :class:`nofa.render.TriplaneRenderer`.
"""

from __future__ import annotations

import dataclasses
import os

import torch
import torch.nn as nn

from ..io.nofa_file import check_device
from ..render import OSGDecoder, RenderOptions, TriplaneRenderer, default_label
from .deformation import DeformationField
from .detail import DetailNetwork, FusionNetwork, fuse
from .encoder import ImageEncoder, check_image
from .generator import TriplaneGenerator
from .presets import get_config, merge_config
from .superres import SuperResolution


@dataclasses.dataclass
class AvatarVolume:
    """A reconstructed (or sampled) canonical avatar.

    planes [N, 3, C, R, R]: the fine canonical tri-plane V_e (V_c when there was no detail pass).
    ws [N, num_ws, w_dim]: the W+ codes (the SR module uses the last one).
    feature [N, ch, h, h] and skip [N, 3C, h, h]: F_e (or F_c) and the generator's toRGB sum at
        the head resolution; `NOFAAvatar.volume_from_feature` re-runs G's tail from them (what
        fast adaptation, eq. 14, optimises).
    planes_coarse, coarse: V_c and its render at the source camera (reconstruct only).
    """

    planes: torch.Tensor
    ws: torch.Tensor
    feature: torch.Tensor
    skip: torch.Tensor
    planes_coarse: torch.Tensor | None = None
    coarse: dict | None = None


class NOFAAvatar(nn.Module):
    """The NOFA++ model. Build with `NOFAAvatar.from_preset("paper" | "tiny")` or from a config
    dict."""

    def __init__(self, config: dict | None = None) -> None:
        super().__init__()
        cfg = (
            merge_config(get_config("paper"), config) if config is not None else get_config("paper")
        )
        self.config = cfg
        g, d, s, r = cfg["generator"], cfg["decoder"], cfg["superres"], cfg["render"]
        self.image_size = int(cfg["image_size"])
        if 4 * s["input_resolution"] != self.image_size:
            raise ValueError(
                f"superres.input_resolution ({s['input_resolution']}) * 4 must equal image_size "
                f"({self.image_size})"
            )
        self.generator = TriplaneGenerator(**g)
        opts = {k: v for k, v in r.items() if k != "resolution"}
        decoder = OSGDecoder(g["plane_channels"], d["hidden"], d["out_features"])
        self.renderer = TriplaneRenderer(decoder, RenderOptions.from_dict(opts))
        self.render_resolution = int(r["resolution"])
        self.superres = SuperResolution(
            d["out_features"],
            s["input_resolution"],
            g["w_dim"],
            tuple(s["block_channels"]),
            s["antialias"],
            s.get("conv_clamp"),
        )
        e = cfg["encoder"]
        self.encoder = ImageEncoder(
            self.image_size,
            e["patch_size"],
            e["dim"],
            e["depth"],
            e["heads"],
            self.generator.num_ws,
            g["w_dim"],
            e["mlp_ratio"],
        )
        feat_ch = self.generator.feature_channels
        self.detail = DetailNetwork(self.image_size, g["head_resolution"], **cfg["detail"])
        res_ch = cfg["detail"]["out_channels"]
        self.gamma = FusionNetwork(res_ch, feat_ch, cfg["fusion"]["hidden"], init_value=1.0)
        self.eta = FusionNetwork(res_ch, feat_ch, cfg["fusion"]["hidden"], init_value=0.0)
        self.deformation = DeformationField(**cfg["deformation"])

    @classmethod
    def from_preset(cls, preset: str = "paper", **overrides: dict) -> NOFAAvatar:
        """e.g. NOFAAvatar.from_preset("tiny", render={"deterministic": True})."""
        return cls(get_config(preset, **overrides))

    @property
    def decoder(self) -> OSGDecoder:
        """The OSG decoder (owned by the renderer; its weights are `renderer.decoder.*`)."""
        return self.renderer.decoder

    @property
    def num_ws(self) -> int:
        return self.generator.num_ws

    # -- checks --------------------------------------------------------------------------
    def _camera(self, camera: torch.Tensor, n: int, like: torch.Tensor) -> torch.Tensor:
        if not isinstance(camera, torch.Tensor):
            camera = torch.as_tensor(camera, dtype=like.dtype)
        if camera.dim() == 1:
            camera = camera.unsqueeze(0)
        if camera.dim() != 2 or camera.shape[1] != 25:
            raise ValueError(
                f"camera must be 25 numbers per view (16 cam2world + 9 intrinsics), shape [N, 25] "
                f"or [25], got {list(camera.shape)}"
            )
        if camera.shape[0] == 1 and n > 1:
            camera = camera.expand(n, -1)
        if camera.shape[0] != n:
            raise ValueError(f"camera must have batch size {n} (or 1), got {list(camera.shape)}")
        return camera.to(device=like.device, dtype=like.dtype)

    @staticmethod
    def _coeffs(name: str, t: torch.Tensor, width: int, n: int, like: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t)
        if t.dim() == 1:
            t = t.unsqueeze(0)
        if t.dim() != 2 or t.shape[1] != width:
            raise ValueError(
                f"{name} must have shape [N, {width}] (3DMM "
                f"{'identity' if name == 'alpha' else 'expression'} coefficients), got "
                f"{list(t.shape)}"
            )
        if t.shape[0] == 1 and n > 1:
            t = t.expand(n, -1)
        if t.shape[0] != n:
            raise ValueError(f"{name} must have batch size {n} (or 1), got {list(t.shape)}")
        return t.to(device=like.device, dtype=like.dtype)

    # -- pipeline ------------------------------------------------------------------------
    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """image [N, 3, S, S] in [-1, 1] -> ws = E(I) + w_avg [N, num_ws, w_dim] (eq. 1)."""
        return self.encoder(image) + self.generator.w_avg.to(image.dtype)

    def render(
        self,
        volume: AvatarVolume,
        camera: torch.Tensor,
        alpha: torch.Tensor | None = None,
        beta: torch.Tensor | None = None,
        resolution: int | None = None,
        options: RenderOptions | None = None,
    ) -> dict:
        """Render `volume` from `camera` [N, 25]; with alpha [N, 80] and beta [N, 64] the rays are
        bent by the deformation field. Returns dict(image [N, 3, S, S], image_raw [N, 3, r, r],
        depth [N, 1, r, r], features [N, C, r, r], weight [N, 1, r, r]); images in [-1, 1]."""
        planes = volume.planes
        n = planes.shape[0]
        camera = self._camera(camera, n, planes)
        deform = None
        if (alpha is None) != (beta is None):
            raise ValueError("pass both alpha and beta (or neither, for the canonical expression)")
        if alpha is not None:
            id_dim, exp_dim = (
                self.config["deformation"]["id_dim"],
                self.config["deformation"]["exp_dim"],
            )
            a = self._coeffs("alpha", alpha, id_dim, n, planes)
            b = self._coeffs("beta", beta, exp_dim, n, planes)

            def deform(points: torch.Tensor) -> torch.Tensor:
                return self.deformation(points, a, b)[0]

        res = self.renderer(planes, camera, resolution or self.render_resolution, deform, options)
        image = self.superres(res.rgb, res.features, volume.ws)
        return {
            "image": image,
            "image_raw": res.rgb,
            "depth": res.depth,
            "features": res.features,
            "weight": res.weight,
        }

    def volume_from_feature(
        self, feature: torch.Tensor, skip: torch.Tensor, ws: torch.Tensor
    ) -> AvatarVolume:
        """Run G's tail from a head feature (F_c or F_e) -> AvatarVolume."""
        return AvatarVolume(self.generator.tail(feature, skip, ws), ws, feature, skip)

    def reconstruct(
        self, image: torch.Tensor, camera: torch.Tensor, fine: bool = True
    ) -> AvatarVolume:
        """One-shot reconstruction of the canonical avatar from a source portrait.

        image [N, 3, S, S] in [-1, 1]; camera [N, 25] its camera label. Returns the fine
        canonical volume V_e (V_c when fine=False) with V_c and its render in `coarse`.
        """
        check_image("image", image, self.image_size)
        camera = self._camera(camera, image.shape[0], image)
        ws = self.encode(image)
        f_c, skip = self.generator.head(ws)
        coarse_vol = self.volume_from_feature(f_c, skip, ws)
        coarse = self.render(coarse_vol, camera)
        if not fine:
            coarse_vol.planes_coarse, coarse_vol.coarse = coarse_vol.planes, coarse
            return coarse_vol
        f_res = self.detail(image - coarse["image"])
        f_e = fuse(f_c, f_res, self.gamma, self.eta)
        vol = self.volume_from_feature(f_e, skip, ws)
        vol.planes_coarse, vol.coarse = coarse_vol.planes, coarse
        return vol

    def animate(
        self,
        volume: AvatarVolume,
        alpha: torch.Tensor,
        beta: torch.Tensor,
        camera: torch.Tensor,
        resolution: int | None = None,
    ) -> dict:
        """Render `volume` with source identity alpha [N, 80] and target expression beta [N, 64]
        from camera [N, 25] -> dict(image [N, 3, S, S], image_raw, depth, features, weight)."""
        return self.render(volume, camera, alpha, beta, resolution)

    @torch.no_grad()
    def sample_virtual(
        self,
        seed: int,
        truncation: float = 0.7,
        camera: torch.Tensor | None = None,
        batch: int = 1,
        truncation_cutoff: int | None = None,
    ) -> AvatarVolume:
        """A virtual avatar from the generator's latent space (paper 4.5): z ~ N(0, I) from
        `seed`, conditioned on `camera` (default: frontal FFHQ camera), truncated towards w_avg."""
        p = next(self.parameters())
        gen = torch.Generator().manual_seed(int(seed))
        z = torch.randn(batch, self.generator.z_dim, generator=gen).to(p)
        c = self._camera(default_label() if camera is None else camera, batch, p)
        ws = self.generator.map(z, c, truncation, truncation_cutoff)
        f, skip = self.generator.head(ws)
        return self.volume_from_feature(f, skip, ws)

    def to_avatar(self, volume: AvatarVolume, **metadata):
        """The volume as a :class:`nofa.io.Avatar` (tri-plane + decoder + render options), for
        `nofa render` / `turntable` / `export-mesh`. The SR module and the deformation field
        are not part of that file: it renders the canonical expression at neural resolution."""
        from ..io.avatar import Avatar

        return Avatar.from_renderer(volume.planes, self.renderer, source="NOFAAvatar", **metadata)

    # -- files ---------------------------------------------------------------------------
    def save(self, path: str | os.PathLike, preset: str | None = None, **metadata) -> None:
        """Write the model file (format "nofa-model", suffix .nofa-model;
        :func:`nofa.models.model_file.save_model`) atomically: a temp file in the same
        directory is renamed over `path`, so an interrupted save keeps the old file."""
        from .model_file import save_model  # model_file builds on this module

        save_model(path, self, preset, **metadata)

    @classmethod
    def load(cls, path: str | os.PathLike, map_location: str | torch.device = "cpu") -> NOFAAvatar:
        """Read a model file (either format; :func:`nofa.models.model_file.load_model`, which
        also sets eval mode) onto `map_location`, in training mode as a freshly built module."""
        from .model_file import model_from_weights, read_model_file

        device = check_device(map_location)
        return model_from_weights(read_model_file(path)).to(device)
