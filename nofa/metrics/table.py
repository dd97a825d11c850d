"""The paper's Table 1 layout: one row per method, self-reenactment columns FID, LPIPS,
PSNR, SSIM, CSIM, AED, APD, then cross-reenactment columns FID, CSIM, AED, APD
(arrows: lower / higher is better). Markdown + CSV; a CSV row of the same method is merged
so a self- and a cross-reenactment run fill one row."""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path

__all__ = ["CROSS_COLUMNS", "SELF_COLUMNS", "format_table", "read_table_csv", "write_table"]

SELF_COLUMNS = ("FID", "LPIPS", "PSNR", "SSIM", "CSIM", "AED", "APD")
CROSS_COLUMNS = ("FID", "CSIM", "AED", "APD")
_ARROW = {"FID": "↓", "LPIPS": "↓", "PSNR": "↑", "SSIM": "↑", "CSIM": "↑", "AED": "↓", "APD": "↓"}
_DIGITS = {"FID": 2, "PSNR": 2}


def _keys() -> list[str]:
    return [f"self_{c}" for c in SELF_COLUMNS] + [f"cross_{c}" for c in CROSS_COLUMNS]


def _fmt(col: str, v) -> str:
    if v is None or v == "" or (isinstance(v, float) and math.isnan(v)):
        return "–"
    v = float(v)
    if math.isinf(v):
        return "inf"
    return f"{v:.{_DIGITS.get(col, 3)}f}"


def format_table(rows: dict[str, dict[str, float | None]]) -> str:
    """rows: method -> {"self_FID": ..., "cross_CSIM": ...} -> Markdown (Table 1 layout)."""
    head1 = (
        "| Method | "
        + " | ".join(
            ["Self-reenactment"]
            + [""] * (len(SELF_COLUMNS) - 1)
            + ["Cross-reenactment"]
            + [""] * (len(CROSS_COLUMNS) - 1)
        )
        + " |"
    )
    head2 = "| | " + " | ".join(f"{c}{_ARROW[c]}" for c in SELF_COLUMNS + CROSS_COLUMNS) + " |"
    sep = "|" + "---|" * (1 + len(SELF_COLUMNS) + len(CROSS_COLUMNS))
    lines = [head1, sep, head2]
    for name, vals in rows.items():
        cells = [_fmt(k.split("_", 1)[1], vals.get(k)) for k in _keys()]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def read_table_csv(path: str | os.PathLike) -> dict[str, dict[str, float | None]]:
    rows: dict[str, dict] = {}
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            rows[r["method"]] = {
                k: (float(v) if v not in ("", None) else None)
                for k, v in r.items()
                if k != "method"
            }
    return rows


def write_table(
    out_dir: str | os.PathLike,
    method: str,
    values: dict[str, float | None],
    extra: dict[str, float] | None = None,
    notes: list[str] | None = None,
) -> tuple[Path, Path]:
    """Merge `values` (keys self_* / cross_*) into out_dir/table.csv under `method` and
    rewrite table.csv + table.md atomically. Returns (md path, csv path)."""
    from ..io.atomic import atomic_write_text

    out = Path(out_dir)
    csv_path, md_path = out / "table.csv", out / "table.md"
    rows = read_table_csv(csv_path) if csv_path.is_file() else {}
    row = rows.setdefault(method, {})
    row.update({k: v for k, v in values.items() if v is not None})
    row.update(extra or {})
    cols = _keys() + sorted({k for r in rows.values() for k in r} - set(_keys()))
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["method"] + cols)
    for name, r in rows.items():
        w.writerow([name] + ["" if r.get(c) is None else repr(float(r[c])) for c in cols])
    atomic_write_text(csv_path, buf.getvalue())
    md = format_table({n: r for n, r in rows.items()})
    if notes:
        md += "\n" + "\n".join(f"- {n}" for n in notes) + "\n"
    atomic_write_text(md_path, md)
    return md_path, csv_path
