"""The report's small pieces of text: a markdown table, a signed number, an interval, a variant's
label (its shots and load mode), a cell of an accuracy; shared by report.md's sections and the
terminal summary."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from harness.formatting import interval, pct, points
from harness.numbers.stats import Accuracy, PairedMean
from harness.numbers.summary import PairSummary
from harness.report.analysis import Analysis

# The figures' file names: report.md links them, document.write_report writes them
FIGURE_NAME = "tradeoff.png"
FRONTIER_NAME = "frontier.png"


def table(head: Sequence[str], rows: Iterable[Sequence], align: str = "") -> list[str]:
    align = align or "l" + "r" * (len(head) - 1)
    sep = ["---:" if a == "r" else "---" for a in align]
    return [
        "| " + " | ".join(head) + " |",
        "| " + " | ".join(sep) + " |",
        *("| " + " | ".join(str(c) for c in row) + " |" for row in rows),
    ]


def signed(x: float | None, digits: int = 3) -> str:
    """A signed number; tiny ones (a KL of an adapter that barely moved) in 3 significant digits."""
    if x is None or not math.isfinite(x):
        return "n/a"
    if x != 0 and abs(x) < 10**-digits:
        return f"{x:+.2e}"
    return f"{x:+.{digits}f}"


def mean_interval(m: PairedMean, digits: int = 3) -> str:
    return interval(m.ci_low, m.ci_high, lambda x: signed(x, digits))


def accuracy_cell(s: PairSummary, analysis: Analysis) -> tuple[str, str]:
    if s.errored:
        return "errored", "–"
    same = analysis.same.get((s.variant, s.benchmark))
    note = f" (= {same})" if same else ""
    return pct(s.overall.accuracy) + note, interval(s.overall.ci_low, s.overall.ci_high)


def wall_time(man: Mapping) -> str:
    bench = man.get("bench") or {}
    parts = [f"benchmarks (pytest session) {man['wall_s']:.0f} s"]
    if bench.get("wall_s") is not None:
        trained = bench.get("training") or []
        spent = sum(t.get("seconds", 0) for t in trained)
        return (
            f"whole command {bench['wall_s']:.0f} s: training {spent:.0f} s ({len(trained)} run(s)), "
            + ", ".join(parts)
        )
    return parts[0]


def variant_labels(payload: Mapping) -> dict[tuple[str, str], str]:
    """(variant, task) -> "variant (k-shot, load)": what ran, from the phase records (an option
    such as ``--shots spider=3`` included), else from the experiment."""
    exp = payload["manifest"]["experiment"]
    loads = {v["name"]: v.get("load", "") for v in exp.get("variants", [])}
    labels: dict[tuple[str, str], str] = {}
    for record in payload["manifest"].get("phases", {}).values():
        task = record.get("task", record.get("benchmark"))
        if "unreadable" in record or record.get("kind") or not task or "variant" not in record:
            continue
        fingerprint = record.get("fingerprint") if isinstance(record.get("fingerprint"), dict) else {}
        load = fingerprint.get("load") or loads.get(record["variant"], "")
        parts = [f"{record['shots']}-shot"] if isinstance(record.get("shots"), int) else []
        parts += [load] if load else []
        labels[(record["variant"], task)] = (
            f"{record['variant']} ({', '.join(parts)})" if parts else record["variant"]
        )
    for s in payload.get("summary", []):
        labels.setdefault((s["variant"], s["task"]), s["variant"])
    return labels


def label(labels: Mapping, variant: str, task: str) -> str:
    return labels.get((variant, task), variant)


def variant_cell(c, analysis: Analysis) -> str:
    if analysis.is_null(c.variant):
        return f"{c.variant} (*null*)"
    if (c.variant, c.benchmark, c.measure) in analysis.within_noise:
        return f"{c.variant} (*within noise*)"
    return c.variant


def size(x: float | None) -> str:
    """A non-negative size (a KL), unsigned."""
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{x:.2e}" if 0 < abs(x) < 1e-3 else f"{x:.4f}"


def change_cell(m: PairedMean) -> str:
    """A change of a probability, in points, with its interval."""
    return f"{points(m.delta)} {interval(m.ci_low, m.ci_high, points)}"


def training_values(facts) -> str:
    if facts is None:
        return "–"
    values = ", ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in facts.values) or "–"
    return values + (f" @ {facts.epochs_at:g} ep" if facts.epochs_at is not None else "")


def seed_cell(c) -> str:
    return f"{points(c.mean)} {interval(c.ci_low, c.ci_high, points)}"


NO_ITEMS = Accuracy(0, 0, float("nan"), float("nan"), float("nan"))


def accuracy_counts(a: Accuracy | None) -> str:
    if a is None or a.n == 0:
        return "–"
    return f"{pct(a.accuracy)} ({a.correct}/{a.n}) {interval(a.ci_low, a.ci_high, lambda x: pct(x, 0))}"


def md_escape(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")[:300]
