"""A run's analysis: continuous measures against scipy, repeated predictions, why answers were
wrong, errored variants, the frontier, and figures whose labels do not overprint."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from scipy import stats as sps
from scipy.special import logsumexp, rel_entr

from harness.numbers.summary import compare_to_baseline, continuous_measures, summarize
from harness.records.results import CaseResult
from harness.report.analysis import analyze
from harness.report.frontier import AdapterFacts, build_frontier
from harness.tasks import declared_measures


def row(variant, task, item, outcome, prediction="A", **extra):
    group = "stem" if task == "mmlu" else "easy"
    return CaseResult(variant, task, str(item), group, outcome, "", prediction, None, extra)


def mmlu_rows(variant, seed, n=30, shift=0.0):
    rng = random.Random(seed)
    out = []
    for i in range(n):
        scores = [rng.gauss(-2, 1) + (shift if j == 0 else 0) for j in range(4)]
        best = "ABCD"[max(range(4), key=lambda j: scores[j])]
        gold = float(np.exp(scores[0] - logsumexp(scores)))  # the gold answer is A
        out.append(
            row(
                variant,
                "mmlu",
                i,
                "passed" if best == "A" else "wrong",
                best,
                choice_scores=dict(zip("ABCD", scores)),
                gold_prob=gold,
            )
        )
    return out


def test_continuous_measures_equal_scipy():
    base, ft = mmlu_rows("base", 1), mmlu_rows("ft", 2, shift=0.7)
    kl_rows = [row("ft", "spider", i, "wrong", "SELECT 1", kl_to_base=0.01 * (i + 1)) for i in range(10)]
    kl_rows += [row("base", "spider", i, "wrong", "SELECT 2") for i in range(10)]
    found = {
        (c.variant, c.benchmark, c.measure): c.result
        for c in continuous_measures(base + ft + kl_rows, "base", measures=declared_measures())
    }

    g = found[("ft", "mmlu", "gold_prob")]
    v = np.array([r.extra["gold_prob"] for r in ft])
    b = np.array([r.extra["gold_prob"] for r in base])
    test = sps.ttest_rel(v, b)
    ci = test.confidence_interval()
    assert (g.n, g.delta, g.ci_low, g.ci_high, g.p_value) == pytest.approx(
        (30, (v - b).mean(), ci.low, ci.high, test.pvalue), rel=1e-9
    )

    kl = found[("ft", "mmlu", "answer_kl")]
    expected = []
    for rb, rv in zip(base, ft):
        p = np.array(list(rb.extra["choice_scores"].values()))
        q = np.array(list(rv.extra["choice_scores"].values()))
        expected.append(rel_entr(np.exp(p - logsumexp(p)), np.exp(q - logsumexp(q))).sum())
    # a KL is a size: its mean with a BCa bootstrap interval (items in sorted id order), no p-value
    expected = [kl for _, kl in sorted(zip((r.item_id for r in base), expected))]
    boot = sps.bootstrap((np.array(expected),), np.mean, method="BCa", rng=np.random.default_rng(0))
    assert (kl.delta, kl.ci_low, kl.ci_high) == pytest.approx(
        (np.mean(expected), boot.confidence_interval.low, boot.confidence_interval.high), rel=1e-9
    )
    assert kl.delta > 0 and kl.ci_low >= 0 and math.isnan(kl.p_value)

    spider_kl = found[("ft", "spider", "kl_to_base")]
    values = [0.01 * (i + 1) for i in range(10)]
    boot = sps.bootstrap((np.array(values),), np.mean, method="BCa", rng=np.random.default_rng(0))
    assert (spider_kl.n, spider_kl.delta, spider_kl.ci_low) == pytest.approx(
        (10, np.mean(values), boot.confidence_interval.low)
    )
    assert math.isnan(spider_kl.p_value)
    assert ("base", "spider", "kl_to_base") not in found  # the baseline is the reference


def test_a_variant_with_the_baselines_predictions_is_not_compared():
    base = mmlu_rows("base", 1)
    same = [
        CaseResult(
            "base-3shot", r.benchmark, r.item_id, r.group, r.outcome, r.reason, r.prediction, r.score, r.extra
        )
        for r in base
    ]
    other = mmlu_rows("ft", 2)
    a = analyze(
        base + same + other, baseline="base", tasks=("mmlu",), facts={}, same={("base-3shot", "mmlu"): "base"}
    )
    assert a.same == {("base-3shot", "mmlu"): "base"}
    assert [c.variant for c in a.comparisons] == ["ft"]
    assert all(c.variant == "ft" for c in a.continuous)


def test_why_wrong_and_the_answers_given():
    rows = [
        CaseResult("ft", "spider", str(i), "easy", "wrong", reason, "x", None, {})
        for i, reason in enumerate(
            [
                "empty prediction: no SQL to execute",
                "prediction failed (error): no such table",
                "gold has 3 rows, prediction 2",
                "gold has 3 rows, prediction 2",
            ]
        )
    ]
    rows += mmlu_rows("ft", 3)
    a = analyze(rows, baseline="ft", tasks=("spider", "mmlu"), facts={})
    assert a.why_wrong[("ft", "spider")] == {"no SQL": 1, "SQL error": 1, "wrong number of rows": 2}
    assert sum(a.predicted[("ft", "mmlu")].values()) == 30 and ("ft", "spider") not in a.predicted


def test_a_variant_whose_every_item_errored_has_no_accuracy():
    rows = [
        CaseResult("ft", "spider", str(i), "easy", "error", "setup: OSError: no model", None, None, {})
        for i in range(4)
    ] + [row("base", "spider", i, "passed") for i in range(4)]
    s = {x.variant: x for x in summarize(rows)}
    assert s["ft"].errored and not s["base"].errored
    assert compare_to_baseline(rows, "base") == []


def _comparisons(points, n=20):
    """Comparisons from (variant, spider right count, mmlu right count) over n items each; the
    baseline gets n/10 Spider items and n/2 MMLU items right."""
    rows = [row("base", "spider", i, "passed" if i < n // 10 else "wrong") for i in range(n)]
    rows += [row("base", "mmlu", i, "passed" if i < n // 2 else "wrong") for i in range(n)]
    for variant, spider, mmlu in points:
        rows += [row(variant, "spider", i, "passed" if i < spider else "wrong") for i in range(n)]
        rows += [row(variant, "mmlu", i, "passed" if i < mmlu else "wrong") for i in range(n)]
    return rows


SWEEP = ("lr=1@0.5ep", "lr=1@1ep", "lr=2@1ep", "lr=3@1ep")


def _sweep_facts(names=SWEEP):
    return {v: AdapterFacts(v, f"a/{v}", "succeeded", point=v.split("@")[0], epochs_at=1.0) for v in names}


def test_the_frontier_marks_the_pareto_points_and_names_the_best_that_qualifies():
    rows = _comparisons(
        [
            ("lr=1@0.5ep", 60, 100),  # +20 (significant), MMLU unchanged: interval +-0.97 points
            ("lr=1@1ep", 80, 80),  # +30, but MMLU -10 (significant): on the front, not non-inferior
            ("lr=2@1ep", 70, 70),  # beaten by lr=1@1ep on both axes
            ("lr=3@1ep", 22, 101),  # +1 and +0.5: neither significant, so (0, 0): beaten by lr=1@0.5ep
        ],
        n=200,
    )
    facts = _sweep_facts()
    facts["lr=9@1ep"] = AdapterFacts("lr=9@1ep", "a/lr=9", "diverged", "loss became nan at log 9", 9, 28)
    a = analyze(rows, baseline="base", tasks=("spider", "mmlu"), facts=facts)
    f = a.frontier
    front = {p.variant for p in f.points if p.on_front}
    assert front == {"lr=1@0.5ep", "lr=1@1ep"}
    assert f.best == "lr=1@0.5ep" and f.drawn
    assert {p.variant for p in f.points if p.qualifies} == {"lr=1@0.5ep"}
    assert [x.variant for x in f.not_benchmarked] == ["lr=9@1ep"]
    # a margin too narrow for the unchanged point's own interval: nothing qualifies
    narrow = build_frontier(("spider", "mmlu"), a.comparisons, a.continuous, facts, margin=0.005)
    assert narrow.best is None and narrow.why_none.startswith("no point qualifies")
    # a wide margin lets the larger gain with its 10-point loss through
    wide = build_frontier(("spider", "mmlu"), a.comparisons, a.continuous, facts, margin=0.2)
    assert wide.best == "lr=1@1ep"


def test_the_runs_p_values_are_corrected_together():
    from statsmodels.stats.multitest import multipletests

    rows = _comparisons([("lr=1@0.5ep", 8, 11), ("lr=1@1ep", 6, 9)], n=40)
    a = analyze(rows, baseline="base", tasks=("spider", "mmlu"), facts=_sweep_facts(SWEEP[:2]))
    raw = [c.paired.mcnemar_p for c in a.comparisons]
    assert [c.p_holm for c in a.comparisons] == pytest.approx(list(multipletests(raw, method="holm")[1]))
    assert [c.q_bh for c in a.comparisons] == pytest.approx(list(multipletests(raw, method="fdr_bh")[1]))


def test_a_gain_that_is_not_significant_is_never_the_best_and_one_adapter_draws_no_frontier():
    from harness.report.analysis import conclusion

    # --limit 5: one adapter, five items; +0 on Spider and -20 points on MMLU
    rows = _comparisons([("ft", 0, 1)], n=5)
    rows += [row("ft-3shot", "spider", i, "wrong") for i in range(5)]
    rows += [row("ft-3shot", "mmlu", i, "passed" if i < 1 else "wrong") for i in range(5)]
    facts = {v: AdapterFacts(v, "adapters/default", "succeeded") for v in ("ft", "ft-3shot")}
    a = analyze(rows, baseline="base", tasks=("spider", "mmlu"), facts=facts)
    assert a.frontier.best is None and not a.frontier.drawn
    assert a.frontier.why_none == "no point gains significantly on Spider"
    text = conclusion(a)
    assert "No point is called the best trade-off: no point gains significantly" in text
    assert "at n = 5 no MMLU difference could be significant" in text


def test_the_conclusion_states_gain_cost_certainty_and_what_n_cannot_see():
    from harness.report.analysis import conclusion

    rows = _comparisons([("lr=1@0.5ep", 60, 100), ("lr=1@1ep", 80, 80)], n=200)
    a = analyze(rows, baseline="base", tasks=("spider", "mmlu"), facts=_sweep_facts(SWEEP[:2]))
    text = conclusion(a)
    assert text.startswith(
        "Fine-tuning (lr=1@0.5ep, against base) changed Spider execution accuracy by +20.0"
    )
    assert "MMLU accuracy by +0.0 points [-1.0, +1.0] on 200 questions (not significant" in text
    assert "An MMLU loss of 1.0 points or more is excluded" in text
    assert "Best trade-off: lr=1@0.5ep" in text
    assert "one training run per point" in text
    # 0 discordant of 200: the exact test's own floor, 6 items = 3.0 points
    assert "at n = 200 only an MMLU change of about 3.0 points or more would be detected" in text


def test_frontier_figure_and_labels_do_not_overprint(tmp_path):
    from harness.report.figure import _new_figure, place_labels, plot_frontier

    fig, (ax,) = _new_figure(1, 6)
    points = [(x * 0.1, 0.0, f"variant-number-{x}", "black") for x in range(8)]  # crowded on one line
    ax.plot([p[0] for p in points], [p[1] for p in points], "o")
    ax.set_xlim(-1, 2)
    ax.set_ylim(-1, 1)
    texts = place_labels(ax, points)
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in texts]
    overlaps = [(i, j) for i in range(len(boxes)) for j in range(i) if boxes[i].overlaps(boxes[j])]
    assert not overlaps

    rows = _comparisons([("lr=1@0.5ep", 12, 10), ("lr=1@1ep", 15, 8)], n=20)
    facts = {
        v: AdapterFacts(v, "a", "succeeded", point="lr=1", epochs_at=float(v.split("@")[1][:-2]))
        for v in ("lr=1@0.5ep", "lr=1@1ep")
    }
    a = analyze(rows, baseline="base", tasks=("spider", "mmlu"), facts=facts)
    path = plot_frontier(a.frontier, tmp_path / "frontier.png", baseline="base", title="t")
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_a_narrowed_run_draws_no_empty_panel(tmp_path, monkeypatch):
    from harness.report import figure
    from harness.report.figure import plot_tradeoff

    rows = [row("base", "mmlu", i, "passed") for i in range(5)]  # one task, one variant: no trade-off panel
    a = analyze(rows, baseline="base", tasks=("mmlu",), facts={})
    monkeypatch.setattr(figure, "_tradeoff_panel", lambda *a, **k: pytest.fail("drew an empty panel"))
    path = plot_tradeoff(a, tmp_path / "t.png")
    assert path.read_bytes()[:4] == b"\x89PNG"
    assert math.isfinite(a.summary[0].overall.accuracy)


def _seed_sweep_rows(n=200):
    """A baseline and a two-setting sweep, three seeds each; lr=1 gains ~+20 Spider points with
    seeds that disagree, and costs no MMLU accuracy; lr=2 gains nothing."""
    rows = [row("base", "spider", i, "passed" if i < 20 else "wrong") for i in range(n)]
    rows += [row("base", "mmlu", i, "passed" if i < 100 else "wrong", gold_prob=0.3) for i in range(n)]
    for lr, spider_by_seed in (("1", (50, 60, 70)), ("2", (20, 21, 20))):
        for seed, spider in enumerate(spider_by_seed):
            v = f"lr={lr},seed={seed}@1ep"
            rows += [row(v, "spider", i, "passed" if i < spider else "wrong") for i in range(n)]
            rows += [
                row(v, "mmlu", i, "passed" if i < 100 else "wrong", gold_prob=0.3 + 0.002 * seed)
                for i in range(n)
            ]
    return rows


def _seed_facts():
    return {
        f"lr={lr},seed={seed}@1ep": AdapterFacts(
            f"lr={lr},seed={seed}@1ep",
            "a",
            "succeeded",
            point=f"learning_rate={lr},seed={seed}",
            values=(("train.learning_rate", lr), ("seed", str(seed))),
            epochs_at=1.0,
        )
        for lr in ("1", "2")
        for seed in range(3)
    }


def test_seeds_are_pooled_per_setting_with_their_spread_and_a_seed_aware_interval():
    from harness.report.analysis import conclusion
    from harness.report.frontier import setting_of

    assert setting_of("lr=2e-4,seed=1@1ep") == "lr=2e-4@1ep" == setting_of("seed=1,lr=2e-4@1ep")
    a = analyze(_seed_sweep_rows(), baseline="base", tasks=("spider", "mmlu"), facts=_seed_facts())
    groups = {g.setting: g for g in a.frontier.groups}
    assert set(groups) == {"lr=1@1ep", "lr=2@1ep"}
    g = groups["lr=1@1ep"]
    assert g.gain.per_seed == pytest.approx((0.15, 0.20, 0.25)) and g.gain.mean == pytest.approx(0.20)
    assert g.gain.spread == pytest.approx(0.05)
    # the interval over seeds and items is wider than any one seed's item-only interval
    one_seed = next(c for c in a.comparisons if c.variant == "lr=1,seed=1@1ep" and c.benchmark == "spider")
    assert g.gain.ci_high - g.gain.ci_low > one_seed.paired.delta_ci_high - one_seed.paired.delta_ci_low
    assert a.frontier.best == "lr=1@1ep" and g.qualifies and not groups["lr=2@1ep"].qualifies
    text = conclusion(a)
    assert "Fine-tuning (lr=1@1ep, against base)" in text and "seed mean of 3" in text
    assert "over both the training seeds and the items" in text


def test_the_null_variant_sets_the_noise_floor_and_flags_changes_below_it():
    rows = [row("base", "mmlu", i, "passed" if i < 20 else "wrong", gold_prob=0.30) for i in range(40)]
    # the baseline re-scored at another batch size: tiny, item-level jitter
    rows += [
        row("base-b1", "mmlu", i, "passed" if i < 20 else "wrong", gold_prob=0.30 + 0.004 * (-1) ** i)
        for i in range(40)
    ]
    rows += [row("small", "mmlu", i, "passed" if i < 20 else "wrong", gold_prob=0.301) for i in range(40)]
    rows += [row("large", "mmlu", i, "passed" if i < 20 else "wrong", gold_prob=0.35) for i in range(40)]
    a = analyze(rows, baseline="base", tasks=("mmlu",), facts={}, null_variants=("base-b1",))
    floor = a.noise[("mmlu", "gold_prob")]
    null = next(c for c in a.continuous if c.variant == "base-b1")
    assert floor == pytest.approx(max(abs(null.result.ci_low), abs(null.result.ci_high)))
    assert ("small", "mmlu", "gold_prob") in a.within_noise
    assert ("large", "mmlu", "gold_prob") not in a.within_noise
    # the null's own tests are not in the family of the run's claims
    assert math.isnan(null.p_holm)
    assert all(math.isnan(c.p_holm) for c in a.comparisons if c.variant == "base-b1")
