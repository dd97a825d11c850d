"""Shared test helpers: devices, tolerances, and the kernel-vs-reference comparison."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import pytest
import torch

# Compiled graphs (torch.compile's FX / AOTAutograd caches) name nofa's ops with the arguments
# of the schema they were compiled against, and the cache key does not include that schema: a
# cache filled before an op gained an argument replays the old call ("missing value for
# argument"). Tests use a cache of their own per version of the schema file (docs/ops.md,
# "torch.compile").
_SCHEMA = Path(__file__).resolve().parents[1] / "csrc" / "ops.cpp"
if _SCHEMA.exists():
    os.environ.setdefault(
        "TORCHINDUCTOR_CACHE_DIR",
        str(
            Path(tempfile.gettempdir())
            / f"nofa-inductor-{hashlib.sha1(_SCHEMA.read_bytes()).hexdigest()[:12]}"
        ),
    )

import nofa.ops as ops  # noqa: E402

HAS_CUDA = torch.cuda.is_available()

# Devices a kernel test runs on: the CPU always, CUDA when a GPU is present (skipped with a
# reason otherwise, so the report shows which CUDA checks did not run).
DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=[
            pytest.mark.cuda,
            pytest.mark.skipif(
                not HAS_CUDA, reason="no CUDA GPU visible: CUDA kernel not exercised"
            ),
        ],
    ),
]


def require_kernels(device: str) -> None:
    """A kernel test must run the kernel: fail (not skip) when the build lacks it."""
    if not ops.kernels_available(device):
        pytest.fail(f"nofa kernels are not compiled for {device}: {ops.build_info()}")


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """Norm-wise relative error ||a - b|| / max(||b||, tiny)."""
    a, b = a.detach().double(), b.detach().double()
    return ((a - b).norm() / b.norm().clamp_min(1e-12)).item()


def assert_grads_close(got, want, tol: float = 1e-4, names=None) -> None:
    for i, (g, w) in enumerate(zip(got, want)):
        name = names[i] if names else f"grad[{i}]"
        assert (g is None) == (w is None), f"{name}: one side has no gradient"
        if g is None:
            continue
        assert g.shape == w.shape, f"{name}: shape {tuple(g.shape)} vs {tuple(w.shape)}"
        assert torch.isfinite(g).all(), f"{name}: non-finite gradient"
        err = rel_err(g, w)
        assert err <= tol, f"{name}: relative error {err:.3g} > {tol}"


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
