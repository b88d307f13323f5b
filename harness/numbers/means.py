"""Continuous scores on the same items: the paired mean difference (t, or bootstrap with a
sign-flip permutation test) and the mean of a size (a KL) with its bootstrap interval."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from harness.numbers.bootstrap import bca_interval, mean_difference, sign_flip_p
from harness.numbers.checks import ALPHA, check_alpha

PAIRED_MEAN_METHODS = ("t", "bootstrap")


@dataclass(frozen=True)
class PairedMean:
    """Two systems' continuous scores on the same items: mean of ``variant - reference``.

    ``ci_low``/``ci_high`` bound ``delta`` (= ``mean_variant - mean_reference``); ``p_value``
    is two-sided against a zero mean difference; ``method`` is "t" or "bootstrap".
    """

    n: int
    mean_variant: float
    mean_reference: float
    delta: float
    ci_low: float
    ci_high: float
    p_value: float
    method: str


def _shared_scores(variant: Mapping[str, float], reference: Mapping[str, float]):
    """The two score vectors on the shared keys, in sorted key order (the bootstrap's draws
    depend on the order, and set order varies with the hash seed)."""
    import numpy as np

    keys = sorted(variant.keys() & reference.keys())
    values: dict[str, list[float]] = {"variant": [], "reference": []}
    for side, scores in (("variant", variant), ("reference", reference)):
        for key in keys:
            try:
                value = float(scores[key])
            except (TypeError, ValueError):
                raise ValueError(f"{side} score of item {key!r} is not a number: {scores[key]!r}") from None
            if not math.isfinite(value):
                raise ValueError(f"{side} score of item {key!r} is not finite: {value!r}")
            values[side].append(value)
    return np.asarray(values["variant"], dtype=float), np.asarray(values["reference"], dtype=float)


def paired_mean_difference(
    variant: Mapping[str, float],
    reference: Mapping[str, float],
    alpha: float = ALPHA,
    method: str = "t",
    *,
    n_resamples: int = 9999,
    seed: int = 0,
) -> PairedMean:
    """Mean of the per-item differences ``variant[k] - reference[k]`` on the shared keys.

    ``method="t"``: the paired t interval ``d_bar +- t_{1-alpha/2, n-1} s_d / sqrt(n)`` and the
    two-sided paired t-test (Student 1908), computed here from the t distribution; it equals
    ``scipy.stats.ttest_rel(variant, reference)`` and its ``confidence_interval()``.

    ``method="bootstrap"``: the BCa interval (Efron 1987, JASA 82:171) of a paired bootstrap of
    the items, ``scipy.stats.bootstrap(paired=True, method="BCa")`` with ``n_resamples`` draws
    from ``numpy.random.default_rng(seed)``; the p-value is a sign-flip permutation test of the
    mean difference (Fisher 1935), ``scipy.stats.permutation_test(permutation_type="samples")``
    with its own generator from the same seed: exact when 2**n <= ``n_resamples``, else Monte
    Carlo with ``(hits + 1) / (n_resamples + 1)``. Neither assumes normal differences.

    Edge cases, for both methods: no shared keys gives NaN everywhere; one shared key gives the
    means and delta with a NaN interval and p-value; all differences zero gives delta 0, the
    interval [0, 0] and p = 1.0 (no evidence of any difference; the t statistic would be 0/0);
    all differences equal to some d != 0 gives the interval [d, d] (every resample has mean d),
    with p = 0.0 for "t" (an infinite t statistic, as scipy reports) and the exact sign-flip
    p-value for "bootstrap".

    Non-finite scores on a shared key raise ValueError naming the key: a NaN score is a failed
    measurement, and dropping it silently would bias the mean.
    """
    import numpy as np

    check_alpha(alpha)
    if method not in PAIRED_MEAN_METHODS:
        raise ValueError(f"method must be one of {PAIRED_MEAN_METHODS}, got {method!r}")
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int) or n_resamples < 1:
        raise ValueError(f"n_resamples must be a whole number >= 1, got {n_resamples!r}")
    v, r = _shared_scores(variant, reference)
    n = len(v)
    if n == 0:
        return PairedMean(0, *(math.nan,) * 6, method)
    diff = v - r
    mean_v, mean_r, delta = float(v.mean()), float(r.mean()), float(diff.mean())
    if n < 2:
        return PairedMean(n, mean_v, mean_r, delta, math.nan, math.nan, math.nan, method)
    if np.all(diff == 0):
        return PairedMean(n, mean_v, mean_r, 0.0, 0.0, 0.0, 1.0, method)
    if method == "t":
        low, high, p = _t_interval(diff, alpha)
    else:
        low, high = bca_interval((v, r), mean_difference, diff, alpha, n_resamples, seed, paired=True)
        p = sign_flip_p(v, r, n_resamples, seed)
    return PairedMean(n, mean_v, mean_r, delta, low, high, p, method)


def _t_interval(diff, alpha: float) -> tuple[float, float, float]:
    from scipy.stats import t as student_t

    n = len(diff)
    mean = float(diff.mean())
    se = float(diff.std(ddof=1)) / math.sqrt(n)
    if se == 0.0:  # constant non-zero differences: t is infinite
        return mean, mean, 0.0
    half = float(student_t.ppf(1 - alpha / 2, n - 1)) * se
    p = float(2 * student_t.sf(abs(mean / se), n - 1))
    return mean - half, mean + half, min(p, 1.0)


def bootstrap_mean(
    values: Mapping[str, float], alpha: float = ALPHA, *, n_resamples: int = 9999, seed: int = 0
) -> PairedMean:
    """The mean of per-item values (a KL: a size, never below 0) with its BCa bootstrap interval
    (``scipy.stats.bootstrap``, ``numpy.random.default_rng(seed)``, items in sorted key order)
    and no p-value: a size is reported, not tested against 0. Returned as a :class:`PairedMean`
    whose ``delta`` is the mean and whose ``mean_reference`` and ``p_value`` are NaN.

    Edge cases: no values gives NaN everywhere; one value gives a NaN interval; equal values
    give the interval [v, v] (every resample has mean v).
    """
    import numpy as np

    check_alpha(alpha)
    keys = sorted(values)
    x = np.asarray([float(values[k]) for k in keys], dtype=float)
    if not np.all(np.isfinite(x)):
        bad = next(k for k, v in zip(keys, x) if not math.isfinite(v))
        raise ValueError(f"value of item {bad!r} is not finite: {values[bad]!r}")
    n = len(x)
    nan = math.nan
    if n == 0:
        return PairedMean(0, nan, nan, nan, nan, nan, nan, "bootstrap")
    mean = float(x.mean())
    if n < 2:
        return PairedMean(n, mean, nan, mean, nan, nan, nan, "bootstrap")
    low, high = bca_interval((x,), np.mean, x, alpha, n_resamples, seed, paired=False)
    return PairedMean(n, mean, nan, mean, low, high, nan, "bootstrap")
