"""The sections of report.md that read the analysis: continuous measures, adapters, why answers
were wrong, accuracy per group and per subject, the protocol's departures."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from harness.formatting import interval, p_value
from harness.numbers.summary import PairSummary
from harness.report.analysis import MEASURES, Analysis
from harness.report.cells import (
    NO_ITEMS,
    accuracy_counts,
    label,
    md_escape,
    mean_interval,
    signed,
    size,
    table,
    variant_cell,
)
from harness.tasks import TASKS

MIN_SUBJECT_N = 20  # a subgroup's row shown only where every variant scored this many items


def group_sections(summary: Sequence[PairSummary]) -> list[tuple[str, str, str]]:
    """(task, title, attribute) of each per-group table, in registry order."""
    present = {s.benchmark for s in summary}
    out = []
    for name, task in TASKS.items():
        if name in present:
            out.append((name, f"{task.report.title} by {task.report.group_label}", "by_group"))
            if task.report.subgroup_label:
                out.append((name, f"{task.report.title} by {task.report.subgroup_label}", "by_subject"))
    return out


def _group_order(task: str):
    """Sort key of a task's groups: the task's declared order, then the rest alphabetically."""
    order = list(TASKS[task].report.group_order) if task in TASKS else []
    return lambda key: (order.index(key) if key in order else len(order), key)


def group_table(analysis: Analysis, labels: Mapping, task: str, title: str, attr: str) -> list[str]:
    """One task's accuracy per group (every group) or per value of its declared subgroup (only
    those where every variant scored at least ``MIN_SUBJECT_N`` items: fewer cannot say much;
    all are in results.json)."""
    block = [s for s in analysis.summary if s.benchmark == task and getattr(s, attr) and not s.errored]
    if not block:
        return []
    keys = sorted({k for s in block for k in getattr(s, attr)}, key=_group_order(task))
    note = "Accuracy (correct/n) and its 95% Wilson interval, per variant."
    if attr == "by_subject":
        shown = [
            k for k in keys if all((getattr(s, attr).get(k) or NO_ITEMS).n >= MIN_SUBJECT_N for s in block)
        ]
        sub = TASKS[task].report.subgroup_label
        note += (
            f" Only the {sub}s where every variant scored at least {MIN_SUBJECT_N} items "
            f"({len(shown)} of {len(keys)}): with fewer, a 95% interval spans some 40 points or more. "
            f"Every {sub} is in `results.json` (`summary[].by_subject`)."
        )
        keys = shown
    out = ["", f"## {title}", "", note, ""]
    if keys:
        out += table(
            [
                TASKS[task].report.subgroup_label if attr == "by_subject" else "group",
                *(label(labels, s.variant, task) for s in block),
            ],
            [[k, *(accuracy_counts(getattr(s, attr).get(k)) for s in block)] for k in keys],
        )
    return out


def continuous_section(analysis: Analysis) -> list[str]:
    if not analysis.continuous:
        return []
    out = ["", "## Continuous measures", ""]
    changes = [c for c in analysis.continuous if not MEASURES[c.measure].is_size]
    sizes = [c for c in analysis.continuous if MEASURES[c.measure].is_size]
    if changes:
        out += [
            "Changes: variant minus baseline on the same items (paired t interval and test; Holm p "
            'and BH q across the run\'s tests, as in "How to read").',
            "",
        ]
        out += table(
            ["task", "variant", "measure", "n", "variant", "baseline", "Δ", "95% CI", "p", "Holm p", "BH q"],
            [
                [
                    c.benchmark,
                    variant_cell(c, analysis),
                    md_escape(MEASURES[c.measure].title),
                    c.result.n,
                    signed(c.result.mean_variant).lstrip("+"),
                    signed(c.result.mean_reference).lstrip("+"),
                    signed(c.result.delta),
                    mean_interval(c.result),
                    p_value(c.result.p_value),
                    p_value(c.p_holm) + (" *" if c.significant else ""),
                    p_value(c.q_bh),
                ]
                for c in changes
            ],
            align="lllrrrrrrrr",
        )
        out.append("")
    if sizes:
        out += ["Sizes: a KL's mean (nats, never below 0) with its 95% bootstrap interval; not tested.", ""]
        out += table(
            ["task", "variant", "measure", "n", "mean", "95% CI"],
            [
                [
                    c.benchmark,
                    variant_cell(c, analysis),
                    md_escape(MEASURES[c.measure].title),
                    c.result.n,
                    size(c.result.delta),
                    interval(c.result.ci_low, c.result.ci_high, size),
                ]
                for c in sizes
            ],
            align="lllrrr",
        )
    if analysis.null_variants:
        out += [
            "",
            f"**Noise floor**: {', '.join(analysis.null_variants)} (*null*) re-scored the baseline another "
            'way (batch size or load mode); its "changes" are what scoring alone moves. A change no '
            "larger than the farther bound of the null's interval (for a KL, its upper bound) is marked "
            "*within noise*.",
        ]
    return out


def departures_section(exp: Mapping) -> list[str]:
    departures = exp.get("departures") or ()
    if not departures:
        return []
    return [
        "## Departures from the protocol reproduced",
        "",
        *(f"- {md_escape(d)}" for d in departures),
        "",
    ]


def adapters_section(analysis: Analysis) -> list[str]:
    facts = [f for f in analysis.facts.values() if analysis.frontier is None or f.benchmarkable]
    if not facts:
        return []
    out = [
        "",
        "## Adapters",
        "",
        "What training did for each variant's adapter (its training_summary.json).",
        "",
    ]
    rows = [
        [
            f.variant,
            f"`{f.adapter}`",
            f.status + (", **cut short**" if f.cut_short else ""),
            f"{f.steps_done}/{f.steps_planned}" if f.steps_planned else "–",
            f.examples_seen if f.examples_seen is not None else "–",
            f.tokens_seen if f.tokens_seen is not None else "–",
            f"{f.final_loss:.4f}" if isinstance(f.final_loss, (int, float)) else "–",
        ]
        for f in facts
    ]
    out += table(
        ["variant", "adapter", "status", "steps", "examples", "tokens", "final loss"], rows, align="lllrrrr"
    )
    cut = [f.variant for f in facts if f.cut_short]
    if cut:
        out += [
            "",
            f"**Warning**: {', '.join(cut)} stopped at the time budget before the planned steps: its "
            "numbers are not those of the recipe.",
        ]
    return out


def why_wrong_section(analysis: Analysis, labels: Mapping | None = None) -> list[str]:
    labels = labels or {}
    if not analysis.why_wrong and not analysis.predicted:
        return []
    out = ["", "## Why answers were wrong", ""]
    for task in TASKS:
        block = {v: kinds for (v, t), kinds in analysis.why_wrong.items() if t == task}
        if block:
            kinds = sorted({k for c in block.values() for k in c})
            out += [f"{TASKS[task].report.title}: wrong answers by kind.", ""]
            out += table(
                ["variant", *kinds],
                [[label(labels, v, task), *(c.get(k, 0) for k in kinds)] for v, c in sorted(block.items())],
            )
            out.append("")
        answers = {v: c for (v, t), c in analysis.predicted.items() if t == task}
        if answers:
            # every choice has its column, chosen or not: one no variant gives is the bias the table shows
            choices = tuple(TASKS[task].report.answer_choices) if task in TASKS else ()
            keys = [*choices, *sorted({k for c in answers.values() for k in c} - set(choices))]
            out += [
                f"{TASKS[task].report.title}: answers given (a model that never gives one is biased, "
                "whatever its accuracy).",
                "",
            ]
            out += table(
                ["variant", *(f"`{k}`" for k in keys)],
                [[label(labels, v, task), *(c.get(k, 0) for k in keys)] for v, c in sorted(answers.items())],
            )
            out.append("")
    return out
