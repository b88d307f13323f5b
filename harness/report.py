"""The trade-off report: accuracies with intervals, paired comparisons, the manifest, the files.

From the case rows of a run (one per variant, benchmark and item) this module computes:

- per (variant, benchmark): n, correct, accuracy with its 95% Wilson interval, by group
  (Spider hardness, MMLU category) and by MMLU subject, and the skips and errors with reasons.
  A skipped item (its database is absent, say) is not in n but is counted with its reason; an
  item that errored counts as wrong and is counted as an error too.
- per non-baseline variant and benchmark: the paired comparison with the baseline variant on
  the items both scored: the 2x2 table, the accuracy difference with Newcombe's hybrid score
  interval for paired proportions, and the exact McNemar test (statsmodels).

and writes them into the run folder: ``results.json`` (machine-readable, every case row
included), ``report.md`` (for a reader) and ``tradeoff.png`` (harness/figure.py).

The maths is pure functions of rows; only :func:`write_report` and :func:`collect_manifest`
touch files.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Iterable, Mapping, Sequence

SCHEMA = "harness-results/1"
ALPHA = 0.05
CONFIDENCE = 1 - ALPHA
FIGURE_NAME = "tradeoff.png"
LIBRARIES = ("torch", "transformers", "peft", "trl", "bitsandbytes", "accelerate", "deepeval",
             "pytest", "pytest-xdist", "statsmodels")


# -- numbers ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Accuracy:
    """A proportion with its Wilson interval; ``n == 0`` gives NaN accuracy and bounds."""

    n: int
    correct: int
    accuracy: float
    ci_low: float
    ci_high: float


def wilson(correct: int, n: int, alpha: float = ALPHA) -> Accuracy:
    """Accuracy with its Wilson score interval (statsmodels ``proportion_confint``)."""
    from statsmodels.stats.proportion import proportion_confint

    if n == 0:
        return Accuracy(0, 0, math.nan, math.nan, math.nan)
    low, high = proportion_confint(correct, n, alpha=alpha, method="wilson")
    # Wilson's bounds are exactly 0 at 0/n and 1 at n/n; rounding gives +-1e-17 there
    low = 0.0 if correct == 0 else float(low)
    high = 1.0 if correct == n else float(high)
    return Accuracy(n, correct, correct / n, low, high)


@dataclass(frozen=True)
class Paired:
    """Two systems scored on the same items: ``variant`` against ``reference``.

    The table counts items by (reference right?, variant right?); ``delta`` is the variant's
    accuracy minus the reference's on these shared items, with its interval, and
    ``mcnemar_p`` the two-sided exact McNemar p-value (NaN without shared items).
    """

    n: int
    both_correct: int
    only_reference: int  # the reference right, the variant wrong: a loss
    only_variant: int  # the variant right, the reference wrong: a gain
    both_wrong: int
    accuracy: float
    reference_accuracy: float
    delta: float
    delta_ci_low: float
    delta_ci_high: float
    mcnemar_statistic: float
    mcnemar_p: float


def paired_difference_ci(both: int, only_ref: int, only_var: int, neither: int,
                         alpha: float = ALPHA) -> tuple[float, float]:
    """Interval for p_variant - p_reference on paired items: Newcombe's hybrid score interval.

    Newcombe (1998, Stat Med 17:2635, method 10), as recommended by Fagerland, Lydersen & Laake
    (2014, Stat Methods Med Res): combine the Wilson interval of each accuracy (l, u) with the
    phi correlation of the 2x2 table, phi = (ad - bc) / sqrt of the product of the margins,
    set to 0 when a margin is empty:
        low  = d - sqrt((p1 - l1)^2 - 2 phi (p1 - l1)(u2 - p2) + (u2 - p2)^2)
        high = d + sqrt((u1 - p1)^2 - 2 phi (u1 - p1)(p2 - l2) + (p2 - l2)^2)
    Positively correlated systems (most items right or wrong for both) get a narrower interval
    than two independent samples would.
    """
    n = both + only_ref + only_var + neither
    if n == 0:
        return math.nan, math.nan
    var = wilson(both + only_var, n, alpha)
    ref = wilson(both + only_ref, n, alpha)
    p1, l1, u1 = var.accuracy, var.ci_low, var.ci_high
    p2, l2, u2 = ref.accuracy, ref.ci_low, ref.ci_high
    # rows: variant right / wrong; columns: reference right / wrong
    a, b, c, d = both, only_var, only_ref, neither
    margins = (a + b) * (c + d) * (a + c) * (b + d)
    phi = (a * d - b * c) / math.sqrt(margins) if margins else 0.0
    delta = p1 - p2
    low = delta - math.sqrt(max((p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2, 0.0))
    high = delta + math.sqrt(max((u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2, 0.0))
    return max(low, -1.0), min(high, 1.0)


def paired(variant: Mapping[str, bool], reference: Mapping[str, bool]) -> Paired:
    """Compare two systems' verdicts (item id -> right?) on the items both scored."""
    from statsmodels.stats.contingency_tables import mcnemar

    shared = variant.keys() & reference.keys()
    counts = Counter((reference[i], variant[i]) for i in shared)
    both, only_ref, only_var, neither = counts[True, True], counts[True, False], counts[False, True], counts[False, False]
    n = len(shared)
    if n == 0:
        return Paired(0, 0, 0, 0, 0, *(math.nan,) * 7)
    # statsmodels' table: rows reference right/wrong, columns variant right/wrong; exact=True
    # is the binomial test on the discordant pairs.
    test = mcnemar([[both, only_ref], [only_var, neither]], exact=True)
    low, high = paired_difference_ci(both, only_ref, only_var, neither)
    return Paired(
        n=n,
        both_correct=both,
        only_reference=only_ref,
        only_variant=only_var,
        both_wrong=neither,
        accuracy=(both + only_var) / n,
        reference_accuracy=(both + only_ref) / n,
        delta=(only_var - only_ref) / n,
        delta_ci_low=low,
        delta_ci_high=high,
        mcnemar_statistic=float(test.statistic),
        mcnemar_p=float(test.pvalue),
    )


# -- summaries of rows ----------------------------------------------------------------------


@dataclass(frozen=True)
class PairSummary:
    """One (variant, benchmark): overall accuracy, per group and subject, skips and errors."""

    variant: str
    benchmark: str
    overall: Accuracy
    by_group: dict[str, Accuracy] = field(default_factory=dict)
    by_subject: dict[str, Accuracy] = field(default_factory=dict)
    skipped: int = 0
    skip_reasons: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    error_reasons: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Comparison:
    """A variant against a reference variant on one benchmark, paired on shared items."""

    variant: str
    reference: str
    benchmark: str
    paired: Paired


def _accuracy_of(rows: Sequence) -> Accuracy:
    return wilson(sum(r.outcome == "passed" for r in rows), len(rows))


def summarize(rows: Iterable) -> list[PairSummary]:
    """Aggregate case rows (objects with variant, benchmark, item_id, group, outcome, reason,
    extra) into one summary per (variant, benchmark), sorted by benchmark then variant."""
    by_pair: dict[tuple[str, str], list] = defaultdict(list)
    for r in rows:
        by_pair[(r.variant, r.benchmark)].append(r)
    out = []
    for (variant, benchmark), pair_rows in by_pair.items():
        scored = [r for r in pair_rows if r.outcome != "skipped"]
        groups: dict[str, list] = defaultdict(list)
        subjects: dict[str, list] = defaultdict(list)
        for r in scored:
            groups[r.group or "unknown"].append(r)
            subject = (r.extra or {}).get("subject")
            if subject:
                subjects[subject].append(r)
        out.append(
            PairSummary(
                variant=variant,
                benchmark=benchmark,
                overall=_accuracy_of(scored),
                by_group={g: _accuracy_of(rs) for g, rs in sorted(groups.items())},
                by_subject={s: _accuracy_of(rs) for s, rs in sorted(subjects.items())},
                skipped=len(pair_rows) - len(scored),
                skip_reasons=dict(Counter(r.reason or "(no reason given)" for r in pair_rows if r.outcome == "skipped")),
                errors=sum(r.outcome == "error" for r in scored),
                error_reasons=dict(Counter(r.reason or "(no reason given)" for r in scored if r.outcome == "error")),
            )
        )
    return sorted(out, key=lambda s: (s.benchmark, s.variant))


def verdicts(rows: Iterable, variant: str, benchmark: str) -> dict[str, bool]:
    """item id -> right? for the scored (not skipped) rows of one (variant, benchmark)."""
    return {
        r.item_id: r.outcome == "passed"
        for r in rows
        if r.variant == variant and r.benchmark == benchmark and r.outcome != "skipped"
    }


def compare(rows: Sequence, variant: str, reference: str, benchmark: str) -> Comparison:
    return Comparison(variant, reference, benchmark,
                      paired(verdicts(rows, variant, benchmark), verdicts(rows, reference, benchmark)))


def compare_to_baseline(rows: Sequence, baseline: str) -> list[Comparison]:
    """Every other variant against ``baseline``, on each benchmark both ran."""
    pairs = {(r.variant, r.benchmark) for r in rows}
    return [
        compare(rows, variant, baseline, benchmark)
        for benchmark, variant in sorted((b, v) for v, b in pairs)
        if variant != baseline and (baseline, benchmark) in pairs
    ]


# -- the manifest ---------------------------------------------------------------------------


def library_versions(names: Sequence[str] = LIBRARIES) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def read_phases(run_dir: Path) -> dict[str, dict]:
    """The prediction phases' own records (``phases/<benchmark>-<variant>.json``), by name.
    An unreadable file is kept as ``{"unreadable": reason}``, never dropped silently."""
    out: dict[str, dict] = {}
    for path in sorted((run_dir / "phases").glob("*.json")):
        try:
            out[path.stem] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            out[path.stem] = {"unreadable": f"{type(e).__name__}: {e}"}
    return out


def _git_commit(cwd: Path) -> str | None:
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip() or None


def _sha256(path: str) -> str | None:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def _devices(phases: Mapping[str, dict]) -> list[str]:
    found = {str(p["device"]) for p in phases.values() if isinstance(p, dict) and p.get("device")}
    torch = sys.modules.get("torch")  # only if the run already imported it: no import here
    if not found and torch is not None:
        found.add("cuda" if torch.cuda.is_available() else "cpu")
    return sorted(found)


def collect_manifest(
    run_dir: Path,
    *,
    run_id: str,
    experiment: Mapping,
    gates_file: str,
    command: Sequence[str],
    started: float,
    finished: float,
) -> dict:
    """Everything needed to tell two runs' numbers apart: code, libraries, machine, phases."""
    phases = read_phases(run_dir)
    return {
        "run_id": run_id,
        "experiment": {**experiment, "sha256": _sha256(experiment.get("source", ""))},
        "gates_file": gates_file,
        "command": list(command),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(finished)),
        "wall_s": round(finished - started, 2),
        "git_commit": _git_commit(Path.cwd()),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "libraries": library_versions(),
        "devices": _devices(phases),
        "phases": phases,
    }


# -- files ----------------------------------------------------------------------------------


def _finite(value):
    """JSON has no NaN: undefined numbers (no items) are written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _accuracy_json(a: Accuracy) -> dict:
    return {"n": a.n, "correct": a.correct, "accuracy": a.accuracy, "ci_low": a.ci_low, "ci_high": a.ci_high}


def results_payload(
    summary: Sequence[PairSummary],
    comparisons: Sequence[Comparison],
    rows: Sequence,
    *,
    baseline: str,
    manifest: Mapping,
    gates: Mapping | None = None,
) -> dict:
    """The content of ``results.json`` (schema ``harness-results/1``; see docs in report.md)."""
    return _finite(
        {
            "schema": SCHEMA,
            "confidence": CONFIDENCE,
            "baseline": baseline,
            "summary": [
                {
                    "variant": s.variant,
                    "benchmark": s.benchmark,
                    **_accuracy_json(s.overall),
                    "skipped": s.skipped,
                    "skip_reasons": s.skip_reasons,
                    "errors": s.errors,
                    "error_reasons": s.error_reasons,
                    "by_group": {g: _accuracy_json(a) for g, a in s.by_group.items()},
                    "by_subject": {g: _accuracy_json(a) for g, a in s.by_subject.items()},
                }
                for s in summary
            ],
            "comparisons": [
                {"variant": c.variant, "reference": c.reference, "benchmark": c.benchmark, **asdict(c.paired)}
                for c in comparisons
            ],
            "gates": dict(gates) if gates is not None else {"file": "", "note": "not checked", "passed": True, "results": []},
            "manifest": dict(manifest),
            "cases": [asdict(r) if hasattr(r, "__dataclass_fields__") else dict(r) for r in rows],
        }
    )


def write_json(path: Path, payload: Mapping) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=1, ensure_ascii=False, allow_nan=False), encoding="utf-8")
    tmp.replace(path)
    return path


def write_report(run_dir: Path, payload: Mapping, summary: Sequence[PairSummary],
                 comparisons: Sequence[Comparison]) -> dict[str, Path]:
    """Write ``results.json``, ``report.md`` (which links the figure), then ``tradeoff.png``:
    the numbers first, so that a failing plot never costs them."""
    from harness.figure import plot_tradeoff

    run_dir.mkdir(parents=True, exist_ok=True)
    paths = {"results": write_json(run_dir / "results.json", payload)}
    md = run_dir / "report.md"
    md.write_text(render_markdown(payload, summary, comparisons, figure=FIGURE_NAME), encoding="utf-8")
    paths["markdown"] = md
    paths["figure"] = plot_tradeoff(summary, comparisons, run_dir / FIGURE_NAME,
                                    baseline=payload["baseline"], title=payload["manifest"]["run_id"])
    return paths


# -- text -------------------------------------------------------------------------------------


def pct(x: float | None, digits: int = 1) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{100 * x:.{digits}f}%"


def points(x: float | None) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{100 * x:+.1f}"


def interval(low: float | None, high: float | None, fmt=pct) -> str:
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return "n/a"
    return f"[{fmt(low)}, {fmt(high)}]"


def p_value(p: float | None) -> str:
    if p is None or not math.isfinite(p):
        return "n/a"
    return f"{p:.2g}" if p >= 0.001 else "<0.001"


def _table(head: Sequence[str], rows: Iterable[Sequence], align: str = "") -> list[str]:
    align = align or "l" + "r" * (len(head) - 1)
    sep = ["---:" if a == "r" else "---" for a in align]
    return ["| " + " | ".join(head) + " |", "| " + " | ".join(sep) + " |",
            *("| " + " | ".join(str(c) for c in row) + " |" for row in rows)]


def render_markdown(payload: Mapping, summary: Sequence[PairSummary], comparisons: Sequence[Comparison],
                    *, figure: str = FIGURE_NAME) -> str:
    man = payload["manifest"]
    baseline = payload["baseline"]
    exp = man["experiment"]
    out = [
        f"# Trade-off report: run {man['run_id']}",
        "",
        f"Experiment `{exp['name']}` ({exp['source']}); baseline variant **{baseline}**; "
        f"wall time {man['wall_s']:.0f} s.",
        "",
        "## How to read this report",
        "",
        "- Every benchmark item is one test case; a variant's **accuracy** on a benchmark is its pass rate:",
        "  Spider execution accuracy (the predicted SQL returns the gold query's result) and MMLU",
        "  multiple-choice accuracy. n counts the scored items; a skipped item is not in n but is",
        "  listed below with its reason; an item that errored counts as wrong and as an error.",
        f"- Intervals are {CONFIDENCE:.0%}: Wilson score intervals for an accuracy; for a difference,",
        "  Newcombe's hybrid score interval for paired proportions (method 10), on the items both",
        "  variants scored. With ~200 items an accuracy is only known to about ±5-7 points.",
        "- **Δ** is the variant minus the baseline, in percentage points, on the shared items;",
        "  **p** is the two-sided exact McNemar test on those items (only the items on which the two",
        "  variants disagree carry information: *gained* = right only with the variant, *lost* =",
        "  right only with the baseline). p < 0.05 means the difference is unlikely to be noise.",
        "- The trade-off plot puts the Spider Δ (what fine-tuning buys) on the x axis and the MMLU Δ",
        "  (what it costs in general knowledge) on the y axis: the ideal is right and not down.",
        "",
        f"![trade-off plot]({figure})",
        "",
        "## Accuracy",
        "",
    ]
    out += _table(
        ["benchmark", "variant", "n", "correct", "accuracy", f"{CONFIDENCE:.0%} CI", "skipped", "errors"],
        [[s.benchmark, s.variant + (" (baseline)" if s.variant == baseline else ""), s.overall.n, s.overall.correct,
          pct(s.overall.accuracy), interval(s.overall.ci_low, s.overall.ci_high), s.skipped, s.errors] for s in summary],
        align="llrrrrrr",
    )
    out += ["", f"## Differences from the baseline ({baseline})", ""]
    if comparisons:
        out += _table(
            ["benchmark", "variant", "shared n", "variant acc.", "baseline acc.", "Δ (points)", f"{CONFIDENCE:.0%} CI of Δ",
             "gained", "lost", "McNemar p"],
            [[c.benchmark, c.variant, c.paired.n, pct(c.paired.accuracy), pct(c.paired.reference_accuracy),
              points(c.paired.delta), interval(c.paired.delta_ci_low, c.paired.delta_ci_high, points),
              c.paired.only_variant, c.paired.only_reference, p_value(c.paired.mcnemar_p)] for c in comparisons],
            align="llrrrrrrrr",
        )
    else:
        out.append("No other variant ran a benchmark that the baseline ran.")
    for benchmark, title, attr in [("spider", "Spider by hardness", "by_group"), ("mmlu", "MMLU by category", "by_group"),
                                   ("mmlu", "MMLU by subject", "by_subject")]:
        block = [s for s in summary if s.benchmark == benchmark and getattr(s, attr)]
        if not block:
            continue
        keys = sorted({k for s in block for k in getattr(s, attr)}, key=_group_order)
        out += ["", f"## {title}", "", "Accuracy (correct/n) and its 95% Wilson interval, per variant.", ""]
        out += _table(
            ["subject" if attr == "by_subject" else "group", *(s.variant for s in block)],
            [[k, *(_cell(getattr(s, attr).get(k)) for s in block)] for k in keys],
        )
    skips = [(s, reason, n) for s in summary for reason, n in s.skip_reasons.items()]
    errors = [(s, reason, n) for s in summary for reason, n in s.error_reasons.items()]
    out += ["", "## Skipped and errored items", ""]
    if skips or errors:
        out += _table(["benchmark", "variant", "kind", "items", "reason"],
                      [[s.benchmark, s.variant, kind, n, _md_escape(reason)] for kind, block in (("skipped", skips), ("error", errors))
                       for s, reason, n in block], align="lllrl")
    else:
        out.append("None: every selected item was scored.")
    gates = payload["gates"]
    out += ["", "## Gates", ""]
    if gates["results"]:
        out.append(f"From `{gates['file']}`:")
        out.append("")
        out += [f"- **{g['status'].upper()}** {_md_escape(g['message'])}" for g in gates["results"]]
    else:
        out.append(f"No gates were checked ({gates['note'] or 'no gates file'}).")
    out += ["", "## Manifest", ""]
    libs = ", ".join(f"{k} {v}" for k, v in man["libraries"].items() if v)
    out += [
        f"- run `{man['run_id']}`, {man['started']} to {man['finished']} ({man['wall_s']:.0f} s)",
        f"- command: `{' '.join(man['command'])}`",
        f"- git commit: `{man['git_commit'] or 'unknown'}`; experiment file sha256 `{(exp['sha256'] or 'unknown')[:12]}`",
        f"- Python {man['python']} on {man['platform']} ({man['cpu_count']} CPUs); "
        f"device(s): {', '.join(man['devices']) or 'unknown'}",
        f"- libraries: {libs}",
    ]
    phases = man["phases"]
    if phases:
        out += ["", "Prediction phases (from `phases/*.json`):", ""]
        out += _table(
            ["phase", "model", "adapter", "load", "template", "seed", "prompts", "cached", "computed", "seconds", "device"],
            [[name, *_phase_cells(p)] for name, p in sorted(phases.items())], align="lllllrrrrrl",
        )
    out += ["", "Every number above is in `results.json`, with every item's outcome under `cases`.", ""]
    return "\n".join(out)


_GROUP_ORDER = ["easy", "medium", "hard", "extra", "stem", "humanities", "social_sciences", "other", "unknown"]


def _group_order(key: str) -> tuple[int, str]:
    return (_GROUP_ORDER.index(key) if key in _GROUP_ORDER else len(_GROUP_ORDER), key)


def _cell(a: Accuracy | None) -> str:
    if a is None or a.n == 0:
        return "–"
    return f"{pct(a.accuracy)} ({a.correct}/{a.n}) {interval(a.ci_low, a.ci_high, lambda x: pct(x, 0))}"


def _md_escape(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")[:300]


def _phase_cells(p: Mapping) -> list:
    if "unreadable" in p:
        return ["unreadable: " + _md_escape(p["unreadable"]), *[""] * 9]
    fp = p.get("fingerprint") if isinstance(p.get("fingerprint"), dict) else {}

    def short(v):
        return "–" if v in (None, "") else _md_escape(v if isinstance(v, str) else json.dumps(v))[:60]

    template = p.get("template", "")
    if p.get("template_version") not in (None, ""):
        template = f"{template} v{p['template_version']}"
    seconds = p.get("seconds")
    return [short(fp.get("model")), short(fp.get("adapter")), short(fp.get("load")), short(template), short(p.get("seed")),
            short(p.get("n_prompts")), short(p.get("cached")), short(p.get("computed")),
            f"{seconds:.1f}" if isinstance(seconds, (int, float)) else "–", short(p.get("device"))]


def format_table(summary: Sequence[PairSummary], comparisons: Sequence[Comparison] = (), baseline: str = "") -> str:
    """The terminal summary: accuracies with intervals, then differences from the baseline."""
    width = max([len(s.variant) for s in summary] + [7])
    head = f"{'benchmark':<9} {'variant':<{width}} {'n':>5} {'correct':>7} {'accuracy':>8}  {'95% CI':<17} {'skipped':>7} {'errors':>6}"
    lines = [head, "-" * len(head)]
    for s in summary:
        a = s.overall
        lines.append(f"{s.benchmark:<9} {s.variant:<{width}} {a.n:>5} {a.correct:>7} {pct(a.accuracy):>8}  "
                     f"{interval(a.ci_low, a.ci_high):<17} {s.skipped:>7} {s.errors:>6}")
    if comparisons:
        lines.append("")
        head = f"{'benchmark':<9} {'variant':<{width}} {'vs':<{width}} {'n':>5} {'Δ points':>8}  {'95% CI':<15} {'+/-':>9} {'McNemar p':>9}"
        lines += [head, "-" * len(head)]
        for c in comparisons:
            p = c.paired
            lines.append(f"{c.benchmark:<9} {c.variant:<{width}} {c.reference:<{width}} {p.n:>5} {points(p.delta):>8}  "
                         f"{interval(p.delta_ci_low, p.delta_ci_high, points):<15} {f'+{p.only_variant}/-{p.only_reference}':>9} "
                         f"{p_value(p.mcnemar_p):>9}")
    return "\n".join(lines)
