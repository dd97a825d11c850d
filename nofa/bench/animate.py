"""Animation throughput benchmark (`nofa animate-bench`; docs/animate.md, "Performance").

A model of the chosen preset (random weights, seeded: speed does not depend on the values)
is sized for `size` px output (neural rendering at size/4, SR x4), one random portrait is
encoded once, then the avatar is driven by the built-in expression sequence with an orbiting
camera. Measured: frames/s, the per-frame split (deformation, render without deformation,
SR), working memory per frame (CPU: peak RSS above the level before the first (warm-up)
batch, sampled every 2 ms, per frame of the batch: later frames reuse memory the allocator
kept; CUDA: peak allocated above the level before each batch, the largest), and a long drive
streamed to an MP4 (or discarded when imageio-ffmpeg is absent) whose peak RSS after 100
frames and at the end must differ by < 5% (flat memory). The Markdown file starts with the
result header of `nofa.bench.provenance` (its repeats: the fewest measured frames of a row).
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from pathlib import Path

import torch

from ..io.atomic import atomic_write_text
from ..models import NOFAAvatar, get_config
from ..models.animatable import AnimatableAvatar
from ..pipelines.animate import AnimateOptions, animate, builtin_expressions, peak_rss_mib
from ..render import default_label
from .provenance import header_from_environment

__all__ = ["bench_config", "format_results", "run_animate_bench", "write_results"]


def bench_config(preset: str, size: int) -> dict:
    """The preset with output `size` (SR x4 from a size/4 neural rendering)."""
    if size % 16:
        raise ValueError(f"--size must be a multiple of 16, got {size}")
    cfg = get_config(preset)
    enc = cfg["encoder"]
    patch = enc["patch_size"]
    while size % patch:
        patch //= 2
    return get_config(
        preset,
        image_size=size,
        superres={"input_resolution": size // 4},
        render={"resolution": size // 4, "deterministic": True},
        encoder={"patch_size": patch},
    )


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class _RssSampler:
    """Peak RSS (MiB) over a block, sampled every 2 ms in a thread."""

    def __enter__(self) -> _RssSampler:
        self.base = self.peak = _rss_mib()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, _rss_mib())

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, _rss_mib())


def run_animate_bench(
    preset: str = "paper",
    size: int = 512,
    frames: int = 20,
    device: str = "cpu",
    batch: int = 1,
    long_frames: int = 0,
    warmup: int = 2,
    samples: int | None = None,
    progress: bool = True,
    seed: int = 0,
    chunk_rays: int | None = None,
    autocast: str | None = None,
) -> dict:
    """Measure animation of one encoded portrait -> results dict (see `format_results`).
    chunk_rays: rays per render chunk (default: the preset's 8192 on CPU, one chunk per
    frame on CUDA). autocast: None (float32) or "bf16" / "fp16": the frames (not the
    encoding) run under torch.autocast with that dtype."""
    if autocast not in AUTOCAST_DTYPES:
        raise ValueError(
            f"autocast must be one of {sorted(AUTOCAST_DTYPES, key=str)}, got {autocast!r}"
        )
    dev = torch.device(device)
    with torch.autocast(
        dev.type, dtype=AUTOCAST_DTYPES[autocast] or torch.bfloat16, enabled=autocast is not None
    ):
        res = _measure(
            preset,
            size,
            frames,
            dev,
            batch,
            long_frames,
            warmup,
            samples,
            progress,
            seed,
            chunk_rays,
        )
    res["precision"] = f"{autocast} autocast" if autocast else "float32"
    return res


# --autocast choices -> dtype (None: float32, autocast off).
AUTOCAST_DTYPES = {None: None, "bf16": torch.bfloat16, "fp16": torch.float16}


def _measure(
    preset: str,
    size: int,
    frames: int,
    dev: torch.device,
    batch: int,
    long_frames: int,
    warmup: int,
    samples: int | None,
    progress: bool,
    seed: int,
    chunk_rays: int | None,
) -> dict:
    from tqdm import tqdm

    device = str(dev)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda but no CUDA GPU is visible")
    if chunk_rays is None and dev.type == "cuda":
        chunk_rays = (size // 4) ** 2
    torch.manual_seed(seed)
    load_start = os.getloadavg()[0]
    cfg = bench_config(preset, size)
    model = NOFAAvatar(cfg).to(dev).eval()
    image = (
        torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    ).to(dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    t0 = time.perf_counter()
    with (
        torch.no_grad(),
        torch.autocast(dev.type, enabled=False),
    ):  # the portrait is encoded in float32
        av = AnimatableAvatar.from_model(model, image, default_label()[None].to(dev))
    sync()
    encode_s = time.perf_counter() - t0
    del model
    res: dict = {
        "preset": preset,
        "size": size,
        "raw": size // 4,
        "device": device,
        "batch": batch,
        "frames": frames,  # measured (after the warm-up): the repeats behind frames/s
        "chunk_rays": chunk_rays or cfg["render"]["chunk_rays"],
        "samples": samples or cfg["render"]["coarse_samples"],
        "encode_s": encode_s,
    }
    if samples:
        res["samples"] = samples
    exp = builtin_expressions(max(warmup, 1) + frames, av.exp_dim)
    opts = AnimateOptions(
        camera="orbit", batch=batch, device=device, samples=samples, chunk_rays=chunk_rays
    )
    anim = animate(av, exp, opts)
    it = iter(anim)
    per_frame_mem = []
    if dev.type == "cpu":
        # The allocator keeps freed memory, so RSS above the level before a frame is only
        # seen on the first frames: measure working memory on the first warm-up batch.
        with _RssSampler() as s:
            n = _take(it, batch, max(warmup, 1))
        per_frame_mem.append((s.peak - s.base) / n)
        warmup -= n
    for _ in range(max(warmup, 0)):
        next(it)
    anim.timings.clear()
    t0 = time.perf_counter()
    done = 0
    bar = tqdm(
        total=frames, desc=f"animate-bench {preset} {size}px", unit="frame", disable=not progress
    )
    while done < frames:
        if dev.type == "cuda":
            torch.cuda.synchronize()
            base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            n = _take(it, batch, frames - done)
            torch.cuda.synchronize()
            per_frame_mem.append((torch.cuda.max_memory_allocated() - base) / 2**20 / n)
        else:
            n = _take(it, batch, frames - done)
        done += n
        bar.update(n)
    bar.close()
    wall = time.perf_counter() - t0
    t = anim.timings
    res.update(
        fps=frames / wall,
        ms_per_frame=1000 * wall / frames,
        ms_deformation=1000 * t.get("deformation", 0.0) / frames,
        ms_render=1000 * t.get("render", 0.0) / frames,
        ms_sr=1000 * t.get("sr", 0.0) / frames,
        mem_per_frame_mib=max(per_frame_mem),
        peak_rss_mib=peak_rss_mib(),
    )
    if dev.type == "cuda":
        res["gpu_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
    if long_frames:
        res.update(_long_drive(av, long_frames, batch, device, samples, progress, chunk_rays))
    from .. import ops

    res["loadavg"] = [round(load_start, 2), round(os.getloadavg()[0], 2)]
    res["backend"] = ops.get_backend()
    res["kernels"] = ops.kernels_available(dev.type, "decode_triplane")
    return res


def _take(it, batch: int, left: int) -> int:
    n = 0
    for _ in range(min(batch, left)):
        next(it)
        n += 1
    return n


def _long_drive(
    av: AnimatableAvatar,
    n: int,
    batch: int,
    device: str,
    samples: int | None,
    progress: bool,
    chunk_rays: int | None,
) -> dict:
    from ..pipelines.animate import write_video

    opts = AnimateOptions(
        camera="orbit", batch=batch, device=device, samples=samples, chunk_rays=chunk_rays
    )
    anim = animate(av, builtin_expressions(n, av.exp_dim), opts)
    marks: dict[int, float] = {}
    cuda = device.startswith("cuda")

    def mark(i: int) -> None:
        if i in (100, n) or i == min(100, n):
            marks[i] = peak_rss_mib()
            if cuda:
                marks[-i] = torch.cuda.max_memory_allocated() / 2**20

    try:
        import imageio_ffmpeg  # noqa: F401

        sink = "mp4"
    except ImportError:
        sink = "none (imageio-ffmpeg absent: frames discarded)"
    t0 = time.perf_counter()
    if sink == "mp4":
        with tempfile.TemporaryDirectory() as d:
            write_video(anim, Path(d) / "long.mp4", progress=progress, on_frame=mark)
    else:
        for i, _ in enumerate(anim, 1):
            mark(i)
    wall = time.perf_counter() - t0
    first = min(100, n)
    a, b = marks.get(first, float("nan")), marks.get(n, float("nan"))
    out = {
        "long_frames": n,
        "long_sink": sink,
        "long_fps": n / wall,
        "rss_at_100_mib": a,
        "rss_at_end_mib": b,
        "rss_growth_pct": 100 * (b - a) / a,
    }
    if cuda:
        out["gpu_at_100_mib"], out["gpu_at_end_mib"] = marks.get(-first), marks.get(-n)
    return out


def format_results(rows: list[dict], env: dict) -> str:
    """Markdown: the result header, environment, one table row per run, and the long-drive
    memory check."""
    lines = [
        header_from_environment(env, min((r["frames"] for r in rows), default=None)),
        "# Animation benchmark (`nofa animate-bench`)",
        "",
        f"- command: `{env.get('command', '')}`",
        f"- device: {env.get('device_name', '')} ({env.get('device', '')}), "
        f"{env.get('cpu_threads', '')} torch "
        f"threads, {env.get('cpu_cores', '')} logical CPUs",
        f"- torch {env.get('torch', '')}, nofa {env.get('nofa', '')} commit "
        f"{env.get('commit', '')}, "
        f"{env.get('date', '')}",
        "- random weights (speed does not depend on them); one portrait encoded once, then driven; "
        "frames/s counts deformation + render + SR + conversion to uint8 (not video encoding)",
        "",
        "| preset | output | raw | samples | device | precision | batch | chunk rays | frames/s | "
        "ms/frame | "
        "deformation ms | render ms | SR ms | memory/frame MiB | encode s | peak RSS MiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['preset']} | {r['size']}² | {r['raw']}² | {r['samples']}+{r['samples']} | "
            f"{r['device']} | "
            f"{r.get('precision', 'float32')} | {r['batch']} | "
            f"{r.get('chunk_rays', '')} | "
            f"{r['fps']:.2f} | {r['ms_per_frame']:.0f} | {r['ms_deformation']:.0f} | "
            f"{r['ms_render']:.0f} | "
            f"{r['ms_sr']:.0f} | {r['mem_per_frame_mib']:.1f} | {r['encode_s']:.1f} | "
            f"{r['peak_rss_mib']:.0f} |"
        )
    lines += [
        "",
        "System load (1-min load average at start / end of each run; the machine has "
        f"{env.get('cpu_cores', '?')} logical CPUs): "
        + ", ".join(
            f"{r['preset']} {r['loadavg'][0]:.1f} / {r['loadavg'][1]:.1f}"
            for r in rows
            if "loadavg" in r
        ),
    ]
    longs = [r for r in rows if r.get("long_frames")]
    if longs:
        lines += [
            "",
            "Long drive (flat memory: peak RSS after 100 frames vs at the end, target < 5%):",
            "",
            "| preset | frames | sink | frames/s | peak RSS @100 MiB | peak RSS @end MiB | growth "
            "|",
            "|---|---|---|---|---|---|---|",
        ]
        for r in longs:
            lines.append(
                f"| {r['preset']} | {r['long_frames']} | {r['long_sink']} | {r['long_fps']:.2f} | "
                f"{r['rss_at_100_mib']:.0f} | {r['rss_at_end_mib']:.0f} | "
                f"{r['rss_growth_pct']:+.2f}% |"
            )
            if r.get("gpu_at_100_mib") is not None:
                lines.append(
                    f"|  | GPU peak allocated |  |  | {r['gpu_at_100_mib']:.0f} | "
                    f"{r['gpu_at_end_mib']:.0f} | |"
                )
    return "\n".join(lines) + "\n"


def write_results(out_dir: str | os.PathLike, rows: list[dict], env: dict) -> tuple[Path, Path]:
    out = Path(out_dir)
    md = atomic_write_text(out / "animate_bench.md", format_results(rows, env))
    js = atomic_write_text(
        out / "animate_bench.json",
        json.dumps({"environment": env, "results": rows}, indent=2, default=str),
    )
    return md, js
