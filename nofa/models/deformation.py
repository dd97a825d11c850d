"""The NOFA++ deformation field (paper section 3.3; docs/deformation.md) as an nn.Module.

D-Net maps [PE(x) | alpha | beta] to an offset, W-Net maps [PE(x) | alpha] to a weight in
(0, 1); x_c = x + weight * offset. The forward runs the fused op `nofa.ops.deform_points`
(kernels or the pure-PyTorch twin, per `nofa.ops.use_backend`).
"""

from __future__ import annotations

import torch
from torch import nn

from .. import ops


def _linear_params(n_in: int, n_out: int) -> tuple[nn.Parameter, nn.Parameter]:
    """nn.Linear's default initialisation (kaiming-uniform weight, uniform bias)."""
    layer = nn.Linear(n_in, n_out)
    return nn.Parameter(layer.weight.detach().clone()), nn.Parameter(layer.bias.detach().clone())


class DeformationField(nn.Module):
    """Backward deformation from the target-expression space to the canonical space.

    Args:
        n_freqs: positional-encoding octaves L (PE has 3 + 6 L values per point).
        id_dim: width of alpha (3DMM identity coefficients).
        exp_dim: width of beta (3DMM expression coefficients).
        d_hidden, d_layers: D-Net hidden width and number of hidden layers.
        w_hidden, w_layers: W-Net hidden width and number of hidden layers.

    Parameters are in nn.Linear layout: `d_weights[i]` [out, in], `d_biases[i]` [out]
    (likewise `w_*`); the first D-Net layer reads [PE(x) | alpha | beta], the first W-Net
    layer [PE(x) | alpha]. The last D-Net layer starts at zero, so the field starts as the
    identity map (offset = 0 exactly); the W-Net keeps the default initialisation, so the
    weight starts as sigmoid of small values, strictly inside (0, 1).
    """

    def __init__(
        self,
        n_freqs: int = 6,
        id_dim: int = 80,
        exp_dim: int = 64,
        d_hidden: int = 128,
        d_layers: int = 4,
        w_hidden: int = 64,
        w_layers: int = 3,
    ) -> None:
        super().__init__()
        if d_layers < 1 or w_layers < 1:
            raise ValueError(f"d_layers and w_layers must be >= 1, got {d_layers} and {w_layers}")
        self.n_freqs, self.id_dim, self.exp_dim = n_freqs, id_dim, exp_dim
        pe = 3 + 6 * n_freqs
        d_dims = [pe + id_dim + exp_dim] + [d_hidden] * d_layers + [3]
        w_dims = [pe + id_dim] + [w_hidden] * w_layers + [1]
        self.d_weights, self.d_biases = nn.ParameterList(), nn.ParameterList()
        self.w_weights, self.w_biases = nn.ParameterList(), nn.ParameterList()
        for dims, ws, bs in (
            (d_dims, self.d_weights, self.d_biases),
            (w_dims, self.w_weights, self.w_biases),
        ):
            for n_in, n_out in zip(dims[:-1], dims[1:]):
                w, b = _linear_params(n_in, n_out)
                ws.append(w)
                bs.append(b)
        self.reset_to_identity()

    @torch.no_grad()
    def reset_to_identity(self) -> None:
        """Zero the last D-Net layer: offset = 0 everywhere, so x_c = points exactly."""
        self.d_weights[-1].zero_()
        self.d_biases[-1].zero_()

    def forward(
        self, points: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """points [N, M, 3], alpha [N, id_dim], beta [N, exp_dim] ->
        (x_c [N, M, 3], offset [N, M, 3], weight [N, M, 1])."""
        for name, t, width in (("alpha", alpha, self.id_dim), ("beta", beta, self.exp_dim)):
            if not isinstance(t, torch.Tensor) or t.dim() != 2 or t.shape[1] != width:
                got = list(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
                raise ValueError(f"{name} must have shape [N, {width}], got {got}")
        return ops.deform_points(
            points,
            alpha,
            beta,
            list(self.d_weights),
            list(self.d_biases),
            list(self.w_weights),
            list(self.w_biases),
            self.n_freqs,
        )

    def extra_repr(self) -> str:
        d = [w.shape[0] for w in self.d_weights]
        w = [w.shape[0] for w in self.w_weights]
        return (
            f"n_freqs={self.n_freqs}, id_dim={self.id_dim}, exp_dim={self.exp_dim}, d_net={d}, "
            f"w_net={w}"
        )
