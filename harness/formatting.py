"""How numbers are written in reports, terminal tables and gate messages."""

from __future__ import annotations

import math


def pct(x: float | None, digits: int = 1) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{100 * x:.{digits}f}%"


def points(x: float | None) -> str:
    """A difference of proportions in percentage points, signed."""
    return "n/a" if x is None or not math.isfinite(x) else f"{100 * x:+.1f}"


def interval(low: float | None, high: float | None, fmt=pct) -> str:
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return "n/a"
    return f"[{fmt(low)}, {fmt(high)}]"


def p_value(p: float | None) -> str:
    if p is None or not math.isfinite(p):
        return "n/a"
    return f"{p:.2g}" if p >= 0.001 else "<0.001"
