"""Resampling: the BCa interval of a statistic (one sample, or two paired on items), the sign-flip
permutation test of a paired mean difference, and the two-way bootstrap over seeds and items."""

from __future__ import annotations

import math
from dataclasses import dataclass

from harness.numbers.checks import ALPHA, RESAMPLE_CELLS, check_alpha


def mean_difference(x, y, axis=-1):
    """The statistic of a paired change: the mean of ``x - y`` (vectorized, as scipy calls it)."""
    import numpy as np

    return np.mean(x - y, axis=axis)


def _batch(n: int) -> int:
    return max(1, RESAMPLE_CELLS // n)


def bca_interval(
    samples: tuple, statistic, per_item, alpha: float, n_resamples: int, seed: int, *, paired: bool
) -> tuple[float, float]:
    """The BCa interval (Efron 1987, JASA 82:171) of ``statistic`` over ``samples`` (one sample,
    or two ``paired`` on items), ``scipy.stats.bootstrap`` with ``n_resamples`` draws from
    ``numpy.random.default_rng(seed)``. ``per_item``: the values the statistic averages; when
    they are all equal every resample gives that value and the interval is it (BCa's
    acceleration would be 0/0)."""
    import numpy as np
    from scipy.stats import bootstrap

    if np.all(per_item == per_item[0]):
        return float(per_item[0]), float(per_item[0])
    boot = bootstrap(
        samples,
        statistic,
        n_resamples=n_resamples,
        batch=_batch(len(per_item)),
        vectorized=True,
        paired=paired,
        confidence_level=1 - alpha,
        method="BCa",
        rng=np.random.default_rng(seed),
    )
    return float(boot.confidence_interval.low), float(boot.confidence_interval.high)


def sign_flip_p(v, r, n_resamples: int, seed: int) -> float:
    """The two-sided sign-flip permutation test of the mean of ``v - r`` (Fisher 1935),
    ``scipy.stats.permutation_test(permutation_type="samples")`` with its own generator from
    ``seed``: exact when 2**n <= ``n_resamples``, else Monte Carlo."""
    import numpy as np
    from scipy.stats import permutation_test

    perm = permutation_test(
        (v, r),
        mean_difference,
        permutation_type="samples",
        vectorized=True,
        n_resamples=n_resamples,
        batch=_batch(len(v)),
        alternative="two-sided",
        rng=np.random.default_rng(seed),
    )
    return min(float(perm.pvalue), 1.0)


@dataclass(frozen=True)
class SeedsChange:
    """A change (variant minus reference, paired on items) found for several training seeds.

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

    check_alpha(alpha)
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
