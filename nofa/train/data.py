"""Synthetic 3D training data from a frozen tri-plane generator (paper 3.4: "randomly sample
a volume from the 3D GAN's latent space, and sample two camera poses").

Every sample is a pure function of (seed, stream, index): its latent z and its two cameras
come from NumPy's PCG64 seeded through a SeedSequence of that triple (a hash with a 128-bit
state: distinct triples give independent streams; torch's CPU generator would keep only 32
bits of a seed), so the data position of a run is
just the number of samples consumed, a resumed run continues with exactly the samples it
would have seen, and N processes that take disjoint slices of a global batch see the same
samples as one process taking all of it. Held-out samples use their own streams and are
never drawn for training: HELDOUT_STREAM is the validation stream the trainer evaluates
during a run (every setting is chosen on it), TEST_STREAM is scored once, at the end, by the
training proofs (benchmarks/train_proof.py) and by nothing else.

Cameras: yaw ~ N(0, yaw_std) and pitch ~ N(0, pitch_std) (radians), each clipped at
`max_sigma` standard deviations, on EG3D's FFHQ orbit (radius 2.7 around (0, 0, 0.2),
focal 4.2647): defaults yaw_std 0.3 (17 deg) and pitch_std 0.155 (8.9 deg), the Gaussian
spread EG3D/pi-GAN use for FFHQ, see docs/training.md. The generator's mapping network is
conditioned on the frontal camera (EG3D's gen_samples default)."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from ..models import NOFAAvatar
from ..render import default_label

__all__ = ["SyntheticBatch", "SyntheticSource", "TRAIN_STREAM", "HELDOUT_STREAM", "TEST_STREAM"]

TRAIN_STREAM = 0
HELDOUT_STREAM = 1
TEST_STREAM = 2


@dataclasses.dataclass
class SyntheticBatch:
    """Two views of N generated heads. Images in [-1, 1].

    image_s/image_t [N, 3, S, S] (SR), raw_s/raw_t [N, 3, r, r], depth_s/depth_t [N, 1, r, r],
    camera_s/camera_t [N, 25], ws [N, num_ws, w_dim] (the true codes), index [N] sample ids.
    """

    image_s: torch.Tensor
    image_t: torch.Tensor
    raw_s: torch.Tensor
    raw_t: torch.Tensor
    depth_s: torch.Tensor
    depth_t: torch.Tensor
    camera_s: torch.Tensor
    camera_t: torch.Tensor
    ws: torch.Tensor
    index: torch.Tensor

    def __len__(self) -> int:
        return self.image_s.shape[0]

    def slice(self, start: int, stop: int) -> SyntheticBatch:
        return SyntheticBatch(
            **{f.name: getattr(self, f.name)[start:stop] for f in dataclasses.fields(self)}
        )


class SyntheticSource:
    """Renders training pairs from `model`'s frozen generator, renderer and SR module.

    The teacher renders are deterministic (no sample jitter), in float32, without gradients.
    """

    def __init__(
        self,
        model: NOFAAvatar,
        seed: int = 0,
        truncation: float = 0.7,
        yaw_std: float = 0.3,
        pitch_std: float = 0.155,
        max_sigma: float = 2.0,
        resolution: int | None = None,
    ) -> None:
        self.model, self.seed, self.truncation = model, int(seed), float(truncation)
        self.yaw_std, self.pitch_std, self.max_sigma = (
            float(yaw_std),
            float(pitch_std),
            float(max_sigma),
        )
        self.resolution = resolution
        self.options = model.renderer.options.replace(deterministic=True)

    def sample_params(
        self, index: int, stream: int = TRAIN_STREAM
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(z [z_dim], camera_s [25], camera_t [25]) of sample `index` of `stream`."""
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, stream, int(index)]))
        z = torch.from_numpy(rng.standard_normal(self.model.generator.z_dim)).float()
        angles = (
            torch.from_numpy(rng.standard_normal((2, 2)))
            .float()
            .clamp(-self.max_sigma, self.max_sigma)
        )
        angles = angles * torch.tensor([self.yaw_std, self.pitch_std])
        cams = default_label(angles[:, 0], angles[:, 1])
        return z, cams[0], cams[1]

    @torch.no_grad()
    def batch(self, indices: list[int] | range, stream: int = TRAIN_STREAM) -> SyntheticBatch:
        """Samples `indices` of `stream`, rendered by the frozen generator."""
        m = self.model
        p = next(m.parameters())
        params = [self.sample_params(i, stream) for i in indices]
        z = torch.stack([q[0] for q in params]).to(p)
        cam_s = torch.stack([q[1] for q in params]).to(p)
        cam_t = torch.stack([q[2] for q in params]).to(p)
        cond = default_label()[None].expand(len(params), -1).to(p)
        ws = m.generator.map(z, cond, self.truncation)
        feature, skip = m.generator.head(ws)
        vol = m.volume_from_feature(feature, skip, ws)
        views = []
        for cam in (cam_s, cam_t):
            res = m.renderer(
                vol.planes, cam, self.resolution or m.render_resolution, None, self.options
            )
            views.append((m.superres(res.rgb, res.features, ws), res.rgb, res.depth))
        (img_s, raw_s, d_s), (img_t, raw_t, d_t) = views
        return SyntheticBatch(
            img_s,
            img_t,
            raw_s,
            raw_t,
            d_s,
            d_t,
            cam_s,
            cam_t,
            ws,
            torch.as_tensor(list(indices), dtype=torch.long),
        )
