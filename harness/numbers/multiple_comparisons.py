"""A run's tests as one family: Holm's and Benjamini-Hochberg's corrections."""

from __future__ import annotations

import math
from collections.abc import Sequence

from harness.numbers.checks import ALPHA


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
