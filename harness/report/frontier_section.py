"""The learning-forgetting frontier's section of report.md: one row per adapter or checkpoint, the
settings over seeds, the runs that were not benchmarked."""

from __future__ import annotations

from harness.formatting import interval, p_value, points
from harness.report.analysis import Analysis
from harness.report.cells import (
    FRONTIER_NAME,
    change_cell,
    md_escape,
    seed_cell,
    size,
    table,
    training_values,
)
from harness.report.frontier import FrontierPoint, frontier_measure_of


def frontier_section(analysis: Analysis) -> list[str]:
    f = analysis.frontier
    if f is None or not f.drawn:  # one adapter with different shots is no frontier
        return []
    margin = points(f.margin)[1:]
    gen_measure = frontier_measure_of(f.generalization)
    change = gen_measure.title if gen_measure else "continuous measure"
    out = [
        "",
        "## The learning-forgetting frontier",
        "",
        f"One point per adapter or checkpoint: what it bought on {f.specialization} and what it cost on "
        f"{f.generalization}, against the baseline ({analysis.baseline}), paired on the same items. "
        f"**front**: no other point is at least as good on both axes and better on one, a change counting "
        f"only where its Holm-corrected test is significant (by accuracy; **front (p)**: by the "
        f"{change} instead). **non-inf.**: the {f.generalization} interval's lower "
        f"end is above -{margin} points (the margin). The best trade-off is {f.best_rule}"
        + (f": **{f.best}**." if f.best else f"; none is named: {f.why_none}.")
        + (f" {f.selection_note}" if f.selection_note else ""),
        "",
    ]
    if f.points:
        out.append(f"![frontier plot]({FRONTIER_NAME})")
        out.append("")
        rows = [_point_row(p, f.best) for p in f.points]
        out += table(
            [
                "variant",
                "training",
                "steps",
                "final loss",
                "status",
                f"{f.specialization} Δ [CI]",
                "Holm p",
                f"{f.generalization} Δ [CI]",
                "Holm p",
                "non-inf.",
                f"{_column(f.generalization)} Δ [CI]",
                f"{_column(f.specialization)} [CI]",
                "front",
                "front (p)",
            ],
            rows,
            align="lllrlrrrrlrrll",
        )
        out += [
            "",
            f"Δ in points; {_column(f.generalization)}: the {change}, in points; \\* significant (Holm).",
        ]
    else:
        out.append("No adapter variant ran both tasks.")
    out += _seeds_table(f)
    if f.not_benchmarked:
        out += ["", "Not benchmarked (their training did not succeed; they count as run and lost):", ""]
        out += [
            f"- `{x.variant}` ({training_values(x)}): **{x.status}**"
            + (f" after {x.steps_done} of {x.steps_planned} steps" if x.steps_planned else "")
            + f": {md_escape(x.reason or 'no reason recorded')}"
            for x in f.not_benchmarked
        ]
    return out


def _seeds_table(f) -> list[str]:
    if not f.groups:
        return []
    out = [
        "",
        "### Over seeds",
        "",
        "Each setting trained with several seeds: the seed mean of its changes, the seeds' spread "
        "(standard deviation of the per-seed changes, and each seed's), and a 95% interval from a "
        "two-way bootstrap that resamples seeds and items, so seed-to-seed variance is in it. The "
        "best trade-off is chosen here, among the settings.",
        "",
    ]
    rows = []
    for g in f.groups:
        rows.append(
            [
                ("**" + g.setting + "** (best)") if g.setting == f.best else g.setting,
                g.gain.seeds,
                seed_cell(g.gain),
                f"{100 * g.gain.spread:.1f} ({', '.join(points(x) for x in g.gain.per_seed)})",
                p_value(g.gain_p_holm) + (" *" if g.gain_significant else ""),
                seed_cell(g.cost),
                f"{100 * g.cost.spread:.1f} ({', '.join(points(x) for x in g.cost.per_seed)})",
                "yes" if g.non_inferior else "no",
                seed_cell(g.prob) if g.prob else "–",
            ]
        )
    out += table(
        [
            "setting",
            "seeds",
            f"{f.specialization} Δ, seed mean [CI]",
            "seeds' SD (each)",
            "Holm p",
            f"{f.generalization} Δ, seed mean [CI]",
            "seeds' SD (each)",
            "non-inf.",
            f"{_column(f.generalization)} Δ [CI]",
        ],
        rows,
        align="lrrrrrrlr",
    )
    return out


def _column(task: str) -> str:
    """A table column's name for the frontier measure of ``task``."""
    m = frontier_measure_of(task)
    return (m.short or m.title) if m else "continuous"


def _point_row(p: FrontierPoint, best: str | None) -> list:
    """One point's row: its training, both changes with Holm p, its continuous measures, the fronts."""
    facts = p.facts
    steps = f"{facts.steps_done}/{facts.steps_planned}" if facts and facts.steps_planned else "–"
    loss = f"{facts.final_loss:.3f}" if facts and isinstance(facts.final_loss, (int, float)) else "–"
    status = (facts.status + (", cut short" if facts.cut_short else "")) if facts else "–"
    g, c = p.gain.paired, p.cost.paired
    return [
        ("**" + p.variant + "** (best)") if p.variant == best else p.variant,
        training_values(facts),
        steps,
        loss,
        status,
        f"{points(g.delta)} {interval(g.delta_ci_low, g.delta_ci_high, points)}",
        p_value(p.gain.p_holm) + (" *" if p.gain.significant else ""),
        f"{points(c.delta)} {interval(c.delta_ci_low, c.delta_ci_high, points)}",
        p_value(p.cost.p_holm) + (" *" if p.cost.significant else ""),
        "yes" if p.non_inferior else "no",
        change_cell(p.continuous) if p.continuous else "–",
        f"{size(p.task_kl.delta)} {interval(p.task_kl.ci_low, p.task_kl.ci_high, size)}"
        if p.task_kl
        else "–",
        "yes" if p.on_front else "",
        "yes" if p.on_front_continuous else "",
    ]
