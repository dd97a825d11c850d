"""Memory bandwidth: the device's copy bandwidth, and what the sampling kernel achieves.

Copy bandwidth: `dst.copy_(src)` of a tensor much larger than any cache; bytes moved =
2 x size (one read, one write) per median copy time. It is the practical ceiling for a
memory-bound kernel on this device, measured in the same run as the kernels.

Achieved bandwidth of `sample_triplane` forward: its compulsory traffic (every plane byte
read once, every point read once, every output written once; `Workload.bytes_min`) over
its median time. Gathers of the four bilinear corners re-read plane bytes, mostly from
cache, so this is a lower bound on the traffic the kernel really moves: the gap to the
copy bandwidth is the headroom a perfect kernel would have.
"""

from __future__ import annotations

import torch

from . import measure


def copy_bandwidth(device: torch.device, nbytes: int = 512 * 2**20) -> dict:
    """{"gbps": GB/s (1e9 bytes), "bytes": size of one buffer, "median_ms"} of a device copy."""
    n = nbytes // 4
    src = torch.ones(n, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    dst.copy_(src)  # first touch of dst's pages is not part of a copy
    t = measure.measure_call(
        lambda: dst.copy_(src),
        device,
        last_s=0.0,
        warmup=2,
        budget_s=0.5,
        min_repeats=5,
        memory=False,
    )
    return {
        "gbps": 2 * n * 4 / (t["median_ms"] * 1e-3) / 1e9,
        "bytes": n * 4,
        "median_ms": t["median_ms"],
    }


def achieved_gbps(row: dict) -> float | None:
    """Compulsory bytes / median time of a measured row, in GB/s (None when unknown)."""
    if row.get("status") != "ok" or not row.get("bytes_min") or not row.get("median_ms"):
        return None
    return row["bytes_min"] / (row["median_ms"] * 1e-3) / 1e9
