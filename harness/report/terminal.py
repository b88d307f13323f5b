"""The terminal summary printed at the end of a session: accuracies with intervals, differences
from the baseline, the continuous measures and the frontier's best trade-off."""

from __future__ import annotations

from collections.abc import Mapping

from harness.formatting import interval, p_value, pct, points
from harness.report.analysis import MEASURES, Analysis
from harness.report.cells import accuracy_cell, label, mean_interval, signed, size


def format_table(analysis: Analysis, labels: Mapping | None = None) -> str:
    """The terminal summary: accuracies with intervals, differences from the baseline, the
    continuous measures and the frontier's best trade-off. ``labels``: :func:`variant_labels`."""
    summary = analysis.summary
    labels = labels or {}
    name = lambda variant, task: label(labels, variant, task)
    width = max([len(name(s.variant, s.benchmark)) for s in summary] + [7])
    tw = max([len(s.benchmark) for s in summary] + [9])
    head = (
        f"{'task':<{tw}} {'variant':<{width}} {'n':>5} {'correct':>7} {'accuracy':>8}  {'95% CI':<17} "
        f"{'skipped':>7} {'errors':>6}"
    )
    lines = [head, "-" * len(head)]
    for s in summary:
        a = s.overall
        _, ci = accuracy_cell(s, analysis)
        same = analysis.same.get((s.variant, s.benchmark))
        acc = "errored" if s.errored else pct(a.accuracy)  # the "(= v)" note goes at the line's end
        lines.append(
            f"{s.benchmark:<{tw}} {name(s.variant, s.benchmark):<{width}} {a.n:>5} {a.correct:>7} "
            f"{acc:>8}  {ci:<17} "
            f"{s.skipped:>7} {s.errors:>6}" + (f"  (same predictions as {same})" if same else "")
        )
    if analysis.comparisons:
        lines.append("")
        head = (
            f"{'task':<{tw}} {'variant':<{width}} {'vs':<{width}} {'n':>5} {'Δ points':>8}  {'95% CI':<15} "
            f"{'+/-':>9} {'McNemar p':>9} {'Holm p':>7}"
        )
        lines += [head, "-" * len(head)]
        for c in analysis.comparisons:
            p = c.paired
            lines.append(
                f"{c.benchmark:<{tw}} {name(c.variant, c.benchmark):<{width}} "
                f"{name(c.reference, c.benchmark):<{width}} "
                f"{p.n:>5} {points(p.delta):>8}  "
                f"{interval(p.delta_ci_low, p.delta_ci_high, points):<15} "
                f"{f'+{p.only_variant}/-{p.only_reference}':>9} {p_value(p.mcnemar_p):>9} "
                f"{p_value(c.p_holm):>7}"
            )
    lines += _continuous_lines(analysis)
    f = analysis.frontier
    if f is not None and f.best:
        lines.append(f"best trade-off: {f.best} ({f.best_rule})")
    for x in f.not_benchmarked if f is not None else ():
        lines.append(f"not benchmarked: {x.variant}: {x.status} ({x.reason})")
    for facts in analysis.facts.values():
        if facts.cut_short:
            lines.append(
                f"WARNING: the adapter of {facts.variant} was cut short by the time budget "
                f"({facts.steps_done}/{facts.steps_planned} steps)"
            )
    return "\n".join(lines)


def _continuous_lines(analysis: Analysis) -> list[str]:
    """One line per continuous measure: a change with its test, or a size with its interval."""
    out = []
    for c in analysis.continuous:
        m = c.result
        if MEASURES[c.measure].is_size:
            value = f"{size(m.delta)} {interval(m.ci_low, m.ci_high, size)} (n={m.n})"
        else:
            value = (
                f"Δ {signed(m.delta, 4)} {mean_interval(m, 4)} "
                f"(n={m.n}, p={p_value(m.p_value)}, Holm p={p_value(c.p_holm)})"
            )
        out.append(f"{c.benchmark} {c.variant}: {MEASURES[c.measure].title} {value}")
    return out
