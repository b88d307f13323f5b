"""Accuracies with their intervals, per (variant, benchmark) and per group, from case rows.

A skipped item (e.g. its database is absent) is not in n, but it is counted and its reason
kept; an item that errored counts as wrong.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence


@dataclass(frozen=True)
class Accuracy:
    n: int
    correct: int
    accuracy: float
    ci_low: float
    ci_high: float


@dataclass
class PairSummary:
    """One (variant, benchmark): overall accuracy, per group, and what was skipped and why."""

    variant: str
    benchmark: str
    overall: Accuracy
    by_group: dict[str, Accuracy] = field(default_factory=dict)
    skipped: int = 0
    skip_reasons: dict[str, int] = field(default_factory=dict)
    errors: int = 0


def wilson(correct: int, n: int, alpha: float = 0.05) -> Accuracy:
    """Accuracy with its 95% Wilson score interval (statsmodels)."""
    from statsmodels.stats.proportion import proportion_confint

    if n == 0:
        return Accuracy(0, 0, float("nan"), float("nan"), float("nan"))
    low, high = proportion_confint(correct, n, alpha=alpha, method="wilson")
    return Accuracy(n, correct, correct / n, float(low), float(high))


def summarize(rows: Sequence) -> list[PairSummary]:
    """Aggregate case rows (objects with variant, benchmark, group, outcome, reason)."""
    by_pair: dict[tuple[str, str], list] = defaultdict(list)
    for r in rows:
        by_pair[(r.variant, r.benchmark)].append(r)
    out = []
    for (variant, benchmark), pair_rows in by_pair.items():
        scored = [r for r in pair_rows if r.outcome != "skipped"]
        groups: dict[str, list] = defaultdict(list)
        for r in scored:
            groups[r.group].append(r)
        out.append(
            PairSummary(
                variant=variant,
                benchmark=benchmark,
                overall=wilson(sum(r.outcome == "passed" for r in scored), len(scored)),
                by_group={g: wilson(sum(r.outcome == "passed" for r in rs), len(rs)) for g, rs in sorted(groups.items())},
                skipped=len(pair_rows) - len(scored),
                skip_reasons=dict(Counter(r.reason for r in pair_rows if r.outcome == "skipped")),
                errors=sum(r.outcome == "error" for r in scored),
            )
        )
    return sorted(out, key=lambda s: (s.benchmark, s.variant))


def format_table(summary: Sequence[PairSummary]) -> str:
    head = f"{'benchmark':<9} {'variant':<16} {'n':>6} {'correct':>7} {'accuracy':>8}  {'95% CI':<15} {'skipped':>7} {'errors':>6}"
    lines = [head, "-" * len(head)]
    for s in summary:
        a = s.overall
        lines.append(
            f"{s.benchmark:<9} {s.variant:<16} {a.n:>6} {a.correct:>7} {a.accuracy:>8.1%}  "
            f"[{a.ci_low:.1%}, {a.ci_high:.1%}]".ljust(len(head) - 15) + f" {s.skipped:>7} {s.errors:>6}"
        )
    return "\n".join(lines)


def write_results(run_dir: Path, summary: Sequence[PairSummary], rows: Sequence, *, wall_s: float) -> Path:
    """``results.json``: the summary and every case row, machine-readable."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "results.json"
    payload = {
        "wall_s": round(wall_s, 2),
        "summary": [asdict(s) for s in summary],
        "cases": [asdict(r) for r in rows],
    }
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=1, ensure_ascii=False))
    tmp.replace(path)
    return path
