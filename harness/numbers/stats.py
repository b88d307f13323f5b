"""The harness's statistics in one import: pure functions of counts and scores, no I/O, no
plotting, each defined in the module of its job.

- harness/numbers/proportions.py: :func:`wilson`, a proportion with its Wilson score interval
  (Wilson 1927); :func:`paired_difference_ci` and :func:`paired`, two systems scored right/wrong
  on the same items, the accuracy difference with Newcombe's (1998) method-10 interval and the
  exact McNemar test; :func:`minimum_detectable_difference`, the smallest accuracy difference
  the paired test could detect on n items.
- harness/numbers/means.py: :func:`paired_mean_difference`, two systems' continuous scores on
  the same items (a paired t interval and test, or a seeded paired BCa bootstrap with a
  sign-flip permutation test); :func:`bootstrap_mean`, the mean of a non-negative size (a KL)
  with a bootstrap interval and no test (a KL is never below 0, so a test against 0 says
  nothing).
- harness/numbers/bootstrap.py: the BCa interval and the sign-flip test both use;
  :func:`seeds_and_items_bootstrap`, a change found with several training seeds on the same
  items: its seed mean, the seeds' spread and an interval that includes seed-to-seed variance.
- harness/numbers/distributions.py: :func:`categorical_kl`, :func:`renormalised_logprob` and
  :func:`choice_probability`, a question's answer distribution over its choices, and how far a
  variant's moved from the reference's.
- harness/numbers/multiple_comparisons.py: :func:`adjust_pvalues`, Holm's and
  Benjamini-Hochberg's corrections across a run's tests.
- harness/numbers/tradeoff.py: :func:`pareto_front`, which variants are not beaten on both the
  gain (Spider) and the cost (generalisation, e.g. MMLU) at once; :func:`qualifies` and
  :func:`best_tradeoff`, the rule that names the best trade-off.
- harness/numbers/checks.py: ALPHA, CONFIDENCE and the checks of the functions' arguments.

scipy, numpy and statsmodels are imported inside the functions that need them, so importing
this module stays cheap for callers that only want the dataclasses.
"""

from __future__ import annotations

from harness.numbers.bootstrap import SeedsChange, seeds_and_items_bootstrap
from harness.numbers.checks import ALPHA, CONFIDENCE
from harness.numbers.distributions import categorical_kl, choice_probability, renormalised_logprob
from harness.numbers.means import PairedMean, bootstrap_mean, paired_mean_difference
from harness.numbers.multiple_comparisons import adjust_pvalues
from harness.numbers.proportions import (
    Accuracy,
    Paired,
    minimum_detectable_difference,
    paired,
    paired_difference_ci,
    wilson,
)
from harness.numbers.tradeoff import best_tradeoff, non_inferior, pareto_front, qualifies

__all__ = [
    "ALPHA",
    "CONFIDENCE",
    "Accuracy",
    "Paired",
    "PairedMean",
    "SeedsChange",
    "adjust_pvalues",
    "best_tradeoff",
    "bootstrap_mean",
    "categorical_kl",
    "choice_probability",
    "minimum_detectable_difference",
    "non_inferior",
    "paired",
    "paired_difference_ci",
    "paired_mean_difference",
    "pareto_front",
    "qualifies",
    "renormalised_logprob",
    "seeds_and_items_bootstrap",
    "wilson",
]
