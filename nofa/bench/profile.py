"""Where a benchmark call's time goes, kernel by kernel (`nofa profile`; docs/benchmarks.md,
"Per-kernel profiles").

`nofa bench` says how long a call takes; this says what it is made of. One call of a case's
headline workload (the plan's largest size), per backend and mode, is timed without the
profiler (wall time, device synchronised), then profiled with `torch.profiler`:

- on CUDA, every device activity (kernels, copies, fills) by its self device time, and the
  device's busy share of the wall time (what is left is launch overhead and host waits);
- on the CPU, every operator by its self CPU time;
- both: the share of nofa's own ops / kernels, kernel launches and host reads of device
  values (`.item()` and the like, each one a stall of the queue on CUDA) per call.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile

from .. import ops
from ..io.atomic import atomic_write_text
from . import measure
from .calls import check_backends, make_call
from .cases import get_case
from .provenance import header_from_environment

__all__ = ["KernelRow", "Profile", "format_profiles", "profile_case", "write_profiles"]

# Runtime calls that launch device work, and host reads that wait for the device. Newer
# profilers may name runtime calls with an API version suffix ("cudaLaunchKernelExC_v11060").
_LAUNCHES = ("cudaLaunchKernel", "cudaLaunchKernelExC", "cuLaunchKernel", "cuLaunchKernelEx")
_HOST_READS = ("aten::_local_scalar_dense",)
_SYNCS = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize")
_VERSION_SUFFIX = re.compile(r"_v\d+$")


@dataclass
class KernelRow:
    """One device activity (CUDA) or operator (CPU), summed over its calls in one case call."""

    name: str
    calls: float  # per case call
    ms: float  # self time per case call
    share: float  # of the busy time
    nofa: bool  # one of nofa's kernels / ops


@dataclass
class Profile:
    case: str
    shape: str
    backend: str
    mode: str
    device: str
    wall_ms: float  # one call, without the profiler, device synchronised
    busy_ms: float  # sum of self times (device activities on CUDA, operators on the CPU)
    nofa_ms: float
    launches: float  # kernel launches per call (CUDA)
    host_reads: float  # host reads of device values per call
    syncs: float  # stream / device synchronisations per call (CUDA), a host read's own included
    rows: list[KernelRow] = field(default_factory=list)
    repeats: int = 1  # calls timed, and calls profiled, behind the figures


def _short(name: str, width: int = 90) -> str:
    """A kernel's demangled name without its parameter list, cut to `width`."""
    name = name.removeprefix("void ").replace("(anonymous namespace)::", "")
    depth = 0
    for i, ch in enumerate(name):  # the parameter list: the first "(" after a name, outside <>
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth -= 1
        elif ch == "(" and depth == 0 and i > 0 and (name[i - 1].isalnum() or name[i - 1] in "_>"):
            name = name[:i]
            break
    return name if len(name) <= width else name[: width - 1] + "…"


def _is_nofa(name: str) -> bool:
    return name.startswith("nofa::") or "nofa::" in name or "nofa_" in name


def _self_us(e: Any, cuda: bool) -> float:
    if cuda:
        return float(
            getattr(e, "self_device_time_total", 0.0) or getattr(e, "device_time_total", 0.0)
        )
    return float(e.self_cpu_time_total)


def profile_case(
    case_name: str,
    device: str = "cpu",
    backend: str = "kernels",
    mode: str = "forward+backward",
    params: dict | None = None,
    quick: bool = False,
    repeats: int = 3,
    warmup: int = 2,
    top: int = 15,
) -> Profile:
    """Profile `repeats` calls of a case (after `warmup` untimed ones) on one backend
    ("kernels" or "torch") and mode ("forward" or "forward+backward"); params default to the
    case's largest headline size of the device's plan (of the "quick" plan with `quick`). Raises
    ValueError on an unknown mode
    or backend, and BackendMismatch when the ops did not run on the labelled backend."""
    if backend not in ("kernels", "torch"):
        raise ValueError(f"backend must be 'kernels' or 'torch', got {backend!r}")
    case = get_case(case_name)
    if mode not in case.modes:
        raise ValueError(f"mode must be one of {case.modes} for case {case_name}, got {mode!r}")
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be >= 1 and warmup >= 0, got {repeats} and {warmup}")
    dev = torch.device(device)
    if params is None:
        params = case.sizes["headline"]["quick" if quick else dev.type][-1]
    wl = case.build(dict(params), dev)
    call, before = make_call(wl, wl.fn, backend, mode)

    def once() -> None:
        if before:
            before()
        call()

    with ops.trace_backends() as tr:
        for _ in range(max(warmup, 1)):  # at least one: the cotangents are built on the first call
            once()
    check_backends(tr, case, backend)
    measure.sync(dev)
    t0 = time.perf_counter()
    for _ in range(repeats):
        once()
    measure.sync(dev)
    wall_ms = (time.perf_counter() - t0) * 1e3 / repeats

    cuda = dev.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        for _ in range(repeats):
            once()
        measure.sync(dev)
    events = prof.key_averages()
    counts: dict[str, int] = {}
    for e in events:
        key = _VERSION_SUFFIX.sub("", e.key)
        counts[key] = counts.get(key, 0) + e.count
    if cuda:
        timed = [
            e
            for e in events
            if e.device_type != torch.autograd.DeviceType.CPU and _self_us(e, True) > 0
        ]
        if not timed:
            raise RuntimeError(
                "the profiler recorded no device activity (is CUPTI available to torch.profiler?)"
            )
    else:
        timed = [e for e in events if _self_us(e, False) > 0]
    busy_us = sum(_self_us(e, cuda) for e in timed)
    nofa_us = sum(_self_us(e, cuda) for e in timed if _is_nofa(e.key))
    timed.sort(key=lambda e: -_self_us(e, cuda))
    rows = [
        KernelRow(
            _short(e.key),
            e.count / repeats,
            _self_us(e, cuda) / 1e3 / repeats,
            _self_us(e, cuda) / busy_us if busy_us else 0.0,
            _is_nofa(e.key),
        )
        for e in timed[:top]
    ]
    per_call = lambda names: sum(counts.get(n, 0) for n in names) / repeats  # noqa: E731
    return Profile(
        case=case_name,
        shape=wl.shape,
        backend=backend,
        mode=mode,
        device=device,
        wall_ms=wall_ms,
        busy_ms=busy_us / 1e3 / repeats,
        nofa_ms=nofa_us / 1e3 / repeats,
        launches=per_call(_LAUNCHES),
        host_reads=per_call(_HOST_READS),
        # less the one device synchronisation that closes the profiled calls
        syncs=max(0.0, per_call(_SYNCS) - (1 / repeats if cuda else 0.0)),
        rows=rows,
        repeats=repeats,
    )


def format_profiles(profiles: Sequence[Profile], env: dict) -> str:
    """Markdown: a summary table, then each call's top activities."""
    cuda = any(p.device.startswith("cuda") for p in profiles)
    what = (
        "device activity (kernels, copies, fills), by self device time"
        if cuda
        else "operator, by self CPU time"
    )
    lines = [
        header_from_environment(env, min((p.repeats for p in profiles), default=None)),
        "# Per-kernel profiles (`nofa profile`)",
        "",
        f"- command: `{env.get('command', '')}`",
        f"- device: {env.get('device', '')} — {env.get('device_name', '')}"
        + (f" ({env['gpu_capability']})" if env.get("gpu_capability") else ""),
        f"- CPU: {env.get('cpu_model', '')}, torch threads {env.get('cpu_threads', '')}",
        f"- torch {env.get('torch', '')} (CUDA {env.get('torch_cuda', '')}), nofa "
        f"{env.get('nofa', '')} "
        f"at commit {env.get('commit', '')}; {env.get('date', '')}",
        f"- one row per {what}; times per call (mean of the profiled calls); wall: the same calls "
        "without the profiler, device synchronised; busy: the sum of the rows' self times",
        "",
        "| case | problem | backend | mode | wall ms | busy ms | busy / wall | nofa share of busy "
        "| launches | host reads | syncs |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in profiles:
        ratio = f"{p.busy_ms / p.wall_ms:.0%}" if p.wall_ms > 0 else "n/a"
        share = f"{p.nofa_ms / p.busy_ms:.0%}" if p.busy_ms > 0 else "n/a"
        lines.append(
            f"| {p.case} | {p.shape} | {p.backend} | {p.mode} | {p.wall_ms:.3g} | {p.busy_ms:.3g} "
            f"| {ratio} "
            f"| {share} | {p.launches:.0f} | {p.host_reads:.0f} | {p.syncs:.0f} |"
        )
    for p in profiles:
        lines += [
            "",
            f"## {p.case}, {p.backend}, {p.mode}",
            "",
            f"{p.shape}",
            "",
            "| name | calls | ms | share of busy | nofa |",
            "|---|---|---|---|---|",
        ]
        for r in p.rows:
            name = r.name.replace("|", "\\|")
            lines.append(
                f"| `{name}` | {r.calls:.0f} | {r.ms:.3g} | {r.share:.1%} | "
                f"{'yes' if r.nofa else ''} |"
            )
    return "\n".join(lines) + "\n"


def write_profiles(out: str | Path, profiles: Sequence[Profile], env: dict) -> tuple[Path, Path]:
    """OUT/<device>_profile.md and .json (written atomically)."""
    out = Path(out)
    stem = "cuda" if any(p.device.startswith("cuda") for p in profiles) else "cpu"
    md = atomic_write_text(out / f"{stem}_profile.md", format_profiles(profiles, env))
    js = atomic_write_text(
        out / f"{stem}_profile.json",
        json.dumps({"environment": env, "profiles": [asdict(p) for p in profiles]}, indent=2),
    )
    return md, js
