"""The image encoder E (paper 3.1): a vision transformer mapping a source image to W+ offsets.

    V_c = G(E(I_s) + w_avg)                                             (eq. 1)

Design (the paper names a ViT [Dosovitskiy et al.] without sizes; these are ours):
patch embedding (a strided conv), learned position embeddings, `num_ws` learned latent
query tokens appended to the patch tokens, pre-norm transformer blocks, then one linear
head per latent token (a batched [num_ws, dim, w_dim] weight) giving that W code's offset.
The heads start small so that E(I) + w_avg starts near the average face.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"encoder dim ({dim}) must be divisible by heads ({heads})")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        N, T, D = x.shape
        q, k, v = self.qkv(x).reshape(N, T, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v)
        return self.proj(y.transpose(1, 2).reshape(N, T, D))


class TransformerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ImageEncoder(nn.Module):
    """E: image [N, 3, S, S] in [-1, 1] -> W+ offsets [N, num_ws, w_dim]."""

    def __init__(
        self,
        image_size: int = 512,
        patch_size: int = 16,
        dim: int = 384,
        depth: int = 6,
        heads: int = 6,
        num_ws: int = 14,
        w_dim: int = 512,
        mlp_ratio: float = 4.0,
    ) -> None:
        super().__init__()
        if image_size % patch_size:
            raise ValueError(
                f"image_size ({image_size}) must be a multiple of patch_size ({patch_size})"
            )
        self.image_size, self.patch_size, self.num_ws, self.w_dim = (
            image_size,
            patch_size,
            num_ws,
            w_dim,
        )
        n_patches = (image_size // patch_size) ** 2
        self.patch_embed = nn.Conv2d(3, dim, patch_size, stride=patch_size)
        self.pos_embed = nn.Parameter(torch.randn(1, n_patches, dim) * 0.02)
        self.latent_tokens = nn.Parameter(torch.randn(1, num_ws, dim) * 0.02)
        self.blocks = nn.ModuleList(TransformerBlock(dim, heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head_weight = nn.Parameter(torch.randn(num_ws, dim, w_dim) * (0.01 / dim**0.5))
        self.head_bias = nn.Parameter(torch.zeros(num_ws, w_dim))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        check_image("image", image, self.image_size)
        x = self.patch_embed(image).flatten(2).transpose(1, 2) + self.pos_embed  # [N, T, dim]
        x = torch.cat([x, self.latent_tokens.expand(x.shape[0], -1, -1)], dim=1)
        for blk in self.blocks:
            x = blk(x)
        lat = self.norm(x[:, -self.num_ws :])  # [N, num_ws, dim]
        return torch.einsum("nkd,kdw->nkw", lat, self.head_weight) + self.head_bias


def check_image(name: str, image: object, size: int) -> None:
    """Raise a clear error unless `image` is a float tensor [N, 3, size, size]."""
    if not isinstance(image, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor [N, 3, {size}, {size}], got {type(image).__name__}"
        )
    if image.dim() != 4 or image.shape[1] != 3:
        raise ValueError(
            f"{name} must have shape [N, 3, {size}, {size}] (RGB), got {list(image.shape)}"
        )
    if image.shape[2] != size or image.shape[3] != size:
        raise ValueError(
            f"{name} must be {size}x{size} for this model, got {image.shape[2]}x{image.shape[3]} "
            f"(resize or crop it first)"
        )
    if not image.is_floating_point():
        raise TypeError(f"{name} must be a float tensor in [-1, 1], got {image.dtype}")
