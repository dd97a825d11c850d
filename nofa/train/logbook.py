"""Run logs (rank 0 only): scalars to TensorBoard event files and to a CSV, image grids as
PNG files (input / target / prediction / depth)."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import torch
import torch.nn.functional as F

__all__ = ["RunLog", "image_grid"]


class RunLog:
    """logs/scalars.csv (one row per logged step; columns grow as new scalars appear, the file
    is rewritten then) and logs/tb/ event files; images/ for grids."""

    def __init__(self, out_dir: str | os.PathLike, tensorboard: bool = True) -> None:
        self.dir = Path(out_dir)
        (self.dir / "logs").mkdir(parents=True, exist_ok=True)
        (self.dir / "images").mkdir(parents=True, exist_ok=True)
        self.csv_path = self.dir / "logs" / "scalars.csv"
        self.rows: list[dict] = []
        if self.csv_path.is_file():  # a resumed run appends to its history
            with open(self.csv_path) as f:
                self.rows = list(csv.DictReader(f))
        self.writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.dir / "logs" / "tb"))

    def scalars(self, step: int, values: dict[str, float]) -> None:
        if self.writer is not None:
            for k, v in values.items():
                self.writer.add_scalar(k, v, step)
        # a resumed run may repeat steps after its last checkpoint: the newer row wins
        self.rows = [r for r in self.rows if int(r["step"]) != step or not set(values) & set(r)] + [
            {"step": step, **values}
        ]
        self._write_csv()

    def _write_csv(self) -> None:
        cols = ["step"] + sorted({k for r in self.rows for k in r} - {"step"})
        tmp = self.csv_path.with_suffix(".csv.tmp")
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, cols)
            w.writeheader()
            w.writerows(self.rows)
        os.replace(tmp, self.csv_path)

    def image(self, name: str, grid: torch.Tensor, step: int) -> Path:
        """grid [3, H, W] in [0, 1] -> images/{name}-{step}.png and images/{name}-latest.png."""
        from torchvision.utils import save_image

        if self.writer is not None:
            self.writer.add_image(name, grid, step)
        path = self.dir / "images" / f"{name}-{step:08d}.png"
        for p in (path, self.dir / "images" / f"{name}-latest.png"):
            tmp = p.with_name(p.name + ".tmp.png")
            save_image(grid, tmp)
            os.replace(tmp, p)
        return path

    def skipped(self, step: int, items: list[str]) -> Path:
        """Record data items a source skipped (unreadable or bad) at `step`: a warning on stderr
        and lines `step<TAB>item` in logs/skipped.txt (rewritten atomically, kept across
        resumes)."""
        import sys

        path = self.dir / "logs" / "skipped.txt"
        old = path.read_text() if path.is_file() else ""
        lines = "".join(f"{step}\t{item}\n" for item in items)
        tmp = path.with_suffix(".txt.tmp")
        tmp.write_text(old + lines)
        os.replace(tmp, path)
        for item in items:
            print(f"warning: step {step}: skipped a bad data item: {item}", file=sys.stderr)
        return path

    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def image_grid(columns: list[torch.Tensor], max_rows: int = 4) -> torch.Tensor:
    """Columns of images [N, C, h, w] (RGB in [-1, 1], or depth with 1 channel, normalised
    per image) side by side, one row per sample, resized to the first column's size ->
    [3, H, W] in [0, 1]."""
    size = columns[0].shape[-2:]
    cols = []
    for c in columns:
        c = c[:max_rows].detach().float().cpu()
        if c.shape[1] == 1:
            lo = c.flatten(1).min(1)[0].view(-1, 1, 1, 1)
            hi = c.flatten(1).max(1)[0].view(-1, 1, 1, 1)
            c = ((c - lo) / (hi - lo).clamp_min(1e-6)).expand(-1, 3, -1, -1)
        else:
            c = (c * 0.5 + 0.5).clamp(0, 1)
        cols.append(F.interpolate(c, size=size, mode="nearest") if c.shape[-2:] != size else c)
    rows = torch.cat(
        [torch.cat(list(col), 1) for col in cols], 2
    )  # stack samples vertically, columns side by side
    return rows
