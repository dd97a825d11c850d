"""Timing and peak-memory measurement of one callable.

Time: warm-up calls, then the median over repeats. On CUDA each repeat is bracketed by CUDA
events and the device is synchronised after it, so the time is device time of the whole call.

Memory: the peak growth of one call over the state just before it (inputs built, previous
outputs and gradients freed).
- CUDA: `torch.cuda.max_memory_allocated()` after `reset_peak_memory_stats()`, minus the
  allocated bytes before the call.
- CPU: the process's resident-set high-water mark (VmHWM). On Linux it is reset before the
  call by writing "5" to /proc/self/clear_refs, so VmHWM after the call minus VmRSS before it
  is exactly the call's peak growth. Just before that, `malloc_trim(0)` hands glibc's free
  heap pages back to the OS: otherwise memory freed by a warm-up call (glibc raises its mmap
  threshold up to 32 MiB after a large free) stays resident and the next call reuses it
  without any RSS growth, under-reporting the peak. Where the reset is not possible
  (no /proc, or it is not writable), each job runs in a fresh process and memory is taken
  from the first call, before any warm-up (`FRESH_PROCESS` method).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import resource
import statistics
import sys
import time
from collections.abc import Callable

import torch

_STATUS = "/proc/self/status"
_CLEAR_REFS = "/proc/self/clear_refs"


def _status_kib(field: str) -> int | None:
    try:
        with open(_STATUS) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def rss_bytes() -> int:
    """Current resident set size of this process (0 where unknown)."""
    kib = _status_kib("VmRSS")
    return kib * 1024 if kib is not None else 0


def hwm_bytes() -> int:
    """Resident-set high-water mark of this process (VmHWM, else getrusage's ru_maxrss)."""
    kib = _status_kib("VmHWM")
    if kib is not None:
        return kib * 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # macOS reports bytes, Linux KiB


def reset_hwm() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0). False where that is not possible."""
    try:
        with open(_CLEAR_REFS, "w") as f:
            f.write("5")
    except OSError:
        return False
    return _status_kib("VmHWM") is not None


def _load_libc():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        _ = libc.malloc_trim  # glibc only: AttributeError elsewhere
        return libc
    except (OSError, AttributeError):
        return None


_LIBC = _load_libc()


def release_free_heap() -> None:
    """Return free malloc pages to the OS (glibc), so they cannot hide a later allocation."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


HWM_RESET = "rss-hwm-reset"
FRESH_PROCESS = "rss-fresh-process"
CUDA_ALLOCATOR = "cuda-max-allocated"


def cpu_memory_method() -> str:
    return HWM_RESET if reset_hwm() else FRESH_PROCESS


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _probe_start(device: torch.device) -> int:
    """Prepare a peak measurement; returns the baseline bytes."""
    gc.collect()
    if device.type == "cuda":
        sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        return torch.cuda.memory_allocated(device)
    release_free_heap()
    reset_hwm()  # best effort; in FRESH_PROCESS mode this is the process's first call
    return rss_bytes()


def _probe_end(device: torch.device, base: int) -> int:
    if device.type == "cuda":
        sync(device)
        return max(0, torch.cuda.max_memory_allocated(device) - base)
    return max(0, hwm_bytes() - base)


def peak_memory(
    fn: Callable[[], object], device: torch.device, before: Callable[[], None] | None = None
) -> int:
    """Peak bytes allocated by one call of `fn` beyond what was allocated just before it."""
    if before is not None:
        before()
    base = _probe_start(device)
    out = fn()
    peak = _probe_end(device, base)
    del out
    return peak


def measure_call(
    fn: Callable[[], object],
    device: torch.device,
    last_s: float,
    warmup: int = 1,
    budget_s: float = 1.0,
    min_repeats: int = 3,
    max_repeats: int = 50,
    before: Callable[[], None] | None = None,
    memory: bool = True,
) -> dict:
    """Median time of `fn` (ms) and, with `memory`, its peak memory growth (bytes).

    `last_s` is the duration of a call already made (the caller's first, warm-up call).
    Up to `warmup` more warm-up calls follow, skipped once one call takes longer than
    `budget_s`. Repeats fill `budget_s`, within [min_repeats, max(min_repeats, max_repeats)]:
    a median always rests on at least `min_repeats` calls, however long they take. The first
    repeat also takes the memory measurement (its set-up is not timed). `before` runs ahead
    of each call, outside the timed region (e.g. to drop grads).
    Returns {"median_ms", "min_ms", "max_ms", "repeats", "peak_bytes"}.
    """
    for _ in range(warmup):
        if last_s > budget_s:
            break
        if before is not None:
            before()
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        last_s = time.perf_counter() - t0
    reps = int(budget_s / max(last_s, 1e-6))
    reps = max(1, min_repeats, min(max_repeats, reps))
    times: list[float] = []
    peak = None
    for i in range(reps):
        if before is not None:
            before()
        base = _probe_start(device) if (memory and i == 0) else None
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            out = fn()
            end.record()
            sync(device)
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            out = fn()
            times.append((time.perf_counter() - t0) * 1e3)
        if base is not None:
            peak = _probe_end(device, base)
        del out
    return {
        "median_ms": statistics.median(times),
        "min_ms": min(times),
        "max_ms": max(times),
        "repeats": reps,
        "peak_bytes": peak,
    }
