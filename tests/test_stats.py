"""harness/numbers/stats.py against published figures and against scipy / statsmodels."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.numbers import bootstrap, stats

# -- Wilson -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "correct, n", [(0, 1), (1, 1), (3, 7), (0, 7), (7, 7), (8, 10), (50, 100), (0, 40), (40, 40), (1, 1034)]
)
@pytest.mark.parametrize("alpha", [0.05, 0.01, 0.2])
def test_wilson_equals_statsmodels(correct, n, alpha):
    from statsmodels.stats.proportion import proportion_confint

    a = stats.wilson(correct, n, alpha)
    low, high = proportion_confint(correct, n, alpha=alpha, method="wilson")
    assert (a.n, a.correct, a.accuracy) == (n, correct, correct / n)
    assert (a.ci_low, a.ci_high) == pytest.approx((low, high), abs=1e-12)
    # exact at the ends, as Wilson's formula is there (statsmodels gives 2.8e-17 and 1 - 1e-16 at n = 7)
    assert (a.ci_low == 0.0) == (correct == 0) and (a.ci_high == 1.0) == (correct == n)


def test_wilson_textbook_value_and_empty_sample():
    a = stats.wilson(8, 10)  # 95% Wilson for 8/10: 0.4902 to 0.9433 (Newcombe 1998, Stat Med 17:857)
    assert (round(a.ci_low, 4), round(a.ci_high, 4)) == (0.4902, 0.9433)
    empty = stats.wilson(0, 0)
    assert empty.n == 0 and all(math.isnan(x) for x in (empty.accuracy, empty.ci_low, empty.ci_high))


@pytest.mark.parametrize(
    "args, word",
    [
        ((5, 3), "correct"),
        ((-1, 3), "correct"),
        ((1, -2), "n"),
        ((1.5, 3), "correct"),
        ((1, 3, 0.0), "alpha"),
        ((1, 3, 1.0), "alpha"),
    ],
)
def test_wilson_rejects_bad_arguments(args, word):
    with pytest.raises(ValueError, match=word):
        stats.wilson(*args)


def test_numpy_counts_are_accepted():
    assert stats.wilson(np.int64(8), np.int64(10)) == stats.wilson(8, 10)
    assert stats.paired_difference_ci(*np.array([59, 16, 6, 80])) == stats.paired_difference_ci(59, 16, 6, 80)


def test_constants():
    assert stats.ALPHA == 0.05 and stats.CONFIDENCE == 0.95


# -- Newcombe's method 10 ---------------------------------------------------------------------
#
# Newcombe RG, "Improved confidence intervals for the difference between binomial proportions
# based on paired data", Statistics in Medicine 1998; 17(22):2635-2650, Table III, method 10.
# Cells (e, f, g, h): both positive, first only, second only, both negative; theta = (f - g)/n.
# Our call is paired_difference_ci(both=e, only_ref=g, only_var=f, neither=h): the variant is
# Newcombe's first system. Transcribed to the 4 decimals printed, as quoted identically in
# several independent implementations (e.g. petelaud/ratesci tests/testthat/test3.R for the
# (20, 12, 2, 16) row, with method 8 = 0.0618 to 0.3242 for the uncorrected phi).
NEWCOMBE_1998_TABLE_III_METHOD_10 = [
    ((36, 12, 2, 0), (0.0569, 0.3404)),
    ((20, 12, 2, 16), (0.0562, 0.3292)),
    ((18, 12, 2, 18), (0.0562, 0.3290)),
    ((36, 14, 0, 0), (0.1528, 0.4167)),
    ((35, 14, 0, 1), (0.1461, 0.4175)),
    ((18, 14, 0, 18), (0.1441, 0.3963)),
    ((2, 97, 1, 0), (0.8721, 0.9854)),
    ((1, 97, 1, 1), (0.8736, 0.9850)),  # the formula gives 0.87367: printed one unit low
    ((0, 29, 1, 0), (0.6666, 0.9882)),
    ((2, 98, 0, 0), (0.9178, 0.9945)),
    ((1, 98, 0, 1), (0.9171, 0.9916)),
    ((0, 30, 0, 0), (0.8395, 1.0)),
    ((54, 0, 0, 0), (-0.0664, 0.0664)),
    ((53, 0, 0, 1), (-0.0729, 0.0729)),
    ((30, 0, 0, 24), (-0.0358, 0.0358)),
    ((29, 0, 0, 25), (-0.0354, 0.0354)),
    ((28, 0, 0, 26), (-0.0352, 0.0352)),
    ((27, 0, 0, 27), (-0.0351, 0.0351)),
]


@pytest.mark.parametrize("cells, published", NEWCOMBE_1998_TABLE_III_METHOD_10)
def test_paired_interval_reproduces_newcombe_1998_table_iii(cells, published):
    e, f, g, h = cells
    low, high = stats.paired_difference_ci(both=e, only_ref=g, only_var=f, neither=h)
    tolerance = 1e-4 if cells == (1, 97, 1, 1) else 5e-5  # 4-decimal rounding, one misprint
    assert low == pytest.approx(published[0], abs=tolerance)
    assert high == pytest.approx(published[1], abs=tolerance)


# Fagerland MW, Lydersen S, Laake P, "Recommended tests and confidence intervals for paired
# binomial proportions", Statistics in Medicine 2014; 33(16):2850-2875, worked examples, and the
# authors' companion R package contingencytables (Fagerland, Lydersen & Laake, "Statistical
# Analysis of Contingency Tables", 2017, ch. 8), Newcombe_square_and_add_CI_paired_2x2, whose
# tests print these limits. The tables are [[n11, n12], [n21, n22]] with n11 both positive, n12
# positive before only, n21 after only, delta = p_1+ - p_+1 = (n12 - n21) / N.
# Chang P et al., "Continuity corrected score confidence interval for the difference in
# proportions in paired data", J Appl Stat 2024; 51(1):139-152: its MOVER-Wilson interval for
# (7, 25, 2, 68) is Newcombe's method 10, printed to 3 decimals (as ratesci's tests note).
PUBLISHED_EXAMPLES = [
    # (n11, n12, n21, n22), published limits, decimals printed
    ((59, 6, 16, 80), (-0.1186, -0.0046), 4),  # Cavo et al. 2012, complete response
    ((1, 1, 7, 12), (-0.507, -0.026), 3),  # Bentur et al. 2009, airway hyper-responsiveness
    ((7, 25, 2, 68), (0.133, 0.318), 3),  # Chang et al. 2024
]


@pytest.mark.parametrize("table, published, decimals", PUBLISHED_EXAMPLES)
def test_paired_interval_reproduces_fagerland_and_chang_examples(table, published, decimals):
    n11, n12, n21, n22 = table
    low, high = stats.paired_difference_ci(both=n11, only_ref=n21, only_var=n12, neither=n22)
    assert (round(low, decimals), round(high, decimals)) == published
    # swapping the systems mirrors the interval
    low2, high2 = stats.paired_difference_ci(both=n11, only_ref=n12, only_var=n21, neither=n22)
    assert (low2, high2) == pytest.approx((-high, -low), abs=1e-12)


def test_paired_interval_without_discordant_pairs_is_not_zero_width():
    """5/0/0/5: p1 = p2 = 1/2, eh - fg = 25 > n/2, so phi = (25 - 5) / 25 = 0.8 and both limits
    are sqrt(2 (1 - phi)) (1/2 - l) with l the Wilson lower limit of 5/10; the uncorrected phi = 1
    would give [0, 0]."""
    low, high = stats.paired_difference_ci(5, 0, 0, 5)
    wilson_low = stats.wilson(5, 10).ci_low
    half = math.sqrt(2 * (1 - 0.8)) * (0.5 - wilson_low)
    assert (low, high) == pytest.approx((-half, half), abs=1e-12)
    assert (round(low, 4), round(high, 4)) == (-0.1666, 0.1666)


def test_paired_interval_with_zero_correlation_is_the_independent_square_and_add():
    """ad = bc makes phi = 0: Newcombe's (1998, Stat Med 17:873) method 10 for independent
    proportions, which statsmodels implements."""
    from statsmodels.stats.proportion import confint_proportions_2indep

    low, high = stats.paired_difference_ci(4, 2, 2, 1)  # both 4, neither 1: ad = 4 = bc
    assert (low, high) == pytest.approx(confint_proportions_2indep(6, 9, 6, 9, method="newcomb"), abs=1e-12)


def test_paired_interval_edge_cases():
    assert all(math.isnan(x) for x in stats.paired_difference_ci(0, 0, 0, 0))
    # all gains / all losses: exactly +-1 (n = 7 is where statsmodels' Wilson ends are off by 1e-16)
    # empty margins make phi = 0: low = 1 - sqrt(2) (1 - l) with l the Wilson lower limit of 7/7
    low = 1 - math.sqrt(2) * (1 - stats.wilson(7, 7).ci_low)
    assert stats.paired_difference_ci(0, 0, 7, 0) == (pytest.approx(low, abs=1e-12), 1.0)
    assert stats.paired_difference_ci(0, 7, 0, 0) == (-1.0, pytest.approx(-low, abs=1e-12))
    with pytest.raises(ValueError, match="only_var"):
        stats.paired_difference_ci(1, 2, -1, 3)
    with pytest.raises(ValueError, match="alpha"):
        stats.paired_difference_ci(1, 2, 3, 4, alpha=2)


@settings(max_examples=150, deadline=None)
@given(st.tuples(*[st.integers(0, 40)] * 4).filter(lambda t: sum(t) > 0))
def test_paired_interval_contains_the_estimate_and_narrows_with_confidence(cells):
    both, only_ref, only_var, neither = cells
    n = sum(cells)
    delta = (only_var - only_ref) / n
    low, high = stats.paired_difference_ci(*cells)
    assert -1.0 <= low <= delta + 1e-12 and delta - 1e-12 <= high <= 1.0
    low90, high90 = stats.paired_difference_ci(*cells, alpha=0.10)
    assert low - 1e-12 <= low90 and high90 <= high + 1e-12


# -- paired verdicts --------------------------------------------------------------------------


def _verdicts(both, only_ref, only_var, neither):
    cells = [(True, True)] * both + [(True, False)] * only_ref + [(False, True)] * only_var
    cells += [(False, False)] * neither
    reference = {f"q{i}": r for i, (r, _) in enumerate(cells)}
    variant = {f"q{i}": v for i, (_, v) in enumerate(cells)}
    return variant, reference


def test_paired_table_mcnemar_and_interval_against_statsmodels():
    from statsmodels.stats.contingency_tables import mcnemar

    variant, reference = _verdicts(10, 7, 2, 6)
    p = stats.paired(variant, reference)
    assert (p.n, p.both_correct, p.only_reference, p.only_variant, p.both_wrong) == (25, 10, 7, 2, 6)
    expected = mcnemar([[10, 7], [2, 6]], exact=True)
    assert p.mcnemar_p == pytest.approx(expected.pvalue, abs=1e-15)
    assert p.mcnemar_statistic == expected.statistic == 2
    # exact McNemar = two-sided binomial test of 2 of 9 discordant pairs: 2 * (1 + 9 + 36) / 512
    assert p.mcnemar_p == pytest.approx(92 / 512, abs=1e-15)
    assert (p.accuracy, p.reference_accuracy, p.delta) == pytest.approx((12 / 25, 17 / 25, -5 / 25))
    assert (p.delta_ci_low, p.delta_ci_high) == stats.paired_difference_ci(10, 7, 2, 6)


def test_paired_uses_shared_items_and_is_nan_without_them():
    p = stats.paired({"a": True, "b": False, "x": True}, {"a": True, "b": True, "y": False})
    assert (p.n, p.both_correct, p.only_reference, p.only_variant) == (2, 1, 1, 0)
    assert p.mcnemar_p == pytest.approx(1.0)
    empty = stats.paired({"a": True}, {"b": True})
    assert empty.n == 0 and empty.both_correct == 0
    assert all(math.isnan(getattr(empty, f)) for f in ("accuracy", "delta", "delta_ci_low", "mcnemar_p"))


# -- continuous paired scores -----------------------------------------------------------------

V = [0.61, 0.74, 0.52, 0.93, 0.47, 0.88, 0.70, 0.55, 0.81, 0.66, 0.59, 0.72]
R = [0.58, 0.70, 0.55, 0.85, 0.41, 0.86, 0.71, 0.49, 0.75, 0.60, 0.61, 0.64]


def _scores(values, order=None):
    keys = [f"item{i:05d}" for i in range(len(values))]  # sorted = positional order
    order = order or range(len(values))
    return {keys[i]: values[i] for i in order}


@pytest.mark.parametrize("alpha", [0.05, 0.10])
def test_paired_t_equals_scipy_ttest_rel(alpha):
    from scipy.stats import ttest_rel

    res = stats.paired_mean_difference(_scores(V), _scores(R), alpha=alpha)
    ref = ttest_rel(V, R)
    ci = ref.confidence_interval(confidence_level=1 - alpha)
    assert res.method == "t" and res.n == len(V)
    assert res.delta == pytest.approx(np.mean(np.subtract(V, R)), abs=1e-12)
    assert (res.mean_variant, res.mean_reference) == pytest.approx((np.mean(V), np.mean(R)), abs=1e-12)
    assert res.ci_low == pytest.approx(ci.low, abs=1e-12) and res.ci_high == pytest.approx(ci.high, abs=1e-12)
    assert res.p_value == pytest.approx(ref.pvalue, abs=1e-12)
    assert 0 < res.p_value < 0.05  # the fixed data do differ; guards against a vacuous comparison


def test_paired_mean_difference_pairs_by_key_not_by_position():
    shuffled = _scores(R, order=[5, 2, 11, 0, 7, 1, 9, 3, 10, 4, 8, 6])
    extra = dict(shuffled, unscored=99.0)  # a key only one side has is ignored
    expected = stats.paired_mean_difference(_scores(V), _scores(R))
    assert stats.paired_mean_difference(_scores(V), extra) == expected


def _bootstrap_reference(v, r, seed, n_resamples, alpha=0.05):
    from scipy.stats import bootstrap

    return bootstrap(
        (np.asarray(v), np.asarray(r)),
        lambda x, y, axis: np.mean(x - y, axis=axis),
        paired=True,
        vectorized=True,
        n_resamples=n_resamples,
        method="BCa",
        confidence_level=1 - alpha,
        rng=np.random.default_rng(seed),
    ).confidence_interval


def test_paired_bootstrap_equals_scipy_bootstrap_with_the_same_seed():
    res = stats.paired_mean_difference(_scores(V), _scores(R), method="bootstrap", seed=7, n_resamples=2000)
    ci = _bootstrap_reference(V, R, seed=7, n_resamples=2000)
    assert res.method == "bootstrap"
    assert (res.ci_low, res.ci_high) == pytest.approx((ci.low, ci.high), abs=1e-12)
    again = stats.paired_mean_difference(_scores(V), _scores(R), method="bootstrap", seed=7, n_resamples=2000)
    assert again == res
    other = stats.paired_mean_difference(_scores(V), _scores(R), method="bootstrap", seed=8, n_resamples=2000)
    assert (other.ci_low, other.ci_high) != (res.ci_low, res.ci_high)


def test_paired_bootstrap_in_batches_gives_the_unbatched_result(monkeypatch):
    """Large benchmarks resample in batches to bound memory; the draws must not change."""
    monkeypatch.setattr(bootstrap, "RESAMPLE_CELLS", 1000)  # 60 items -> batches of 16 resamples
    rng = np.random.default_rng(3)
    n = 60
    v = rng.normal(0.6, 0.2, n)
    r = v - rng.normal(0.02, 0.1, n)
    res = stats.paired_mean_difference(
        _scores(list(v)), _scores(list(r)), method="bootstrap", seed=1, n_resamples=1000
    )
    ci = _bootstrap_reference(v, r, seed=1, n_resamples=1000)
    assert (res.ci_low, res.ci_high) == pytest.approx((ci.low, ci.high), abs=1e-12)


def test_paired_bootstrap_p_value_is_the_exact_sign_flip_test():
    """2**12 = 4096 sign patterns <= n_resamples: the permutation test enumerates them all."""
    d = np.subtract(V, R)
    observed = abs(d.mean())
    flips = [abs(np.mean(np.array(signs) * d)) for signs in itertools.product((1, -1), repeat=len(d))]
    exact = np.mean([f >= observed * (1 - 1e-12) for f in flips])
    res = stats.paired_mean_difference(_scores(V), _scores(R), method="bootstrap", n_resamples=5000)
    assert res.p_value == pytest.approx(exact, abs=1e-12)
    assert 0 < exact < 0.05


@pytest.mark.parametrize("method", ["t", "bootstrap"])
def test_paired_mean_difference_edge_cases(method):
    same = stats.paired_mean_difference(
        {"a": 1.0, "b": 2.0, "c": 3.0}, {"a": 1.0, "b": 2.0, "c": 3.0}, method=method
    )
    assert (same.delta, same.ci_low, same.ci_high, same.p_value) == (0.0, 0.0, 0.0, 1.0)
    one = stats.paired_mean_difference({"a": 2.0}, {"a": 1.5, "b": 9.0}, method=method)
    assert (one.n, one.delta) == (1, 0.5) and math.isnan(one.ci_low) and math.isnan(one.p_value)
    none = stats.paired_mean_difference({"a": 2.0}, {"b": 1.0}, method=method)
    assert none.n == 0 and math.isnan(none.delta) and math.isnan(none.mean_variant)
    shifted = stats.paired_mean_difference(
        {"a": 1.5, "b": 2.5, "c": 3.5}, {"a": 1.0, "b": 2.0, "c": 3.0}, method=method
    )
    assert (shifted.delta, shifted.ci_low, shifted.ci_high) == (0.5, 0.5, 0.5)
    assert shifted.p_value == (0.0 if method == "t" else 0.25)  # t = inf; 2 of 8 sign patterns


def test_paired_mean_difference_rejects_bad_input():
    with pytest.raises(ValueError, match="'b'"):
        stats.paired_mean_difference({"a": 1.0, "b": math.nan}, {"a": 1.0, "b": 2.0})
    with pytest.raises(ValueError, match="reference score of item 'a'"):
        stats.paired_mean_difference({"a": 1.0, "b": 1.0}, {"a": math.inf, "b": 2.0})
    with pytest.raises(ValueError, match="method"):
        stats.paired_mean_difference({"a": 1.0}, {"a": 1.0}, method="wilcoxon")
    with pytest.raises(ValueError, match="alpha"):
        stats.paired_mean_difference({"a": 1.0}, {"a": 1.0}, alpha=0)


# -- answer distributions ---------------------------------------------------------------------


def test_categorical_kl_equals_scipy_on_random_vectors():
    from scipy.special import logsumexp, rel_entr

    rng = np.random.default_rng(11)
    for k in (2, 4, 10):
        for _ in range(20):
            # raw log-probabilities over a vocabulary: the k choices hold only part of the mass
            a, b = rng.normal(-6, 3, k), rng.normal(-6, 3, k)
            p, q = np.exp(a - logsumexp(a)), np.exp(b - logsumexp(b))
            expected = float(np.sum(rel_entr(p, q)))
            assert stats.categorical_kl(a, b) == pytest.approx(expected, rel=1e-10, abs=1e-13)
            assert stats.categorical_kl(a, a) == pytest.approx(0.0, abs=1e-15)
            # adding a constant to every log-score cancels in the renormalisation
            assert stats.categorical_kl(list(a), list(a + 3.7)) == pytest.approx(0.0, abs=1e-12)


def test_categorical_kl_known_value_and_zero_probabilities():
    # P = (1/2, 1/2), Q = (1/4, 3/4): KL = 1/2 log 2 + 1/2 log(2/3)
    kl = stats.categorical_kl([math.log(0.5), math.log(0.5)], [math.log(0.25), math.log(0.75)])
    assert kl == pytest.approx(0.5 * math.log(2) + 0.5 * math.log(2 / 3), abs=1e-15)
    # P = (1, 0): KL = -log q_1 with q_1 = 1 / (1 + e^-1); q_i = 0 where p_i > 0 gives +inf
    expected = -math.log(1 / (1 + math.exp(-1)))
    assert stats.categorical_kl([0.0, -math.inf], [-1.0, -2.0]) == pytest.approx(expected, abs=1e-15)
    assert stats.categorical_kl([-1.0, -2.0], [0.0, -math.inf]) == math.inf


@pytest.mark.parametrize(
    "ref, var, word",
    [
        ([0.0, 1.0], [0.0], "choices"),
        ([], [], "logp_reference"),
        ([0.0, math.nan], [0.0, 0.0], "logp_reference"),
        ([0.0, 0.0], [-math.inf, -math.inf], "logp_variant"),
    ],
)
def test_categorical_kl_rejects_bad_input(ref, var, word):
    with pytest.raises(ValueError, match=word):
        stats.categorical_kl(ref, var)


def test_renormalised_logprob():
    from scipy.special import logsumexp

    logps = [-2.3, -0.7, -5.0, -1.1]
    for i in range(4):
        assert stats.renormalised_logprob(logps, i) == pytest.approx(logps[i] - logsumexp(logps), abs=1e-15)
    assert sum(math.exp(stats.renormalised_logprob(logps, i)) for i in range(4)) == pytest.approx(1.0)
    assert stats.renormalised_logprob([0.0, -math.inf], 1) == -math.inf
    for bad in (4, -1, 1.0):
        with pytest.raises(ValueError, match="index"):
            stats.renormalised_logprob(logps, bad)


# -- trade-offs -------------------------------------------------------------------------------


def test_pareto_front_hand_made():
    points = [
        (0.10, -0.02),  # 0: big gain, small loss: front
        (0.05, 0.00),  # 1: smaller gain, no loss: front
        (0.04, -0.01),  # 2: dominated by 1
        (0.10, -0.03),  # 3: same gain as 0, bigger loss: dominated by 0
        (0.12, -0.08),  # 4: biggest gain: front
        (math.nan, 0.5),  # 5: unmeasured: never on the front, dominates nothing
        (0.05, 0.00),  # 6: identical to 1: both on the front
        (-0.01, 0.01),  # 7: a loss on x, but the best y: front
    ]
    assert stats.pareto_front(points) == [True, True, False, False, True, False, True, True]
    assert stats.pareto_front([]) == []
    assert stats.pareto_front([(math.nan, math.nan)]) == [False]


def test_best_tradeoff_needs_a_significant_gain_and_a_non_inferior_cost():
    gains = [0.10, 0.05, 0.12, 0.08, math.nan]
    significant = [True, True, True, False, True]
    cost_lows = [-0.015, -0.005, -0.03, 0.0, 0.0]
    # 0's cost interval reaches -1.5 points: a 1-point margin refuses it, a 2-point one takes it
    assert stats.best_tradeoff(gains, significant, cost_lows, margin=0.01) == 1
    assert stats.best_tradeoff(gains, significant, cost_lows, margin=0.02) == 0
    assert stats.best_tradeoff(gains, significant, cost_lows, margin=0.05) == 2
    # a gain that is not significant never qualifies, however large
    assert stats.best_tradeoff([0.4], [False], [0.0], margin=0.01) is None
    # a significant loss is no gain
    assert stats.best_tradeoff([-0.1], [True], [0.0], margin=0.01) is None
    assert stats.best_tradeoff([], [], [], margin=0.01) is None
    # the lower end on the margin itself is not above it
    assert stats.best_tradeoff([0.1], [True], [-0.01], margin=0.01) is None


def test_one_trade_off_rule_for_a_point_a_seed_group_and_the_best():
    """``qualifies`` is the rule ``best_tradeoff`` chooses by, and the frontier marks its points
    and seed groups with: the best is the largest gain among the points it marks."""
    gains = [0.10, 0.05, 0.12, 0.08, math.nan, -0.1]
    significant = [True, True, True, False, True, True]
    cost_lows = [-0.015, -0.005, -0.03, 0.0, 0.0, math.nan]
    for margin in (0.0, 0.01, 0.02, 0.05):
        marked = [stats.qualifies(g, s, c, margin) for g, s, c in zip(gains, significant, cost_lows)]
        best = stats.best_tradeoff(gains, significant, cost_lows, margin)
        chosen = [i for i in range(len(gains)) if marked[i]]
        assert best == (max(chosen, key=lambda i: gains[i]) if chosen else None)
        assert [stats.non_inferior(c, margin) for c in cost_lows] == [c > -margin for c in cost_lows]
    assert not stats.non_inferior(math.nan, 0.01) and not stats.qualifies(0.1, True, math.nan, 0.01)


def test_pareto_front_rejects_bad_input():
    with pytest.raises(ValueError, match=r"points\[1\]"):
        stats.pareto_front([(0.0, 0.0), (1.0,)])
    with pytest.raises(ValueError, match="margin"):
        stats.best_tradeoff([0.1], [True], [0.0], margin=math.nan)
    with pytest.raises(ValueError, match="differ in length"):
        stats.best_tradeoff([0.1, 0.2], [True], [0.0], margin=0.01)


coordinate = st.one_of(
    st.integers(-4, 4).map(lambda i: i / 4), st.just(math.nan), st.floats(-1, 1, allow_nan=False)
)


def _dominates(q, p):
    return q[0] >= p[0] and q[1] >= p[1] and (q[0] > p[0] or q[1] > p[1])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(coordinate, coordinate), max_size=25))
def test_pareto_front_properties(points):
    front = stats.pareto_front(points)
    finite = [not (math.isnan(x) or math.isnan(y)) for x, y in points]
    assert len(front) == len(points)
    for i, p in enumerate(points):
        if front[i]:
            assert finite[i]
            assert not any(finite[j] and _dominates(points[j], p) for j in range(len(points)))
        elif finite[i]:
            assert any(front[j] and _dominates(points[j], p) for j in range(len(points)))


# -- multiple comparisons, sizes, what n can see -----------------------------------------------


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.floats(0, 1), st.just(math.nan)), max_size=30))
def test_adjusted_pvalues_equal_statsmodels(pvalues):
    from statsmodels.stats.multitest import multipletests

    holm, bh = stats.adjust_pvalues(pvalues)
    finite = [p for p in pvalues if not math.isnan(p)]
    where = [i for i, p in enumerate(pvalues) if not math.isnan(p)]
    assert all(math.isnan(holm[i]) and math.isnan(bh[i]) for i in range(len(pvalues)) if i not in where)
    if finite:
        ref_holm = multipletests(finite, method="holm")[1]
        ref_bh = multipletests(finite, method="fdr_bh")[1]
        assert [holm[i] for i in where] == pytest.approx(list(ref_holm), abs=1e-15)
        assert [bh[i] for i in where] == pytest.approx(list(ref_bh), abs=1e-15)


def test_holm_by_hand():
    holm, bh = stats.adjust_pvalues([0.01, 0.04, 0.03, 0.5])
    assert holm == pytest.approx([0.04, 0.09, 0.09, 0.5])  # 4x0.01, max(3x0.03, 2x0.04), ..
    assert bh == pytest.approx([0.04, 0.04 * 4 / 3, 0.04 * 4 / 3, 0.5])


def test_bootstrap_mean_is_a_size_without_a_test():
    from scipy.stats import bootstrap

    values = {str(i): 0.001 * (i % 7) ** 2 for i in range(40)}
    m = stats.bootstrap_mean(values)
    x = np.array([values[k] for k in sorted(values)])
    ref = bootstrap((x,), np.mean, n_resamples=9999, method="BCa", rng=np.random.default_rng(0))
    assert (m.n, m.delta, m.ci_low, m.ci_high) == pytest.approx(
        (40, x.mean(), ref.confidence_interval.low, ref.confidence_interval.high)
    )
    assert math.isnan(m.p_value) and m.ci_low >= 0
    assert stats.bootstrap_mean({"a": 0.0, "b": 0.0}).ci_high == 0.0
    assert math.isnan(stats.bootstrap_mean({}).delta)


def test_minimum_detectable_difference():
    from scipy.stats import norm

    # 5 items: the exact McNemar test cannot reach p < 0.05 (6 items must move one way)
    assert stats.minimum_detectable_difference(5, 0) == math.inf
    # 150 items, 30 discordant: (1.96 + 0.84) sqrt(0.2 / 150)
    z = norm.ppf(0.975) + norm.ppf(0.8)
    assert stats.minimum_detectable_difference(150, 30) == pytest.approx(z * math.sqrt(0.2 / 150))
    # never below 6 items' worth
    assert stats.minimum_detectable_difference(1000, 0) == pytest.approx(6 / 1000)
    assert math.isnan(stats.minimum_detectable_difference(0, 0))


def test_choice_probability_is_the_softmax():
    scores = [-1.0, -2.0, -0.5, -3.0]
    assert stats.choice_probability(scores, 2) == pytest.approx(np.exp(-0.5) / np.exp(scores).sum())


def test_seeds_and_items_bootstrap_follows_its_recipe_and_widens_with_seed_variance():
    rng = np.random.default_rng(5)
    items = rng.normal(0.05, 0.2, 60)
    same = np.vstack([items, items, items])  # three seeds that agree item by item
    apart = same + np.array([[-0.05], [0.0], [0.05]])  # seeds that disagree by +-5 points
    a, b = stats.seeds_and_items_bootstrap(same), stats.seeds_and_items_bootstrap(apart)
    assert a.mean == pytest.approx(items.mean()) and b.mean == pytest.approx(items.mean())
    assert b.per_seed == pytest.approx((items.mean() - 0.05, items.mean(), items.mean() + 0.05))
    assert b.spread == pytest.approx(0.05) and a.spread == pytest.approx(0.0, abs=1e-15)
    assert (b.ci_high - b.ci_low) > (a.ci_high - a.ci_low)  # seed variance is in the interval
    # the recipe, by hand: per resample, S seed indices then n item indices, percentile interval
    draw = np.random.default_rng(0)
    values = []
    for _ in range(4000):
        s = draw.integers(0, 3, 3)
        i = draw.integers(0, 60, 60)
        values.append(apart[np.ix_(s, i)].mean())
    assert (b.ci_low, b.ci_high) == pytest.approx(tuple(np.quantile(values, [0.025, 0.975])))
    one = stats.seeds_and_items_bootstrap([[0.0, 0.0, 0.0]])
    assert (one.mean, one.p_value) == (0.0, 1.0) and math.isnan(one.spread)
    with pytest.raises(ValueError, match="seeds x items"):
        stats.seeds_and_items_bootstrap([1.0, 2.0])
