"""Everything a run's report and gates need, computed once from its result rows.

:func:`analyze` gathers: accuracies and paired comparisons (harness/summary.py), the continuous
measures, which variants repeat another's predictions, the adapters' training facts and the
learning-forgetting frontier (harness/frontier.py), and why answers were wrong. The report
(harness/report.py) renders an :class:`Analysis`; the gates (harness/gates.py) decide with it.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from harness.frontier import AdapterFacts, Frontier, build_frontier
from harness.summary import (
    Comparison,
    Continuous,
    PairSummary,
    compare_to_baseline,
    continuous_measures,
    summarize,
)
from harness.tasks import TASKS


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
            and TASKS[r.benchmark].report.closed_answers
            and r.outcome in ("passed", "wrong")
        ):
            out[(r.variant, r.benchmark)][r.prediction or "<empty>"] += 1
    return dict(out)


def analyze(
    rows: Sequence,
    *,
    baseline: str,
    tasks: Sequence[str],
    facts: Mapping[str, AdapterFacts],
    same: Mapping[tuple[str, str], str] | None = None,
    max_cost: float | None = None,
) -> Analysis:
    """``same``: (variant, task) -> an earlier variant whose measurement it repeats (the
    experiment's ``same_measurements``), not compared with it."""
    same = dict(same or {})
    comparisons = compare_to_baseline(rows, baseline, same)
    continuous = continuous_measures(rows, baseline, same)
    ran = {r.variant for r in rows}
    shown = {v: f for v, f in facts.items() if v in ran or not f.benchmarkable}
    return Analysis(
        baseline=baseline,
        summary=summarize(rows),
        comparisons=comparisons,
        continuous=continuous,
        same=same,
        facts=shown,
        frontier=build_frontier(tasks, comparisons, continuous, shown, max_cost=max_cost),
        why_wrong=why_wrong(rows),
        predicted=predicted_answers(rows),
    )
