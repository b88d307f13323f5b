"""Right/wrong verdicts: a proportion with its Wilson interval, two systems paired on the same
items (Newcombe's interval of the difference, the exact McNemar test), and the smallest
difference such a comparison can detect."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from harness.numbers.checks import ALPHA, check_alpha, check_count


@dataclass(frozen=True)
class Accuracy:
    """A proportion with its Wilson interval; ``n == 0`` gives NaN accuracy and bounds."""

    n: int
    correct: int
    accuracy: float
    ci_low: float
    ci_high: float


def wilson(correct: int, n: int, alpha: float = ALPHA) -> Accuracy:
    """Accuracy ``correct / n`` with its Wilson score interval (Wilson 1927, JASA 22:209).

    Computed by statsmodels' ``proportion_confint(method="wilson")``. Newcombe (1998, Stat Med
    17:857) recommends it over the Wald interval: it never leaves [0, 1] and keeps its coverage
    near 0 and 1. ``n == 0`` gives NaN accuracy and bounds.
    """
    from statsmodels.stats.proportion import proportion_confint

    check_count("n", n)
    check_count("correct", correct)
    if correct > n:
        raise ValueError(f"correct must be <= n, got correct={correct}, n={n}")
    check_alpha(alpha)
    correct, n = int(correct), int(n)
    if n == 0:
        return Accuracy(0, 0, math.nan, math.nan, math.nan)
    low, high = proportion_confint(correct, n, alpha=alpha, method="wilson")
    # Wilson's bounds are exactly 0 at 0/n and 1 at n/n; floating point leaves +-1e-17 there
    low = 0.0 if correct == 0 else float(low)
    high = 1.0 if correct == n else float(high)
    return Accuracy(n, correct, correct / n, low, high)


@dataclass(frozen=True)
class Paired:
    """Two systems scored on the same items: ``variant`` against ``reference``.

    The table counts items by (reference right?, variant right?); ``delta`` is the variant's
    accuracy minus the reference's on these shared items, with its Newcombe method-10 interval,
    and ``mcnemar_p`` the two-sided exact McNemar p-value (all NaN without shared items).
    """

    n: int
    both_correct: int
    only_reference: int  # the reference right, the variant wrong: a loss
    only_variant: int  # the variant right, the reference wrong: a gain
    both_wrong: int
    accuracy: float
    reference_accuracy: float
    delta: float
    delta_ci_low: float
    delta_ci_high: float
    mcnemar_statistic: float
    mcnemar_p: float


def paired_difference_ci(
    both: int, only_ref: int, only_var: int, neither: int, alpha: float = ALPHA
) -> tuple[float, float]:
    """Interval for p_variant - p_reference on paired items: Newcombe's method 10.

    Newcombe RG (1998), "Improved confidence intervals for the difference between binomial
    proportions based on paired data", Statistics in Medicine 17(22):2635-2650, method 10 (the
    hybrid score interval); recommended as the "Newcombe square-and-add" interval by Fagerland
    MW, Lydersen S, Laake P (2014), "Recommended tests and confidence intervals for paired
    binomial proportions", Statistics in Medicine 33(16):2850-2875.

    In Newcombe's cells e (both right), f (first right only), g (second right only), h (both
    wrong), n = e + f + g + h, the difference is theta = (f - g) / n = p1 - p2 with
    p1 = (e + f) / n, p2 = (e + g) / n. Here the variant is the first system, so
    e = ``both``, f = ``only_var``, g = ``only_ref``, h = ``neither``. With (l1, u1), (l2, u2)
    the Wilson 1 - alpha limits of p1 and p2 and phi Newcombe's continuity-corrected phi
    coefficient of the 2x2 table,

        phi = C / sqrt((e + f)(g + h)(e + g)(f + h)),  C = max(eh - fg - n/2, 0) if eh > fg
                                                         else eh - fg,
        phi = 0 when that product of margins is 0,
        low  = theta - sqrt((p1 - l1)^2 - 2 phi (p1 - l1)(u2 - p2) + (u2 - p2)^2)
        high = theta + sqrt((u1 - p1)^2 - 2 phi (u1 - p1)(p2 - l2) + (p2 - l2)^2)

    clipped to [-1, 1]. The correlation term narrows the interval for systems that agree on
    most items; the n/2 correction keeps it from collapsing to zero width when there are no
    discordant pairs (5/0/0/5 gives +-0.1666, not [0, 0]). ``n == 0`` gives NaNs.
    """
    for name, value in (("both", both), ("only_ref", only_ref), ("only_var", only_var), ("neither", neither)):
        check_count(name, value)
    check_alpha(alpha)
    both, only_ref, only_var, neither = int(both), int(only_ref), int(only_var), int(neither)
    n = both + only_ref + only_var + neither
    if n == 0:
        return math.nan, math.nan
    e, f, g, h = both, only_var, only_ref, neither
    first, second = wilson(e + f, n, alpha), wilson(e + g, n, alpha)
    p1, l1, u1 = first.accuracy, first.ci_low, first.ci_high
    p2, l2, u2 = second.accuracy, second.ci_low, second.ci_high
    cross = e * h - f * g  # exact in integers, so the comparisons below are exact
    corrected = max(cross - n / 2, 0.0) if cross > 0 else float(cross)
    margins = (e + f) * (g + h) * (e + g) * (f + h)
    phi = corrected / math.sqrt(margins) if margins else 0.0
    theta = p1 - p2
    # |phi| <= 1 makes both radicands >= 0; max() only absorbs rounding
    low = theta - math.sqrt(max((p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2, 0.0))
    high = theta + math.sqrt(max((u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2, 0.0))
    return max(low, -1.0), min(high, 1.0)


def paired(variant: Mapping[str, bool], reference: Mapping[str, bool]) -> Paired:
    """Compare two systems' verdicts (item id -> right?) on the items both scored.

    The exact McNemar test (McNemar 1947; statsmodels ``mcnemar(exact=True)``) is the two-sided
    binomial test of the discordant pairs against 1/2; the interval is
    :func:`paired_difference_ci`. Items only one system scored are left out.
    """
    from statsmodels.stats.contingency_tables import mcnemar

    shared = variant.keys() & reference.keys()
    counts = Counter((bool(reference[i]), bool(variant[i])) for i in shared)
    both, only_ref = counts[True, True], counts[True, False]
    only_var, neither = counts[False, True], counts[False, False]
    n = len(shared)
    if n == 0:
        return Paired(0, 0, 0, 0, 0, *(math.nan,) * 7)
    # statsmodels' table: rows reference right/wrong, columns variant right/wrong
    test = mcnemar([[both, only_ref], [only_var, neither]], exact=True)
    low, high = paired_difference_ci(both, only_ref, only_var, neither)
    return Paired(
        n=n,
        both_correct=both,
        only_reference=only_ref,
        only_variant=only_var,
        both_wrong=neither,
        accuracy=(both + only_var) / n,
        reference_accuracy=(both + only_ref) / n,
        delta=(only_var - only_ref) / n,
        delta_ci_low=low,
        delta_ci_high=high,
        mcnemar_statistic=float(test.statistic),
        mcnemar_p=float(test.pvalue),
    )


def minimum_detectable_difference(n: int, discordant: int, alpha: float = ALPHA, power: float = 0.8) -> float:
    """The smallest accuracy difference (a fraction) that a paired comparison on ``n`` items,
    ``discordant`` of which the two systems disagree on, detects with probability ``power`` at
    two-sided level ``alpha``.

    Normal approximation to McNemar's test (Connor 1987, Biometrics 43:207): the difference d
    has variance about ``(p_d - d^2) / n`` with p_d the discordant fraction, so
    ``d_min = (z_{1-alpha/2} + z_{power}) sqrt(p_d / n)``; p_d is the observed one, at least
    1/n. Never below the exact test's own floor: with m discordant items all one way the exact
    McNemar p is ``2^(1-m)``, so at least ``m_min = ceil(1 - log2(alpha))`` items must move
    (6 at alpha 0.05), ``d >= m_min / n``. ``inf`` when n < m_min: no difference could be
    significant. NaN for n == 0.
    """
    from scipy.stats import norm

    check_count("n", n)
    check_count("discordant", discordant)
    check_alpha(alpha)
    if n == 0:
        return math.nan
    m_min = math.ceil(1 - math.log2(alpha))
    if n < m_min:
        return math.inf
    p_d = max(discordant, 1) / n
    approx = (float(norm.ppf(1 - alpha / 2)) + float(norm.ppf(power))) * math.sqrt(p_d / n)
    return min(max(approx, m_min / n), 1.0)
