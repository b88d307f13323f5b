"""report.md: the conclusion, how to read it, accuracies and differences from the baseline, then
the sections (harness/report/sections.py, frontier_section.py, manifest_section.py)."""

from __future__ import annotations

from collections.abc import Mapping

from harness.formatting import interval, p_value, pct, points
from harness.numbers.stats import CONFIDENCE
from harness.report.analysis import MEASURES, Analysis, conclusion
from harness.report.cells import (
    FIGURE_NAME,
    accuracy_cell,
    label,
    md_escape,
    table,
    variant_labels,
    wall_time,
)
from harness.report.frontier_section import frontier_section
from harness.report.manifest_section import manifest_section
from harness.report.sections import (
    adapters_section,
    continuous_section,
    departures_section,
    group_sections,
    group_table,
    why_wrong_section,
)


def render_markdown(payload: Mapping, analysis: Analysis) -> str:
    """report.md: its opening, how to read it, the tables of accuracy and of differences, each
    section in turn, the gates and the manifest."""
    man = payload["manifest"]
    exp = man["experiment"]
    labels = variant_labels(payload)
    out = [
        *_opening(man, analysis),
        *_how_to_read(),
        f"![trade-off plot]({FIGURE_NAME})",
        "",
        *_accuracy_table(analysis, labels),
        *_differences_table(analysis, labels),
    ]
    out += continuous_section(analysis)
    out += frontier_section(analysis)
    out += adapters_section(analysis)
    out += why_wrong_section(analysis, labels)
    for benchmark, title, attr in group_sections(analysis.summary):
        out += group_table(analysis, labels, benchmark, title, attr)
    out += _skips_table(analysis, labels)
    out += _gates_section(payload["gates"])
    out += manifest_section(man, exp)
    out += ["", "Every number above is in `results.json`, with every item's outcome under `cases`.", ""]
    return "\n".join(out)


def _opening(man: Mapping, analysis: Analysis) -> list[str]:
    exp = man["experiment"]
    baseline = analysis.baseline
    return [
        f"# Trade-off report: run {man['run_id']}",
        "",
        f"Experiment `{exp['name']}` ({exp['source']}); baseline variant **{baseline}**; {wall_time(man)}.",
        "",
        "## Conclusion",
        "",
        conclusion(analysis),
        "",
        *departures_section(exp),
    ]


def _how_to_read() -> list[str]:
    return [
        "## How to read this report",
        "",
        "- Every benchmark item is one test case; a variant's **accuracy** on a task is its pass rate.",
        "  n counts the scored items; a skipped item is not in n but is listed below with its reason; an",
        "  item that errored counts as wrong and as an error (a variant whose every item errored is",
        "  *errored*, with no accuracy).",
        f"- Intervals are {CONFIDENCE:.0%}: Wilson score intervals for an accuracy; "
        "for a difference, Newcombe's",
        "  hybrid score interval for paired proportions (method 10; Newcombe 1998, Stat Med 17:2635), on",
        "  the items both variants scored. **p** is the two-sided exact McNemar test on those items.",
        "- **Many tests at once.** Every accuracy comparison and every paired continuous change of this run",
        "  is one test of one family; **Holm p** is its p-value adjusted by Holm's method (the chance of any",
        '  false "significant" in the family stays under 5%) and **BH q** by Benjamini-Hochberg\'s (the',
        "  expected share of false discoveries). *Significant* means Holm p < 0.05, nowhere the raw p.",
        "- **The best trade-off** is the largest gain among the points whose gain is significant (Holm)",
        "  and whose generalization change is *non-inferior*: the lower end of its interval above -margin",
        "  (the experiment's `margin_points`). When no point qualifies, none is named.",
        "- **Continuous measures**, each defined once (per item, then averaged over the items):",
        *[f"  - *{m.title}*: {md_escape(m.definition)}." for m in MEASURES.values()],
        "  A change is the variant minus the baseline on the same items (paired t interval and test); a",
        "  KL is a size (never below 0): its mean with a bootstrap (BCa) interval, no sign and no test.",
        "- **(= v)** marks predictions identical to variant v's (e.g. MMLU of a 3-shot Spider variant):",
        "  the same measurement twice, not compared.",
        "",
    ]


def _accuracy_table(analysis: Analysis, labels: Mapping) -> list[str]:
    baseline = analysis.baseline
    out = ["## Accuracy", ""]
    rows = []
    for s in analysis.summary:
        acc, ci = accuracy_cell(s, analysis)
        rows.append(
            [
                s.benchmark,
                label(labels, s.variant, s.benchmark) + (" (baseline)" if s.variant == baseline else ""),
                s.overall.n,
                s.overall.correct,
                acc,
                ci,
                s.skipped,
                s.errors,
            ]
        )
    out += table(
        ["task", "variant", "n", "correct", "accuracy", f"{CONFIDENCE:.0%} CI", "skipped", "errors"],
        rows,
        align="llrrrrrr",
    )
    return out


def _differences_table(analysis: Analysis, labels: Mapping) -> list[str]:
    baseline = analysis.baseline
    out: list[str] = []
    out += ["", f"## Differences from the baseline ({baseline})", ""]
    if analysis.comparisons:
        out += table(
            [
                "task",
                "variant",
                "shared n",
                "variant acc.",
                "baseline acc.",
                "Δ (points)",
                f"{CONFIDENCE:.0%} CI of Δ",
                "gained",
                "lost",
                "McNemar p",
                "Holm p",
                "BH q",
            ],
            [
                [
                    c.benchmark,
                    label(labels, c.variant, c.benchmark)
                    + (" (*null*)" if analysis.is_null(c.variant) else ""),
                    c.paired.n,
                    pct(c.paired.accuracy),
                    pct(c.paired.reference_accuracy),
                    points(c.paired.delta),
                    interval(c.paired.delta_ci_low, c.paired.delta_ci_high, points),
                    c.paired.only_variant,
                    c.paired.only_reference,
                    p_value(c.paired.mcnemar_p),
                    p_value(c.p_holm) + (" *" if c.significant else ""),
                    p_value(c.q_bh),
                ]
                for c in analysis.comparisons
            ],
            align="llrrrrrrrrrr",
        )
        out += ["", "\\* significant: Holm-adjusted p < 0.05."]
    else:
        out.append("No other variant ran a task that the baseline ran (with predictions of its own).")
    return out


def _skips_table(analysis: Analysis, labels: Mapping) -> list[str]:
    out: list[str] = []
    skips = [(s, reason, n) for s in analysis.summary for reason, n in s.skip_reasons.items()]
    errors = [(s, reason, n) for s in analysis.summary for reason, n in s.error_reasons.items()]
    out += ["", "## Skipped and errored items", ""]
    if skips or errors:
        out += table(
            ["task", "variant", "kind", "items", "reason"],
            [
                [s.benchmark, label(labels, s.variant, s.benchmark), kind, n, md_escape(reason)]
                for kind, block in (("skipped", skips), ("error", errors))
                for s, reason, n in block
            ],
            align="lllrl",
        )
    else:
        out.append("None: every selected item was scored.")
    return out


def _gates_section(gates: Mapping) -> list[str]:
    out: list[str] = []
    out += ["", "## Gates", ""]
    if gates["results"]:
        out.append(f"From `{gates['file']}`:")
        out.append("")
        out += [f"- **{g['status'].upper()}** {md_escape(g['message'])}" for g in gates["results"]]
    else:
        out.append(f"No gates were checked ({gates['note'] or 'no gates file'}).")
    return out
