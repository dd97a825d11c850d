"""Figures over several seeds and the rule a target is judged by (docs/architecture.md,
"How figures are made"): report mean ± sample standard deviation over the seeds, and count
a target met only when the pessimistic end, mean - 2·sd (mean + 2·sd for a ceiling),
clears it. With one seed the spread is unknown and no target counts as met.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

__all__ = ["SeedSummary", "summarise"]


@dataclasses.dataclass(frozen=True)
class SeedSummary:
    values: tuple[float, ...]
    mean: float
    sd: float  # sample standard deviation (n - 1); nan with one value
    target: float | None = None
    higher_is_better: bool = True

    @property
    def bound(self) -> float:
        """The pessimistic end the target is judged by: mean - 2 sd (or + 2 sd for a ceiling)."""
        return self.mean - 2 * self.sd if self.higher_is_better else self.mean + 2 * self.sd

    @property
    def met(self) -> bool | None:
        """True/False against the target by the mean - 2·sd rule; None without a target."""
        if self.target is None:
            return None
        if not math.isfinite(self.bound):
            return False
        return self.bound >= self.target if self.higher_is_better else self.bound <= self.target

    def text(self, digits: int = 2, signed: bool = False) -> str:
        """'mean ± sd' as a table cell, e.g. '+2.99 ± 0.31'."""
        f = f"{{:{'+' if signed else ''}.{digits}f}}"
        return f"{f.format(self.mean)} ± {self.sd:.{digits}f}"

    def verdict(self, digits: int = 2) -> str:
        """'**met**' / '**not met** (mean - 2 sd = x)' / '' without a target."""
        if self.target is None:
            return ""
        side = "-" if self.higher_is_better else "+"
        why = f"mean {side} 2 sd = {self.bound:+.{digits}f}"
        return f"**met** ({why})" if self.met else f"**not met** ({why})"


def summarise(
    values: Sequence[float], target: float | None = None, higher_is_better: bool = True
) -> SeedSummary:
    """Mean and sample standard deviation of one figure over seeds [n >= 1], judged against
    `target` by the mean - 2·sd rule (mean + 2·sd <= target when lower is better)."""
    vals = tuple(float(v) for v in values)
    if not vals:
        raise ValueError("values must hold at least one figure (one per seed)")
    if not all(math.isfinite(v) for v in vals):
        raise ValueError(f"values must be finite, got {vals}")
    n = len(vals)
    mean = sum(vals) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in vals) / (n - 1)) if n > 1 else math.nan
    return SeedSummary(vals, mean, sd, target, higher_is_better)
