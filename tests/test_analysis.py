"""A run's analysis: continuous measures against scipy, repeated predictions, why answers were
wrong, errored variants, the frontier, and figures whose labels do not overprint."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from scipy import stats as sps
from scipy.special import logsumexp, rel_entr

from harness.analysis import analyze
from harness.frontier import AdapterFacts, build_frontier
from harness.results import CaseResult
from harness.summary import compare_to_baseline, continuous_measures, summarize


def row(variant, task, item, outcome, prediction="A", **extra):
    group = "stem" if task == "mmlu" else "easy"
    return CaseResult(variant, task, str(item), group, outcome, "", prediction, None, extra)


def mmlu_rows(variant, seed, n=30, shift=0.0):
    rng = random.Random(seed)
    out = []
    for i in range(n):
        scores = [rng.gauss(-2, 1) + (shift if j == 0 else 0) for j in range(4)]
        best = "ABCD"[max(range(4), key=lambda j: scores[j])]
        gold = scores[0] - logsumexp(scores)  # the gold answer is A
        out.append(
            row(
                variant,
                "mmlu",
                i,
                "passed" if best == "A" else "wrong",
                best,
                letter_scores=dict(zip("ABCD", scores)),
                gold_logprob=gold,
            )
        )
    return out


def test_continuous_measures_equal_scipy():
    base, ft = mmlu_rows("base", 1), mmlu_rows("ft", 2, shift=0.7)
    kl_rows = [row("ft", "spider", i, "wrong", "SELECT 1", kl_to_base=0.01 * (i + 1)) for i in range(10)]
    kl_rows += [row("base", "spider", i, "wrong", "SELECT 2") for i in range(10)]
    found = {
        (c.variant, c.benchmark, c.measure): c.result
        for c in continuous_measures(base + ft + kl_rows, "base")
    }

    g = found[("ft", "mmlu", "gold_logprob")]
    v = np.array([r.extra["gold_logprob"] for r in ft])
    b = np.array([r.extra["gold_logprob"] for r in base])
    test = sps.ttest_rel(v, b)
    ci = test.confidence_interval()
    assert (g.n, g.delta, g.ci_low, g.ci_high, g.p_value) == pytest.approx(
        (30, (v - b).mean(), ci.low, ci.high, test.pvalue), rel=1e-9
    )

    kl = found[("ft", "mmlu", "answer_kl")]
    expected = []
    for rb, rv in zip(base, ft):
        p = np.array(list(rb.extra["letter_scores"].values()))
        q = np.array(list(rv.extra["letter_scores"].values()))
        expected.append(rel_entr(np.exp(p - logsumexp(p)), np.exp(q - logsumexp(q))).sum())
    one = sps.ttest_1samp(expected, 0.0)
    assert (kl.delta, kl.ci_low, kl.ci_high, kl.p_value) == pytest.approx(
        (np.mean(expected), *one.confidence_interval(), one.pvalue), rel=1e-9
    )
    assert kl.delta > 0

    spider_kl = found[("ft", "spider", "kl_to_base")]
    values = [0.01 * (i + 1) for i in range(10)]
    one = sps.ttest_1samp(values, 0.0)
    assert (spider_kl.n, spider_kl.delta, spider_kl.ci_low) == pytest.approx(
        (10, np.mean(values), one.confidence_interval().low)
    )
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


def _comparisons(points):
    """Comparisons from (variant, spider right count, mmlu right count) over 20 items each."""
    rows = [row("base", t, i, "passed" if i < 10 else "wrong") for t in ("spider", "mmlu") for i in range(20)]
    for variant, spider, mmlu in points:
        rows += [row(variant, "spider", i, "passed" if i < spider else "wrong") for i in range(20)]
        rows += [row(variant, "mmlu", i, "passed" if i < mmlu else "wrong") for i in range(20)]
    return rows


def test_the_frontier_marks_the_pareto_points_and_names_the_best():
    rows = _comparisons(
        [("lr=1@0.5ep", 12, 10), ("lr=1@1ep", 15, 8), ("lr=2@1ep", 13, 7), ("lr=3@1ep", 11, 11)]
    )
    facts = {
        v: AdapterFacts(v, f"a/{v}", "succeeded", point=v.split("@")[0], epochs_at=1.0)
        for v in ("lr=1@0.5ep", "lr=1@1ep", "lr=2@1ep", "lr=3@1ep")
    }
    facts["lr=9@1ep"] = AdapterFacts("lr=9@1ep", "a/lr=9", "diverged", "loss became nan at log 9", 9, 28)
    a = analyze(rows, baseline="base", tasks=("spider", "mmlu"), facts=facts)
    f = a.frontier
    front = {p.variant for p in f.points if p.on_front}
    assert front == {"lr=1@0.5ep", "lr=1@1ep", "lr=3@1ep"}  # lr=2 is beaten by lr=1@1ep on both axes
    assert f.best == "lr=1@1ep"
    assert [x.variant for x in f.not_benchmarked] == ["lr=9@1ep"]
    bounded = build_frontier(("spider", "mmlu"), a.comparisons, a.continuous, facts, max_cost=0.05)
    assert bounded.best == "lr=1@0.5ep"  # lr=1@1ep costs 10 points of MMLU: over the bound


def test_frontier_figure_and_labels_do_not_overprint(tmp_path):
    from harness.figure import _new_figure, place_labels, plot_frontier

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

    rows = _comparisons([("lr=1@0.5ep", 12, 10), ("lr=1@1ep", 15, 8)])
    facts = {
        v: AdapterFacts(v, "a", "succeeded", point="lr=1", epochs_at=float(v.split("@")[1][:-2]))
        for v in ("lr=1@0.5ep", "lr=1@1ep")
    }
    a = analyze(rows, baseline="base", tasks=("spider", "mmlu"), facts=facts)
    path = plot_frontier(a.frontier, tmp_path / "frontier.png", baseline="base", title="t")
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_a_narrowed_run_draws_no_empty_panel(tmp_path, monkeypatch):
    from harness import figure
    from harness.figure import plot_tradeoff

    rows = [row("base", "mmlu", i, "passed") for i in range(5)]  # one task, one variant: no trade-off panel
    a = analyze(rows, baseline="base", tasks=("mmlu",), facts={})
    monkeypatch.setattr(figure, "_tradeoff_panel", lambda *a, **k: pytest.fail("drew an empty panel"))
    path = plot_tradeoff(a, tmp_path / "t.png")
    assert path.read_bytes()[:4] == b"\x89PNG"
    assert math.isfinite(a.summary[0].overall.accuracy)


def test_the_frontiers_cost_bound_is_on_accuracy_when_the_front_is_drawn_by_log_probability():
    rows = []
    for variant, spider, mmlu, logp in (("base", 10, 25, -1.0), ("v1", 12, 22, -0.9), ("v2", 11, 25, -1.1)):
        rows += [row(variant, "spider", i, "passed" if i < spider else "wrong") for i in range(20)]
        rows += [
            row(variant, "mmlu", i, "passed" if i < mmlu else "wrong", gold_logprob=logp) for i in range(50)
        ]
    facts = {v: AdapterFacts(v, "a", "succeeded") for v in ("v1", "v2")}
    # v1 dominates v2 by log-probability, but costs 6 accuracy points
    strict = analyze(rows, baseline="base", tasks=("spider", "mmlu"), facts=facts, max_cost=0.05)
    assert strict.frontier.best is None and "mmlu accuracy change" in strict.frontier.best_rule
    loose = analyze(rows, baseline="base", tasks=("spider", "mmlu"), facts=facts, max_cost=0.07)
    assert loose.frontier.best == "v1"
