"""Trade-offs between a gain and a cost: the Pareto front, and the rule that names the best one
(the largest significant gain whose cost is non-inferior at a margin)."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence


def _as_points(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    out = []
    for i, point in enumerate(points):
        try:
            x, y = point
            out.append((float(x), float(y)))
        except (TypeError, ValueError):
            raise ValueError(f"points[{i}] must be a pair of numbers (gain, change), got {point!r}") from None
    return out


def _dominates(q: tuple[float, float], p: tuple[float, float]) -> bool:
    return q[0] >= p[0] and q[1] >= p[1] and (q[0] > p[0] or q[1] > p[1])


def pareto_front(points: Sequence[tuple[float, float]]) -> list[bool]:
    """Which points are Pareto-optimal when both coordinates are better larger.

    ``points`` are (x, y) = (gain, change): e.g. x = Spider accuracy change and y = MMLU
    accuracy change against the baseline, a loss being negative. A point is on the front when no
    other point is >= on both and > on at least one. Identical points do not dominate each
    other, so ties are all on the front. A point with a NaN coordinate is never on the front and
    never dominates another (a variant without a score is neither a winner nor a benchmark).
    """
    pts = _as_points(points)
    valid = [not (math.isnan(x) or math.isnan(y)) for x, y in pts]
    return [
        valid[i] and not any(valid[j] and _dominates(pts[j], p) for j in range(len(pts)) if j != i)
        for i, p in enumerate(pts)
    ]


def best_tradeoff(
    gains: Sequence[float],
    gain_significant: Sequence[bool],
    cost_ci_lows: Sequence[float],
    margin: float,
) -> int | None:
    """Index of the point with the largest gain among those that qualify; None when none does.

    A point qualifies when its gain is positive and significant (``gain_significant``: after the
    run's multiple-comparison correction) and its cost is non-inferior at ``margin``: the lower
    end of the cost's interval (the change on the generalization task, a loss negative) lies
    above ``-margin`` (Piaggio et al. 2012, JAMA 308:2594, the CONSORT non-inferiority rule).
    A point estimate never qualifies a point whose interval reaches past the margin. Equal best
    gains give the first index.
    """
    if isinstance(margin, bool) or not isinstance(margin, numbers.Real) or not margin >= 0:
        raise ValueError(f"margin must be a number >= 0, got {margin!r}")
    if not len(gains) == len(gain_significant) == len(cost_ci_lows):
        raise ValueError(
            f"gains, gain_significant and cost_ci_lows differ in length: "
            f"{len(gains)}, {len(gain_significant)}, {len(cost_ci_lows)}"
        )
    best = None
    for i, (gain, significant, low) in enumerate(zip(gains, gain_significant, cost_ci_lows)):
        if not qualifies(float(gain), significant, float(low), margin):
            continue
        if best is None or float(gain) > float(gains[best]):
            best = i
    return best


def non_inferior(cost_ci_low: float, margin: float) -> bool:
    """The cost's interval stays above ``-margin`` (a NaN bound is not shown to)."""
    return bool(cost_ci_low > -margin)


def qualifies(gain: float, gain_significant: bool, cost_ci_low: float, margin: float) -> bool:
    """The trade-off rule: a positive gain, significant after the run's correction, at a
    non-inferior cost (NaN fails every comparison)."""
    return bool(gain_significant and gain > 0 and non_inferior(cost_ci_low, margin))
