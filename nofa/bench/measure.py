"""Timing and peak-memory measurement of one callable.

Time: a few warm-up calls, then the median over repeats. On CUDA each repeat is bracketed
by CUDA events and the device is synchronised, so the time is device time, not launch time.

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
import os
import resource
import statistics
import sys
import time
from typing import Callable

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
        libc.malloc_trim  # glibc only
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


def peak_memory(fn: Callable[[], object], device: torch.device, before: Callable[[], None] | None = None) -> int:
    """Peak bytes allocated by one call of `fn` beyond what was allocated just before it."""
    if before is not None:
        before()
    gc.collect()
    if device.type == "cuda":
        sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        out = fn()
        sync(device)
        peak = torch.cuda.max_memory_allocated(device) - base
        del out
        return max(0, peak)
    release_free_heap()
    reset_hwm()  # best effort; in FRESH_PROCESS mode this is the process's first call
    base = rss_bytes()
    out = fn()
    peak = hwm_bytes() - base
    del out
    return max(0, peak)


def time_call(
    fn: Callable[[], object],
    device: torch.device,
    warmup: int = 2,
    budget_s: float = 1.0,
    min_repeats: int = 3,
    max_repeats: int = 50,
    before: Callable[[], None] | None = None,
) -> dict:
    """Median time of `fn` in milliseconds after `warmup` calls.

    The number of repeats adapts to the cost of one call so that a measurement takes about
    `budget_s` seconds, within [min_repeats, max_repeats]. `before` runs ahead of each call,
    outside the timed region (e.g. to drop last call's gradients).
    Returns {"median_ms", "min_ms", "max_ms", "repeats"}.
    """
    last = 0.0
    for _ in range(max(1, warmup)):
        if before is not None:
            before()
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        last = time.perf_counter() - t0
    reps = int(min(max_repeats, max(min_repeats, budget_s / max(last, 1e-6))))
    times: list[float] = []
    if device.type == "cuda":
        events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(reps)]
        for start, end in events:
            if before is not None:
                before()
            start.record()
            fn()
            end.record()
        sync(device)
        times = [start.elapsed_time(end) for start, end in events]
    else:
        for _ in range(reps):
            if before is not None:
                before()
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    return {
        "median_ms": statistics.median(times),
        "min_ms": min(times),
        "max_ms": max(times),
        "repeats": reps,
    }


def cpu_threads() -> int:
    return torch.get_num_threads()


def cpu_count() -> int:
    return os.cpu_count() or 1
