"""Everything a run's report and gates need, computed once from its result rows.

:func:`analyze` gathers: accuracies and paired comparisons (harness/numbers/summary.py), the continuous
measures, which variants repeat another's predictions, the adapters' training facts and the
learning-forgetting frontier (harness/report/frontier.py), and why answers were wrong. The report
(harness/report/markdown.py, results_json.py, terminal.py) renders an :class:`Analysis`; the gates
(harness/report/gates.py) decide with it.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from harness.formatting import interval, p_value, points
from harness.numbers.stats import adjust_pvalues, minimum_detectable_difference
from harness.numbers.summary import (
    Comparison,
    Continuous,
    PairSummary,
    compare_to_baseline,
    continuous_measures,
    summarize,
)
from harness.report.frontier import (
    DEFAULT_MARGIN,
    AdapterFacts,
    Frontier,
    FrontierPoint,
    build_frontier,
    roles,
    seed_groups,
    split_of,
    task_name,
)
from harness.tasks import TASKS, declared_measures, subgroup_fields

MEASURES = declared_measures()  # the tasks' continuous measures (Report.measures), by name


@dataclass(frozen=True)
class Analysis:
    baseline: str
    summary: list[PairSummary]
    comparisons: list[Comparison]
    continuous: list[Continuous] = field(default_factory=list)
    same: Mapping[tuple[str, str], str] = field(
        default_factory=dict
    )  # (variant, task) -> same predictions as
    facts: Mapping[str, AdapterFacts] = field(default_factory=dict)
    frontier: Frontier | None = None
    why_wrong: Mapping[tuple[str, str], Counter] = field(default_factory=dict)  # (variant, task) -> kinds
    predicted: Mapping[tuple[str, str], Counter] = field(default_factory=dict)  # (variant, task) -> answers
    # the null variants (the baseline re-scored another way) and what their "changes" were
    null_variants: tuple[str, ...] = ()
    noise: Mapping[tuple[str, str], float] = field(default_factory=dict)  # (task, measure) -> floor
    within_noise: frozenset = frozenset()  # (variant, task, measure): a change below the floor

    def is_null(self, variant: str) -> bool:
        return variant in self.null_variants


def why_wrong(rows: Sequence) -> dict[tuple[str, str], Counter]:
    """(variant, task) -> how many wrong answers of each kind (the task says what kinds it has:
    Spider's "no SQL", "SQL error", "wrong rows", ...; MMLU's "wrong letter", "not a choice")."""
    out: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for r in rows:
        if r.outcome == "wrong" and r.benchmark in TASKS:
            out[(r.variant, r.benchmark)][TASKS[r.benchmark].failure_kind(r.reason)] += 1
    return dict(out)


def predicted_answers(rows: Sequence) -> dict[tuple[str, str], Counter]:
    """(variant, task) -> how often each answer was given, for tasks with a closed set of answers
    (MMLU's letters: a model that never answers D shows here, not in its accuracy)."""
    out: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for r in rows:
        if (
            r.benchmark in TASKS
            and TASKS[r.benchmark].report.answer_choices
            and r.outcome in ("passed", "wrong")
        ):
            out[(r.variant, r.benchmark)][r.prediction or "<empty>"] += 1
    return dict(out)


def corrected(
    comparisons: Sequence[Comparison], continuous: Sequence[Continuous], nulls: Sequence[str] = ()
) -> tuple[list[Comparison], list[Continuous]]:
    """The run's tests with their p-values corrected across all of them: every accuracy
    comparison (exact McNemar) and every paired continuous change (t-test) is one member of the
    family; a KL is a size, not a test, and is not a member. Holm's adjustment decides what the
    report calls significant; Benjamini-Hochberg's q-value is shown beside it. A null variant's
    tests (``nulls``: the baseline re-scored) calibrate the noise floor and are not members."""
    claims = [c for c in comparisons if c.variant not in nulls]
    tested = [c for c in continuous if not MEASURES[c.measure].is_size and c.variant not in nulls]
    tests = [c.paired.mcnemar_p for c in claims] + [c.result.p_value for c in tested]
    holm, bh = adjust_pvalues(tests)
    n = len(claims)
    by_claim = {id(c): (h, q) for c, h, q in zip(claims, holm[:n], bh[:n])}
    out_comparisons = [
        replace(c, p_holm=by_claim[id(c)][0], q_bh=by_claim[id(c)][1]) if id(c) in by_claim else c
        for c in comparisons
    ]
    adjusted = {id(c): (h, q) for c, h, q in zip(tested, holm[n:], bh[n:])}
    out_continuous = [
        replace(c, p_holm=adjusted[id(c)][0], q_bh=adjusted[id(c)][1]) if id(c) in adjusted else c
        for c in continuous
    ]
    return out_comparisons, out_continuous


def analyze(
    rows: Sequence,
    *,
    baseline: str,
    tasks: Sequence[str],
    facts: Mapping[str, AdapterFacts],
    same: Mapping[tuple[str, str], str] | None = None,
    margin: float = DEFAULT_MARGIN,
    null_variants: Sequence[str] = (),
) -> Analysis:
    """``same``: (variant, task) -> an earlier variant whose measurement it repeats (the
    experiment's ``same_measurements``), not compared with it. ``margin``: the generalization
    accuracy loss (a fraction) a trade-off may reach and still be non-inferior.
    ``null_variants``: the baseline re-scored another way (the experiment's ``noise_floor``
    variants): their changes are the noise floor, outside the family of tests."""
    same = dict(same or {})
    nulls = tuple(v for v in null_variants if v != baseline)
    comparisons, continuous = corrected(
        compare_to_baseline(rows, baseline, same), continuous_measures(rows, baseline, same, MEASURES), nulls
    )
    ran = {r.variant for r in rows}
    shown = {v: f for v, f in facts.items() if v in ran or not f.benchmarkable}
    noise = noise_floor(continuous, nulls)
    return Analysis(
        baseline=baseline,
        summary=summarize(rows, subgroup_fields()),
        comparisons=comparisons,
        continuous=continuous,
        same=same,
        facts=shown,
        frontier=build_frontier(
            tasks,
            comparisons,
            continuous,
            shown,
            margin=margin,
            groups=seed_groups(rows, baseline, tasks, shown),
            split=split_of(rows, spec) if (spec := roles(tasks)[0]) else "",
        ),
        why_wrong=why_wrong(rows),
        predicted=predicted_answers(rows),
        null_variants=nulls,
        noise=noise,
        within_noise=frozenset(
            (c.variant, c.benchmark, c.measure)
            for c in continuous
            if c.variant not in nulls
            and (c.benchmark, c.measure) in noise
            and _size_of(c) <= noise[(c.benchmark, c.measure)]
        ),
    )


def _size_of(c: Continuous) -> float:
    """How far a measure moved: a change's absolute value, a divergence itself."""
    return c.result.delta if MEASURES[c.measure].is_size else abs(c.result.delta)


def noise_floor(continuous: Sequence[Continuous], nulls: Sequence[str]) -> dict[tuple[str, str], float]:
    """(task, measure) -> the noise floor: the largest "change" a null variant's 95% interval
    admits (the farther bound from 0; for a divergence, its upper bound), the largest over the
    null variants. A real change no larger is within noise: scoring the same model again would
    move it as much."""
    out: dict[tuple[str, str], float] = {}
    for c in continuous:
        if c.variant not in nulls:
            continue
        m = c.result
        bounds = [x for x in (m.ci_low, m.ci_high, m.delta) if math.isfinite(x)]
        if not bounds:
            continue
        floor = max(bounds) if MEASURES[c.measure].is_size else max(abs(x) for x in bounds)
        key = (c.benchmark, c.measure)
        out[key] = max(out.get(key, 0.0), floor)
    return out


# -- the conclusion -------------------------------------------------------------------------------


def _significance(c: Comparison) -> str:
    word = "significant" if c.significant else "not significant"
    return f"{word}: Holm-adjusted {_p(c.p_holm)}"


def _title(task: str) -> str:
    return TASKS[task].report.title if task in TASKS else f"{task} accuracy"


def _change(c: Comparison, task: str, unit: str) -> str:
    p = c.paired
    return (
        f"{_title(task)} by {points(p.delta)} points {interval(p.delta_ci_low, p.delta_ci_high, points)} "
        f"on {p.n} {unit} ({_significance(c)})"
    )


def _unseen(c: Comparison, task: str) -> str:
    """What the paired test on this many items cannot see."""
    p = c.paired
    mde = minimum_detectable_difference(p.n, p.only_reference + p.only_variant)
    if math.isnan(mde):
        return f"{task_name(task)} had no shared items"
    if math.isinf(mde):
        return (
            f"at n = {p.n} no {task_name(task)} difference could be significant (6 items must move one way)"
        )
    return (
        f"at n = {p.n} only {_article(task_name(task))} change of about {100 * mde:.1f} points or more "
        "would be detected (80% power)"
    )


def _featured(f: Frontier) -> FrontierPoint | None:
    """The point the conclusion speaks of: the best trade-off, else the largest defined gain."""
    defined = [p for p in f.points if not math.isnan(p.gain.paired.delta)]
    if f.best is not None:
        return next(p for p in f.points if p.variant == f.best)
    return max(defined, key=lambda p: p.gain.paired.delta, default=None)


def conclusion(analysis: Analysis) -> str:
    """The run's answer in one paragraph: what fine-tuning bought on the specialization task,
    what it cost on the generalization task (each with its interval and Holm-corrected
    significance), which point is the best trade-off or why none is, how sure the numbers are,
    and what the sample size cannot see. The report opens with it; the terminal prints it."""
    f = analysis.frontier
    base = analysis.baseline
    if f is not None and f.groups:
        return _seeds_conclusion(analysis, f, f.specialization, f.generalization)
    point = _featured(f) if f is not None else None
    if f is None or point is None:
        return (
            "No fine-tuned variant was measured on both a specialization and a generalization task, "
            f"so there is no trade-off to state; the tables compare each variant with {base}."
        )
    spec, gen = f.specialization, f.generalization
    spec_name, gen_name = task_name(spec), task_name(gen)
    out = [
        f"Fine-tuning ({point.variant}, against {base}) changed {_change(point.gain, spec, 'items')} "
        f"and {_change(point.cost, gen, 'questions')}."
    ]
    if point.continuous is not None:
        m = point.continuous
        out.append(
            f"The probability of the right {gen_name} answer among the choices moved by "
            f"{100 * m.delta:+.2f} points {interval(m.ci_low, m.ci_high, lambda x: f'{100 * x:+.2f}')}."
        )
    low = point.cost.paired.delta_ci_low
    margin = points(f.margin)[1:]
    if point.non_inferior:
        out.append(f"{_article(gen_name, capital=True)} loss of {margin} points or more is excluded (95%).")
    elif not math.isnan(low):
        out.append(
            f"{_article(gen_name, capital=True)} loss of up to {-100 * low:.1f} points is not excluded."
        )
    if f.best is not None:
        out.append(
            f"Best trade-off: {f.best}, the largest {spec_name} gain among the points whose gain is "
            f"significant and whose {gen_name} change is non-inferior at {margin} points."
        )
    else:
        out.append(f"No point is called the best trade-off: {f.why_none}.")
    out.append(
        "How sure: 95% intervals over the sampling of the items, from one training run per point "
        "(run-to-run variance is not in them); p-values corrected across the run's "
        f"{_family_size(analysis)} tests (Holm)."
    )
    out.append(f"What n cannot see: {_unseen(point.cost, gen)}; {_unseen(point.gain, spec)}.")
    out += _noise_sentence(analysis)
    out += [f.selection_note] if f.selection_note else []
    return " ".join(out)


def _noise_sentence(analysis: Analysis) -> list[str]:
    if not analysis.null_variants:
        return []
    flagged = len(analysis.within_noise)
    return [
        f"Noise floor: {', '.join(analysis.null_variants)} re-scored the baseline; "
        f"{flagged} continuous change(s) no larger than its are flagged as within noise."
    ]


def _seed_change(c, title: str, unit: str) -> str:
    return (
        f"{title} by {points(c.mean)} points {interval(c.ci_low, c.ci_high, points)} "
        f"(seed mean of {c.seeds}; seeds' SD {100 * c.spread:.1f} points; {c.n} {unit})"
    )


def _seeds_conclusion(analysis: Analysis, f: Frontier, spec: str, gen: str) -> str:
    """The conclusion of a sweep trained with several seeds per setting: seed means, with
    intervals over seeds and items."""
    spec_name, gen_name = task_name(spec), task_name(gen)
    group = next((g for g in f.groups if g.setting == f.best), None) or max(
        f.groups, key=lambda g: g.gain.mean if math.isfinite(g.gain.mean) else -math.inf
    )
    out = [
        f"Fine-tuning ({group.setting}, against {analysis.baseline}) changed "
        f"{_seed_change(group.gain, _title(spec), 'items')}, "
        f"{'significant' if group.gain_significant else 'not significant'} (Holm-adjusted "
        f"{_p(group.gain_p_holm)}), and {_seed_change(group.cost, _title(gen), 'questions')}."
    ]
    margin = points(f.margin)[1:]
    if group.non_inferior:
        out.append(f"{_article(gen_name, capital=True)} loss of {margin} points or more is excluded (95%).")
    elif math.isfinite(group.cost.ci_low):
        out.append(
            f"{_article(gen_name, capital=True)} loss of up to {-100 * group.cost.ci_low:.1f} points "
            "is not excluded."
        )
    if f.best is not None:
        out.append(
            f"Best trade-off: {f.best}, the largest {spec_name} seed-mean gain among the settings whose "
            f"gain is significant and whose {gen_name} change is non-inferior at {margin} points."
        )
    else:
        out.append(f"No setting is called the best trade-off: {f.why_none}.")
    out.append(
        "How sure: 95% intervals from a bootstrap over both the training seeds and the items, so "
        f"run-to-run variance is in them; {len(f.groups)} settings' tests corrected together (Holm)."
    )
    out += _noise_sentence(analysis)
    out += [f.selection_note] if f.selection_note else []
    return " ".join(out)


def _family_size(analysis: Analysis) -> int:
    return sum(math.isfinite(c.p_holm) for c in analysis.comparisons) + sum(
        math.isfinite(c.p_holm) for c in analysis.continuous
    )


def _article(word: str, capital: bool = False) -> str:
    """ "a Spider", "an MMLU": by the sound of the first letter (an acronym's is spelt out)."""
    vowel = word[:1].upper() in ("AEFHILMNORSX" if word.isupper() else "AEIOU")
    article = "an" if vowel else "a"
    return f"{article.capitalize() if capital else article} {word}"


def _p(p: float) -> str:
    """ "p 0.03", "p < 0.001" """
    text = p_value(p)
    return f"p < {text[1:]}" if text.startswith("<") else f"p {text}"
