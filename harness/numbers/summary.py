"""A run's numbers, from its result rows: accuracies per (variant, task) and comparisons.

Pure functions of :class:`harness.records.results.CaseResult` rows (anything with their fields):

- per (variant, task): n, correct, accuracy with its 95% Wilson interval, by group (Spider
  hardness, MMLU category) and the subgroup the task declares (MMLU's subject), and the skips
  and errors with reasons.
  A skipped item is not in n but is counted with its reason; an item that errored counts as
  wrong and is counted as an error too;
- per non-baseline variant and task: the paired comparison with the baseline on the items
  both scored (harness/numbers/proportions.py: Newcombe's interval, exact McNemar).

The report renders these (harness/report/markdown.py, terminal.py, results_json.py); the gates
(harness/report/gates.py) decide with them.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from harness.numbers.stats import (
    ALPHA,
    Accuracy,
    Paired,
    PairedMean,
    bootstrap_mean,
    categorical_kl,
    paired,
    paired_mean_difference,
    wilson,
)


@dataclass(frozen=True)
class PairSummary:
    """One (variant, task): overall accuracy, per group and subgroup, skips and errors."""

    variant: str
    benchmark: str
    overall: Accuracy
    by_group: dict[str, Accuracy] = field(default_factory=dict)
    by_subject: dict[str, Accuracy] = field(default_factory=dict)
    skipped: int = 0
    skip_reasons: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    error_reasons: dict[str, int] = field(default_factory=dict)

    @property
    def errored(self) -> bool:
        """Every scored item errored (the model never loaded, say): there is no accuracy."""
        return self.overall.n > 0 and self.errors == self.overall.n


@dataclass(frozen=True)
class Comparison:
    """A variant against a reference variant on one task, paired on shared items."""

    variant: str
    reference: str
    benchmark: str
    paired: Paired
    # the McNemar p-value corrected across the run's tests (harness/report/analysis.py): Holm's
    # family-wise and Benjamini-Hochberg's false-discovery-rate adjustments
    p_holm: float = math.nan
    q_bh: float = math.nan

    @property
    def significant(self) -> bool:
        """Significant after Holm's correction across the run's tests."""
        return self.p_holm < ALPHA


def _accuracy_of(rows: Sequence) -> Accuracy:
    return wilson(sum(r.outcome == "passed" for r in rows), len(rows))


def summarize(rows: Iterable, subgroups: Mapping[str, str] | None = None) -> list[PairSummary]:
    """One summary per (variant, task), sorted by task then variant. ``subgroups``: task -> the
    extra field that gives its finer grouping, as the task declares it (``Report.subgroup_field``);
    a task not in it has none."""
    by_pair: dict[tuple[str, str], list] = defaultdict(list)
    for r in rows:
        by_pair[(r.variant, r.benchmark)].append(r)
    out = []
    for (variant, benchmark), pair_rows in by_pair.items():
        scored = [r for r in pair_rows if r.outcome != "skipped"]
        groups: dict[str, list] = defaultdict(list)
        by_subgroup: dict[str, list] = defaultdict(list)
        subgroup = (subgroups or {}).get(benchmark, "")
        for r in scored:
            groups[r.group or "unknown"].append(r)
            value = (r.extra or {}).get(subgroup) if subgroup else None
            if value:
                by_subgroup[value].append(r)
        out.append(
            PairSummary(
                variant=variant,
                benchmark=benchmark,
                overall=_accuracy_of(scored),
                by_group={g: _accuracy_of(rs) for g, rs in sorted(groups.items())},
                by_subject={s: _accuracy_of(rs) for s, rs in sorted(by_subgroup.items())},
                skipped=len(pair_rows) - len(scored),
                skip_reasons=dict(
                    Counter(r.reason or "(no reason given)" for r in pair_rows if r.outcome == "skipped")
                ),
                errors=sum(r.outcome == "error" for r in scored),
                error_reasons=dict(
                    Counter(r.reason or "(no reason given)" for r in scored if r.outcome == "error")
                ),
            )
        )
    return sorted(out, key=lambda s: (s.benchmark, s.variant))


def verdicts(rows: Iterable, variant: str, benchmark: str) -> dict[str, bool]:
    """item id -> right? for the scored (not skipped) rows of one (variant, task)."""
    return {
        r.item_id: r.outcome == "passed"
        for r in rows
        if r.variant == variant and r.benchmark == benchmark and r.outcome != "skipped"
    }


def compare(rows: Sequence, variant: str, reference: str, benchmark: str) -> Comparison:
    return Comparison(
        variant,
        reference,
        benchmark,
        paired(verdicts(rows, variant, benchmark), verdicts(rows, reference, benchmark)),
    )


def _errored_pairs(rows: Iterable) -> set[tuple[str, str]]:
    scored: dict[tuple[str, str], list[str]] = defaultdict(list)
    for r in rows:
        if r.outcome != "skipped":
            scored[(r.variant, r.benchmark)].append(r.outcome)
    return {pair for pair, outcomes in scored.items() if outcomes and all(o == "error" for o in outcomes)}


def _not_compared(rows: Iterable, baseline: str, same: Mapping[tuple[str, str], str] | None) -> set:
    """(variant, task) pairs left out of comparisons with ``baseline``: every item errored, or
    the predictions are the baseline's own."""
    return _errored_pairs(rows) | {p for p, v in (same or {}).items() if v == baseline}


def compare_to_baseline(
    rows: Sequence, baseline: str, same: Mapping[tuple[str, str], str] | None = None
) -> list[Comparison]:
    """Every other variant against ``baseline``, on each task both ran; not a variant whose
    measurement is the baseline's own (``same``: (variant, task) -> the variant it repeats), nor
    a pair whose every item errored."""
    pairs = {(r.variant, r.benchmark) for r in rows}
    skip = _not_compared(rows, baseline, same)
    return [
        compare(rows, variant, baseline, benchmark)
        for benchmark, variant in sorted((b, v) for v, b in pairs)
        if variant != baseline
        and (baseline, benchmark) in pairs
        and (variant, benchmark) not in skip
        and (baseline, benchmark) not in skip
    ]


# -- continuous measures: what accuracy cannot see -----------------------------------------------


MEASURE_KINDS = ("paired", "kl", "mean")  # the changes first, then the sizes: the report's order


@dataclass(frozen=True)
class Measure:
    """A continuous measure: its name in the report, the row field it reads, how it is compared
    with the baseline ("paired": mean paired change, t interval and test; "kl": the mean KL of
    the variant's answer distribution from the baseline's; "mean": the mean of a value the engine
    computed against the base model), and its definition, printed once in the report."""

    title: str
    field: str
    how: Literal["paired", "kl", "mean"]
    definition: str
    short: str = ""  # a table column's name for it ("" : the title)

    def __post_init__(self) -> None:
        if self.how not in MEASURE_KINDS:
            raise ValueError(
                f"measure {self.title!r}: how = {self.how!r}, not one of {', '.join(MEASURE_KINDS)}"
            )

    @property
    def is_size(self) -> bool:
        """A divergence (never below 0): reported as a size with its interval, never tested."""
        return self.how in ("kl", "mean")


@dataclass(frozen=True)
class Continuous:
    """A continuous measure of a variant on one task, against the reference variant: the mean
    paired difference (``paired``), or the mean of a per-item divergence from it (``kl``, or
    ``mean`` of a value computed against the base model itself), with its 95% interval."""

    variant: str
    reference: str
    benchmark: str
    measure: str
    result: PairedMean
    p_holm: float = math.nan  # a paired change's t-test p corrected across the run's tests
    q_bh: float = math.nan

    @property
    def significant(self) -> bool:
        return self.p_holm < ALPHA


def field_values(rows: Iterable, variant: str, task: str, field_name: str) -> dict:
    return {
        r.item_id: (r.extra or {}).get(field_name)
        for r in rows
        if r.variant == variant
        and r.benchmark == task
        and r.outcome in ("passed", "wrong")
        and (r.extra or {}).get(field_name) is not None
    }


def continuous_measures(
    rows: Sequence,
    baseline: str,
    same: Mapping[tuple[str, str], str] | None = None,
    measures: Mapping[str, Measure] | None = None,
) -> list[Continuous]:
    """Every continuous measure in ``measures`` (name -> how to read it, as the tasks declare
    them: harness.tasks.declared_measures) that the rows carry, per non-baseline variant and task, against
    the baseline on the items both scored: a paired change with its t interval and test, or a
    divergence (a KL) as a size with its bootstrap interval and no test (harness/numbers/stats.py)."""
    pairs = sorted({(r.benchmark, r.variant) for r in rows})
    skip = _not_compared(rows, baseline, same)
    out = []
    for task, variant in pairs:
        if variant == baseline or (variant, task) in skip:
            continue
        for measure, m in (measures or {}).items():
            field_name, how = m.field, m.how
            mine = field_values(rows, variant, task, field_name)
            if not mine:
                continue
            if how == "mean":  # computed by the engine against the base model: its mean and interval
                result = bootstrap_mean(mine)
            else:
                theirs = field_values(rows, baseline, task, field_name)
                if not theirs:
                    continue
                if how == "kl":
                    shared = mine.keys() & theirs.keys()
                    kl = {  # the answers in the baseline's order, matched by name
                        k: categorical_kl(list(theirs[k].values()), [mine[k][a] for a in theirs[k]])
                        for k in shared
                    }
                    result = bootstrap_mean(kl)
                else:
                    result = paired_mean_difference(mine, theirs)
            out.append(Continuous(variant, baseline, task, measure, result))
    return out
