"""The figures: time and speed-up vs problem size (one line per backend), and, on CUDA,
the sampling kernel's achieved bandwidth against the device's copy bandwidth."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter  # noqa: E402

from .cases import get_case  # noqa: E402
from .registry import MODES  # noqa: E402

COLORS = {"torch": "tab:blue", "kernels": "tab:red", "compile": "tab:green"}
STYLES = {MODES[0]: "-", MODES[1]: "--"}


def _x(row: dict) -> float | None:
    label, key = get_case(row["case"]).sweep_axes.get(row["suite"], ("size", None))
    return row["params"].get(key) if key else row.get("size")


def _panels(rows: list[dict]) -> list[tuple[str, str, list[dict]]]:
    keys = []
    for r in rows:
        if (
            r["suite"] != "headline"
            and r.get("status") == "ok"
            and (r["case"], r["suite"]) not in keys
        ):
            keys.append((r["case"], r["suite"]))
    return [
        (c, s, [r for r in rows if r["case"] == c and r["suite"] == s and r.get("status") == "ok"])
        for c, s in keys
    ]


def _title(env: dict) -> str:
    return f"nofa {env['device']}: {env['device_name']} · torch {env['torch']} · {env['date']}"


def _save(fig, axes, path: Path, env: dict) -> None:
    """Shared finish: log2 size axes, grids, legends, the environment as the title."""
    for ax in axes:
        ax.set_xscale("log", base=2)
        ax.grid(True, which="both", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.suptitle(_title(env), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_scaling(path: Path, rows: list[dict], env: dict) -> bool:
    """Time (log-log) and speed-up vs size for every sweep. False when nothing to plot."""
    panels = _panels(rows)
    if not panels:
        return False
    fig, axes = plt.subplots(len(panels), 2, figsize=(11, 3.4 * len(panels)), squeeze=False)
    for (case, suite, part), (ax_t, ax_s) in zip(panels, axes):
        xlabel = get_case(case).sweep_axes.get(suite, ("size", None))[0]
        for backend in COLORS:
            for mode in MODES:
                pts = sorted(
                    (_x(r), r) for r in part if r["backend"] == backend and r["mode"] == mode
                )
                if not pts:
                    continue
                xs = [x for x, _ in pts]
                label = f"{backend} {mode}"
                ax_t.plot(
                    xs,
                    [r["median_ms"] for _, r in pts],
                    STYLES[mode],
                    color=COLORS[backend],
                    marker="o",
                    ms=3,
                    label=label,
                )
                if backend != "torch":
                    sp = [(x, r["speedup_vs_torch"]) for x, r in pts if r.get("speedup_vs_torch")]
                    if sp:
                        ax_s.plot(
                            *zip(*sp),
                            STYLES[mode],
                            color=COLORS[backend],
                            marker="o",
                            ms=3,
                            label=label,
                        )
        ax_t.set(
            yscale="log",
            xlabel=xlabel,
            ylabel="median time (ms)",
            title=f"{case}: time vs {xlabel.split(' (')[0]}",
        )
        ax_s.axhline(1.0, color="gray", lw=0.8)
        ax_s.set(
            yscale="log",
            xlabel=xlabel,
            ylabel="speed-up vs torch (x, log)",
            title=f"{case}: speed-up vs {xlabel.split(' (')[0]}",
        )
        ax_s.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 1.5, 2.0, 3.0, 5.0, 7.0)))
        ax_s.yaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax_s.yaxis.set_minor_formatter(NullFormatter())
        if not any(r["backend"] != "torch" for r in part):
            ax_s.text(
                0.5, 0.5, "no kernel measured in this build", ha="center", transform=ax_s.transAxes
            )
    _save(fig, [ax for pair in axes for ax in pair], path, env)
    return True


def plot_bandwidth(path: Path, rows: list[dict], copy: dict, env: dict) -> bool:
    """sample_triplane kernel forward: achieved GB/s vs points, with the copy bandwidth line."""
    pts = sorted(
        (r["size"], r["achieved_gbps"])
        for r in rows
        if r["case"] == "sample_triplane"
        and r["suite"] == "points"
        and r["backend"] == "kernels"
        and r["mode"] == MODES[0]
        and r.get("achieved_gbps")
    )
    if not pts:
        return False
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(
        *zip(*pts),
        "-o",
        color=COLORS["kernels"],
        ms=3,
        label="sample_triplane kernel (compulsory bytes)",
    )
    ax.axhline(copy["gbps"], color="black", ls="--", label=f"device copy {copy['gbps']:.0f} GB/s")
    ax.set(
        xlabel="points",
        ylabel="GB/s",
        ylim=(0, max(copy["gbps"], max(g for _, g in pts)) * 1.15),
        title="sample_triplane forward: achieved vs copy bandwidth",
    )
    _save(fig, [ax], path, env)
    return True
