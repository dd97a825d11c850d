"""Argument validation shared by the kernel and reference paths, so both fail the same
way, with messages that name the argument, the expectation and what was given."""

from __future__ import annotations

import numbers

import torch


def tensor(name: str, t: object, *, dims: int, layout: str) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape {layout}, got {type(t).__name__}")
    if t.dim() != dims:
        raise ValueError(f"{name} must have shape {layout} ({dims} dims), got {list(t.shape)}")
    if t.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"{name} must be float32 or float64, got {t.dtype}")
    return t


def same_device(**named: torch.Tensor) -> None:
    devices = {k: v.device for k, v in named.items()}
    if len(set(devices.values())) > 1:
        desc = ", ".join(f"{k} on {d}" for k, d in devices.items())
        raise ValueError(f"{', '.join(devices)} must be on the same device, got {desc}")


def same_dtype(**named: torch.Tensor) -> None:
    dtypes = {k: v.dtype for k, v in named.items()}
    if len(set(dtypes.values())) > 1:
        desc = ", ".join(f"{k} {d}" for k, d in dtypes.items())
        raise TypeError(f"{', '.join(dtypes)} must have the same dtype, got {desc}")


def dim_size(name: str, t: torch.Tensor, dim: int, size: int, layout: str) -> None:
    if t.shape[dim] != size:
        raise ValueError(
            f"{name} must have shape {layout} with size {size} at dim {dim}, got {list(t.shape)}"
        )


def same_batch(**named: torch.Tensor) -> None:
    sizes = {k: v.shape[0] for k, v in named.items()}
    if len(set(sizes.values())) > 1:
        desc = ", ".join(f"{k} {s}" for k, s in sizes.items())
        raise ValueError(f"{', '.join(sizes)} must have the same batch size N, got {desc}")


def box_warp(value: object) -> float:
    """A positive, finite side length for the tri-plane box (a Python number)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"box_warp must be a positive finite number (float), got {type(value).__name__} "
            f"{value!r}"
        )
    if not 0 < value < float("inf"):  # also false for NaN
        raise ValueError(f"box_warp must be a positive finite number, got {value}")
    return float(value)


def flag(name: str, value: object) -> bool:
    """A real bool: a string such as "no" would otherwise be truthy."""
    if not isinstance(value, bool):
        raise TypeError(
            f"{name} must be a bool (True or False), got {type(value).__name__} {value!r}"
        )
    return value


def sorted_depths(name: str, depths: torch.Tensor) -> bool:
    """Check depths [..., S, 1] ascending along S (ValueError otherwise); return whether any
    depth is NaN (NaN has its own rule, so it does not count as unsorted).

    Data-dependent, so eager mode only: one reduction and one host read. Inside
    torch.compile it is skipped (it would split the graph) and returns True ("may hold
    NaN"), so the caller applies its NaN rule unconditionally there."""
    if torch.compiler.is_compiling():
        return True
    if depths.numel() == 0:
        return False
    if depths.shape[-2] < 2:
        return bool(torch.isnan(depths).any())
    steps = depths[..., 1:, :] - depths[..., :-1, :]
    low = steps.amin().item()  # NaN if any depth is NaN
    has_nan = low != low
    if has_nan:
        low = steps.nan_to_num(0.0).amin().item()
    if low < 0:
        raise ValueError(
            f"{name} must be sorted ascending along the sample dim S in every ray (negative "
            "intervals "
            "would give negative weights); sort them first (torch.sort(depths, dim=-2))"
        )
    return has_nan
