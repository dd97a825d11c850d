"""Derived numbers (speed-up, memory ratio, bandwidth) and the files: Markdown, CSV, PNG.

Speed-up of a backend = median time of the pure-PyTorch reference ("torch") / its median
time, for the same case, size and mode. Memory ratio = the reference's peak memory / the
backend's: both read "higher is better". The Markdown and CSV files start with the result
header of `nofa.bench.provenance` (command, commit, machine, date, fewest repeats).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from .bandwidth import achieved_gbps
from .cases import all_cases
from .provenance import header_from_environment, strip_header
from .registry import MODES

BACKEND_ORDER = ("torch", "kernels", "compile")
SUITE_TITLES = {
    "headline": "Headline",
    "points": "Scaling with the number of points",
    "resolution": "Scaling with the plane resolution",
}
CSV_FIELDS = [
    "suite",
    "case",
    "problem",
    "size",
    "mode",
    "backend",
    "status",
    "median_ms",
    "min_ms",
    "max_ms",
    "repeats",
    "speedup_vs_torch",
    "peak_mib",
    "memory_ratio_torch_over_this",
    "first_call_s",
    "achieved_gbps",
    "params",
    "reason",
]


def _key(row: dict) -> tuple:
    return row["suite"], row["case"], json.dumps(row["params"], sort_keys=True), row["mode"]


def finalize(rows: list[dict]) -> list[dict]:
    """Add peak_mib, speedup_vs_torch, memory_ratio_torch_over_this, achieved_gbps, problem."""
    ref = {_key(r): r for r in rows if r["backend"] == "torch" and r.get("status") == "ok"}
    # Rows that never ran (timed out, unavailable) borrow the problem text and size of a
    # row with the same case and parameters that did.
    known = {_key(r)[:3]: (r["shape"], r.get("size")) for r in rows if r.get("shape")}
    for r in rows:
        shape, size = known.get(_key(r)[:3], (json.dumps(r["params"], sort_keys=True), None))
        r["problem"] = r.get("shape") or shape
        r["size"] = r.get("size") or size
        ok = r.get("status") == "ok"
        peak = r.get("peak_bytes")
        r["peak_mib"] = peak / 2**20 if ok and peak is not None else None
        base = ref.get(_key(r))
        r["speedup_vs_torch"] = base["median_ms"] / r["median_ms"] if ok and base else None
        r["memory_ratio_torch_over_this"] = (
            base["peak_bytes"] / peak
            if ok and base and peak and base.get("peak_bytes") is not None
            else None
        )
        r["achieved_gbps"] = achieved_gbps(r)
    order = {b: i for i, b in enumerate(BACKEND_ORDER)}
    suites = list(SUITE_TITLES)
    cases = [c.name for c in all_cases()]
    rows.sort(
        key=lambda r: (
            suites.index(r["suite"]) if r["suite"] in suites else 99,
            cases.index(r["case"]) if r["case"] in cases else 99,
            r["size"] or 0,
            r.get("index", 0),
            json.dumps(r["params"], sort_keys=True),
            MODES.index(r["mode"]),
            order.get(r["backend"], 9),
        )
    )
    return rows


def _fmt(x, digits: int = 3) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float):
        return f"{x:.{digits}g}" if abs(x) < 1000 else f"{x:,.0f}"
    return str(x)


def fewest_repeats(rows: list[dict]) -> int | None:
    """The fewest timed repeats behind any measured row (None: nothing was measured)."""
    reps = [int(r["repeats"]) for r in rows if r.get("status") == "ok" and r.get("repeats")]
    return min(reps) if reps else None


def write_csv(path: Path, rows: list[dict], header: str = "") -> None:
    """One line per row; `header` (`#` lines) goes first, with the csv module's CRLF line ends."""
    with open(path, "w", newline="") as f:
        f.write(header.replace("\n", "\r\n"))
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow(
                {
                    **{k: ("" if r.get(k) is None else r.get(k)) for k in CSV_FIELDS},
                    "params": json.dumps(r["params"], sort_keys=True),
                }
            )


def read_csv(path: str | Path) -> list[dict[str, str]]:
    """The rows of a results CSV written by `write_csv` (its `#` header skipped)."""
    with open(path, newline="") as f:
        return list(csv.DictReader(io.StringIO(strip_header(f.read()))))


def _wide(rows: list[dict], backends: tuple[str, ...]) -> list[list[str]]:
    """One line per (case, problem, mode) with each backend's time, speed-up, memory."""
    groups: dict[tuple, dict[str, dict]] = {}
    for r in rows:
        groups.setdefault((r["case"], r["problem"], r["mode"]), {})[r["backend"]] = r
    lines = []
    for (case, problem, mode), by in groups.items():
        cells = [case, problem, mode]
        cells += [_fmt(by.get(b, {}).get("median_ms")) for b in backends]
        cells += [
            _fmt(by.get(b, {}).get("speedup_vs_torch"), 2)
            + ("x" if by.get(b, {}).get("speedup_vs_torch") else "")
            for b in backends
            if b != "torch"
        ]
        cells += [_fmt(by.get(b, {}).get("peak_mib")) for b in backends]
        cells += [
            _fmt(by.get(b, {}).get("memory_ratio_torch_over_this"), 2)
            for b in backends
            if b != "torch"
        ]
        lines.append(cells)
    return lines


def _table(header: list[str], lines: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(line) + " |" for line in lines]
    return "\n".join(out)


def _header(backends: tuple[str, ...]) -> list[str]:
    others = [b for b in backends if b != "torch"]
    return (
        ["case", "problem", "mode"]
        + [f"{b} ms" for b in backends]
        + [f"{b} speed-up" for b in others]
        + [f"{b} peak MiB" for b in backends]
        + [f"memory torch/{b}" for b in others]
    )


def markdown(
    rows: list[dict], env: dict, copy: dict | None, figures: list[str], memory_method: str
) -> str:
    k = env.get("kernels", {})
    lines = [
        header_from_environment(env, fewest_repeats(rows)),
        f"# nofa benchmark: {env['device']} ({env['device_name']})",
        "",
        f"- command: `{env['command']}`",
        f"- device: {env['device']} — {env['device_name']}"
        + (
            f" ({env.get('gpu_capability')}, {env.get('gpu_memory_gib')} GiB)"
            if env["device"] == "cuda"
            else ""
        ),
        f"- CPU: {env['cpu_model']}, {env['cpu_cores']} cores, torch threads {env['cpu_threads']}",
        f"- torch {env['torch']} (CUDA {env['torch_cuda']}), python {env['python']}, nofa "
        f"{env['nofa']} "
        f"at commit {env['commit']}; kernels compiled: {k.get('compiled')}, CUDA build: "
        f"{k.get('cuda')}",
        f"- date: {env['date']}",
        f"- time: median over repeats (at least {fewest_repeats(rows) or 'n/a'}) after warm-up"
        + (" (CUDA events, synchronised)" if env["device"] == "cuda" else " (wall clock)")
        + f"; memory: peak growth of one call ({memory_method})",
        "- speed-up = torch ms / backend ms; memory torch/x = reference peak / backend peak "
        "(higher is better)",
    ]
    if copy:
        lines.append(
            f"- device copy bandwidth (same run): {copy['gbps']:.1f} GB/s "
            f"({copy['bytes'] / 2**20:.0f} MiB buffer)"
        )
    lines.append("")
    for suite, title in SUITE_TITLES.items():
        part = [r for r in rows if r["suite"] == suite]
        if not part:
            continue
        backends = tuple(b for b in BACKEND_ORDER if any(r["backend"] == b for r in part))
        lines += [f"## {title}", "", _table(_header(backends), _wide(part, backends)), ""]
    bw = [
        r
        for r in rows
        if r["backend"] == "kernels"
        and r.get("achieved_gbps")
        and r["mode"] == "forward"
        and r["case"] == "sample_triplane"
    ]
    if bw and copy:
        lines += [
            "## sample_triplane forward: achieved vs copy bandwidth",
            "",
            _table(
                ["suite", "problem", "achieved GB/s", "copy GB/s", "fraction of copy"],
                [
                    [
                        r["suite"],
                        r["problem"],
                        _fmt(r["achieved_gbps"]),
                        _fmt(copy["gbps"]),
                        f"{r['achieved_gbps'] / copy['gbps']:.0%}",
                    ]
                    for r in bw
                ],
            ),
            "",
        ]
    reasons = sorted(
        {(r["case"], r["backend"], r["reason"]) for r in rows if r.get("status") != "ok"}
    )
    if reasons:
        lines += ["## Not measured", ""] + [f"- {c} / {b}: {why}" for c, b, why in reasons] + [""]
    lines += [f"![{Path(f).stem}]({Path(f).name})" for f in figures] + [""]
    return "\n".join(lines)


def write_all(out: Path, result: dict, env: dict, stem: str | None = None) -> dict[str, Path]:
    """Write <stem>_results.md/.csv, <stem>_scaling.png (+ <stem>_bandwidth.png on CUDA);
    stem defaults to the device name. Returns the paths."""
    from .plots import plot_bandwidth, plot_scaling

    out.mkdir(parents=True, exist_ok=True)
    rows = finalize(result["rows"])
    dev = env["device"]
    stem = stem or dev
    paths = {"csv": out / f"{stem}_results.csv", "md": out / f"{stem}_results.md"}
    figures = []
    png = out / f"{stem}_scaling.png"
    if plot_scaling(png, rows, env):
        paths["png"] = png
        figures.append(str(png))
    if dev == "cuda" and result.get("copy_bandwidth"):
        bw = out / f"{stem}_bandwidth.png"
        if plot_bandwidth(bw, rows, result["copy_bandwidth"], env):
            paths["bandwidth_png"] = bw
            figures.append(str(bw))
    write_csv(paths["csv"], rows, header_from_environment(env, fewest_repeats(rows), "csv"))
    paths["md"].write_text(
        markdown(rows, env, result.get("copy_bandwidth"), figures, result.get("memory_method", ""))
    )
    return paths
