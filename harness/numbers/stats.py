"""The harness's statistics: pure functions of counts and scores, no I/O, no plotting.

- :func:`wilson`: a proportion with its Wilson score interval (Wilson 1927).
- :func:`paired_difference_ci` and :func:`paired`: two systems scored right/wrong on the same
  items; the accuracy difference with Newcombe's (1998) method-10 interval and the exact McNemar
  test.
- :func:`paired_mean_difference`: two systems' continuous scores on the same items (a paired t
  interval and test, or a seeded paired BCa bootstrap with a sign-flip permutation test).
- :func:`bootstrap_mean`: the mean of a non-negative size (a KL) with a bootstrap interval and
  no test (a KL is never below 0, so a test against 0 says nothing).
- :func:`categorical_kl`, :func:`renormalised_logprob` and :func:`choice_probability`: a
  question's answer distribution over its choices, and how far a variant's moved from the
  reference's.
- :func:`seeds_and_items_bootstrap`: a change measured with several training seeds on the same
  items: its seed mean, the seeds' spread and an interval that includes seed-to-seed variance.
- :func:`adjust_pvalues`: Holm's and Benjamini-Hochberg's corrections across a run's tests.
- :func:`minimum_detectable_difference`: the smallest accuracy difference the paired test could
  detect on n items.
- :func:`pareto_front` and :func:`best_tradeoff`: which variants are not beaten on both the
  gain (Spider) and the cost (generalisation, e.g. MMLU) at once.

scipy, numpy and statsmodels are imported inside the functions that need them, so importing
this module stays cheap for callers that only want the dataclasses.
"""

from __future__ import annotations

import math
import numbers
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

ALPHA = 0.05
CONFIDENCE = 0.95

# Largest number of resampled values held at once by the bootstrap and the permutation test
# (resamples x items): bounds memory on MMLU's 14,042 items without changing the result, since
# scipy draws the batches from the same generator stream in order.
_RESAMPLE_CELLS = 2_000_000


def _check_alpha(alpha: float) -> None:
    if isinstance(alpha, bool) or not (isinstance(alpha, numbers.Real) and 0.0 < alpha < 1.0):
        raise ValueError(f"alpha must be a number strictly between 0 and 1, got {alpha!r}")


def _check_count(name: str, value: int) -> None:
    # numbers.Integral admits numpy's integers too; bool is an int but never a count here
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"{name} must be a whole number >= 0, got {value!r}")


# -- proportions ------------------------------------------------------------------------------


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

    _check_count("n", n)
    _check_count("correct", correct)
    if correct > n:
        raise ValueError(f"correct must be <= n, got correct={correct}, n={n}")
    _check_alpha(alpha)
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
        _check_count(name, value)
    _check_alpha(alpha)
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


# -- continuous paired scores -----------------------------------------------------------------

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
    values = {"variant": [], "reference": []}
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

    _check_alpha(alpha)
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
        low, high, p = _bootstrap_interval(v, r, diff, alpha, n_resamples, seed)
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


def _mean_difference(x, y, axis=-1):
    import numpy as np

    return np.mean(x - y, axis=axis)


def _bootstrap_interval(v, r, diff, alpha: float, n_resamples: int, seed: int) -> tuple[float, float, float]:
    import numpy as np
    from scipy.stats import bootstrap, permutation_test

    batch = max(1, _RESAMPLE_CELLS // len(v))
    if np.all(diff == diff[0]):
        # every resample has mean diff[0]; BCa's acceleration would be 0/0 here
        low = high = float(diff[0])
    else:
        boot = bootstrap(
            (v, r),
            _mean_difference,
            n_resamples=n_resamples,
            batch=batch,
            vectorized=True,
            paired=True,
            confidence_level=1 - alpha,
            method="BCa",
            rng=np.random.default_rng(seed),
        )
        low, high = float(boot.confidence_interval.low), float(boot.confidence_interval.high)
    perm = permutation_test(
        (v, r),
        _mean_difference,
        permutation_type="samples",
        vectorized=True,
        n_resamples=n_resamples,
        batch=batch,
        alternative="two-sided",
        rng=np.random.default_rng(seed),
    )
    return low, high, min(float(perm.pvalue), 1.0)


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
    from scipy.stats import bootstrap

    _check_alpha(alpha)
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
    if np.all(x == x[0]):
        return PairedMean(n, mean, nan, mean, float(x[0]), float(x[0]), nan, "bootstrap")
    boot = bootstrap(
        (x,),
        np.mean,
        n_resamples=n_resamples,
        batch=max(1, _RESAMPLE_CELLS // n),
        vectorized=True,
        confidence_level=1 - alpha,
        method="BCa",
        rng=np.random.default_rng(seed),
    )
    low, high = float(boot.confidence_interval.low), float(boot.confidence_interval.high)
    return PairedMean(n, mean, nan, mean, low, high, nan, "bootstrap")


@dataclass(frozen=True)
class SeedsChange:
    """A change (variant minus reference, paired on items) measured for several training seeds.

    ``per_seed``: each seed's mean change; ``mean``: their mean (every seed has the same items);
    ``spread``: the seeds' standard deviation (ddof 1; NaN for one seed); ``ci_low``/``ci_high``:
    the percentile interval of a two-way bootstrap resampling seeds and items; ``p_value``: twice
    the smaller tail of that bootstrap distribution at 0 (a bootstrap test of no change).
    """

    seeds: int
    n: int
    per_seed: tuple[float, ...]
    mean: float
    spread: float
    ci_low: float
    ci_high: float
    p_value: float


def seeds_and_items_bootstrap(
    differences, alpha: float = ALPHA, *, n_resamples: int = 4000, seed: int = 0
) -> SeedsChange:
    """Seed mean, spread and interval of per-item changes ``differences[s][i]`` (seed s, item i;
    every seed on the same items, in the same order).

    A two-way (crossed) bootstrap, Owen's "pigeonhole" bootstrap (2007, Ann Appl Stat 1:386):
    each resample draws S seeds with replacement and, independently, n items with replacement,
    and takes the mean of the S x n drawn cells; both the seed-to-seed and the item-to-item
    variance enter the interval, which an item-only interval leaves out. Draws from
    ``numpy.random.default_rng(seed)``: for each resample, first the seed indices
    (``integers(0, S, S)``), then the item indices (``integers(0, n, n)``). Percentile interval
    at ``1 - alpha``. With one seed it is the item bootstrap alone.
    """
    import numpy as np

    _check_alpha(alpha)
    d = np.asarray(differences, dtype=float)
    if d.ndim != 2 or d.shape[0] == 0:
        raise ValueError(f"differences must be a seeds x items table, got shape {d.shape}")
    if not np.all(np.isfinite(d)):
        raise ValueError("differences holds NaN or inf")
    n_seeds, n = d.shape
    per_seed = tuple(float(x) for x in d.mean(axis=1)) if n else (math.nan,) * n_seeds
    if n == 0:
        return SeedsChange(n_seeds, 0, per_seed, *(math.nan,) * 5)
    mean = float(d.mean())
    spread = float(np.std(d.mean(axis=1), ddof=1)) if n_seeds > 1 else math.nan
    rng = np.random.default_rng(seed)
    stats = np.empty(n_resamples)
    for b in range(n_resamples):
        seeds_drawn = rng.integers(0, n_seeds, n_seeds)
        items_drawn = rng.integers(0, n, n)
        stats[b] = d[np.ix_(seeds_drawn, items_drawn)].mean()
    low, high = (float(x) for x in np.quantile(stats, [alpha / 2, 1 - alpha / 2]))
    if np.all(d == 0):
        p = 1.0
    else:
        p = min(1.0, 2 * min(float(np.mean(stats <= 0)), float(np.mean(stats >= 0))))
    return SeedsChange(n_seeds, n, per_seed, mean, spread, low, high, p)


# -- many tests at once -----------------------------------------------------------------------


def adjust_pvalues(pvalues: Sequence[float]) -> tuple[list[float], list[float]]:
    """Holm-adjusted p-values and Benjamini-Hochberg q-values of a family of tests.

    Holm (1979, Scand J Stat 6:65) controls the family-wise error rate (the chance of any false
    "significant"); Benjamini & Hochberg (1995, JRSS B 57:289) the false discovery rate. Both are
    statsmodels' ``multipletests`` ("holm", "fdr_bh"); a NaN p-value (a test that could not be
    run) is not a member of the family and stays NaN.
    """
    from statsmodels.stats.multitest import multipletests

    ps = [float(p) for p in pvalues]
    idx = [i for i, p in enumerate(ps) if math.isfinite(p)]
    holm, bh = [math.nan] * len(ps), [math.nan] * len(ps)
    if idx:
        finite = [ps[i] for i in idx]
        for out, method in ((holm, "holm"), (bh, "fdr_bh")):
            adjusted = multipletests(finite, alpha=ALPHA, method=method)[1]
            for i, value in zip(idx, adjusted):
                out[i] = min(float(value), 1.0)
    return holm, bh


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

    _check_count("n", n)
    _check_count("discordant", discordant)
    _check_alpha(alpha)
    if n == 0:
        return math.nan
    m_min = math.ceil(1 - math.log2(alpha))
    if n < m_min:
        return math.inf
    p_d = max(discordant, 1) / n
    approx = (float(norm.ppf(1 - alpha / 2)) + float(norm.ppf(power))) * math.sqrt(p_d / n)
    return min(max(approx, m_min / n), 1.0)


# -- answer distributions ---------------------------------------------------------------------


def _log_normalised(logps: Sequence[float], name: str):
    """``logps - logsumexp(logps)`` as a numpy vector: log-probabilities over the choices."""
    import numpy as np
    from scipy.special import logsumexp

    x = np.asarray(logps, dtype=float)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"{name} must be a non-empty sequence of numbers, got shape {x.shape}")
    if np.isnan(x).any() or np.isposinf(x).any():
        raise ValueError(f"{name} holds NaN or +inf: {list(x)}")
    if np.isneginf(x).all():
        raise ValueError(f"{name} gives every choice zero probability: {list(x)}")
    return x - logsumexp(x)


def renormalised_logprob(logps: Sequence[float], index: int) -> float:
    """Log-probability of choice ``index`` after renormalising over the choices.

    ``logps`` are log-scores of the same k choices (e.g. a model's log-probabilities of " A"
    .. " D" over its whole vocabulary); the result is ``logps[index] - logsumexp(logps)``, the
    log-probability of that choice given that the answer is one of the k.
    """
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(logps):
        raise ValueError(f"index must be a choice number in 0..{len(logps) - 1}, got {index!r}")
    return float(_log_normalised(logps, "logps")[index])


def choice_probability(scores: Sequence[float], index: int) -> float:
    """The probability of choice ``index`` among the choices: ``softmax(scores)[index]``, the
    scores being those whose largest is the predicted answer (so the measure and the prediction
    read the same distribution)."""
    return math.exp(renormalised_logprob(scores, index))


def categorical_kl(logp_reference: Sequence[float], logp_variant: Sequence[float]) -> float:
    """KL(P_ref || P_var) in nats between two answer distributions over the same choices.

    Each input is a vector of log-scores of the same choices, renormalised over the choices with
    a log-sum-exp first, so raw log-probabilities over the vocabulary work. KL is
    ``sum_i p_i (log p_i - log q_i)`` (Kullback & Leibler 1951); terms with p_i = 0 contribute 0
    and a choice with p_i > 0 but q_i = 0 makes it +inf. It is 0 exactly when the two agree and
    measures how much fine-tuning moved the model's belief, even where its argmax answer stayed.
    """
    import numpy as np

    log_p = _log_normalised(logp_reference, "logp_reference")
    log_q = _log_normalised(logp_variant, "logp_variant")
    if log_p.shape != log_q.shape:
        raise ValueError(f"logp_reference has {log_p.size} choices but logp_variant has {log_q.size}")
    p = np.exp(log_p)
    support = p > 0
    if np.isneginf(log_q[support]).any():
        return math.inf
    return max(float(np.sum(p[support] * (log_p[support] - log_q[support]))), 0.0)


# -- trade-offs -------------------------------------------------------------------------------


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
    never dominates another (an unmeasured variant is neither a winner nor a benchmark).
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
        gain, low = float(gain), float(low)
        if not (significant and gain > 0 and low > -margin):  # NaN fails every comparison
            continue
        if best is None or gain > float(gains[best]):
            best = i
    return best
