"""The report of a run: ``results.json``, ``report.md`` and the trade-off figure.

Renders what harness/numbers/summary.py computed (accuracies with Wilson intervals, paired comparisons
with the baseline) and what harness/report/gates.py decided, with the run's manifest (code, libraries,
machine, prediction phases). The numbers are computed elsewhere; this module writes them.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from importlib import metadata
from pathlib import Path

from harness.files import atomic_write, file_sha256, write_json
from harness.formatting import interval, p_value, pct, points
from harness.numbers.stats import CONFIDENCE, Accuracy, PairedMean
from harness.numbers.summary import Continuous, PairSummary
from harness.report.analysis import MEASURES, Analysis, conclusion
from harness.report.figure import plot_frontier, plot_tradeoff
from harness.tasks import TASKS
from harness.tasks.mmlu import LETTERS as MMLU_LETTERS

SCHEMA = 3  # docs/results_schema.md: every key, and what changed from the schemas before
FIGURE_NAME = "tradeoff.png"
FRONTIER_NAME = "frontier.png"
LIBRARIES = (
    "torch",
    "transformers",
    "peft",
    "trl",
    "bitsandbytes",
    "accelerate",
    "deepeval",
    "pytest",
    "pytest-xdist",
    "statsmodels",
)


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
    """The prediction phases' own records (``phases/<task>-<variant>.json``), by name.
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
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip() or None


def _sha256(path: str) -> str | None:
    try:
        return file_sha256(Path(path))
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
    command_record: Mapping | None = None,
) -> dict:
    """Everything needed to tell two runs' numbers apart: code, libraries, machine, phases; and,
    under ``harness bench``, the whole command's time and its parts (``command_record``)."""
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
        "bench": dict(command_record or {}),
    }


# -- results.json ---------------------------------------------------------------------------------


def _finite(value):
    """JSON has no NaN: undefined numbers (no items) are written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _frontier_json(analysis: Analysis) -> dict | None:
    f = analysis.frontier
    if f is None:
        return None
    return {
        "specialization": f.specialization,
        "generalization": f.generalization,
        "best": f.best,
        "best_rule": f.best_rule,
        "why_none": f.why_none,
        "split": f.split,
        "selection_note": f.selection_note,
        "margin_points": 100 * f.margin,
        "drawn": f.drawn,
        "points": [
            {
                "variant": p.variant,
                "gain": {**asdict(p.gain.paired), "p_holm": p.gain.p_holm, "q_bh": p.gain.q_bh},
                "cost": {**asdict(p.cost.paired), "p_holm": p.cost.p_holm, "q_bh": p.cost.q_bh},
                **_declared(f.generalization, asdict(p.continuous) if p.continuous else None),
                **_declared(f.specialization, _size_json(p.task_kl) if p.task_kl else None),
                "on_front": p.on_front,
                "on_front_continuous": p.on_front_continuous,
                "non_inferior": p.non_inferior,
                "qualifies": p.qualifies,
            }
            for p in f.points
        ],
        "not_measured": [asdict(x) for x in f.not_benchmarked],
        "seed_groups": [
            {
                "setting": g.setting,
                "variants": list(g.variants),
                "epochs_at": g.epochs_at,
                "interval": "two-way bootstrap over seeds and items (percentile)",
                "gain": {**asdict(g.gain), "p_holm": g.gain_p_holm},
                "cost": {**asdict(g.cost), "p_holm": g.cost_p_holm},
                **_declared(f.generalization, asdict(g.prob) if g.prob else None),
                "non_inferior": g.non_inferior,
                "qualifies": g.qualifies,
            }
            for g in f.groups
        ],
    }


def _declared(task: str, value: dict | None) -> dict:
    """``value`` under the name of the measure ``task`` declares for the frontier (none: nothing)."""
    name = TASKS[task].report.frontier_measure if task in TASKS else ""
    return {name: value} if name else {}


def _size_json(m: PairedMean) -> dict:
    """A KL: a size with its bootstrap interval, no test and no reference mean."""
    return {"n": m.n, "mean": m.delta, "ci_low": m.ci_low, "ci_high": m.ci_high, "method": m.method}


def _continuous_json(c: Continuous) -> dict:
    head = {"variant": c.variant, "reference": c.reference, "task": c.benchmark, "measure": c.measure}
    if MEASURES[c.measure].is_size:
        return {**head, **_size_json(c.result)}
    return {**head, **asdict(c.result), "p_holm": c.p_holm, "q_bh": c.q_bh}


def results_payload(
    analysis: Analysis, rows: Sequence, *, manifest: Mapping, gates: Mapping | None = None
) -> dict:
    """The content of ``results.json`` (schema :data:`SCHEMA`, docs/results_schema.md)."""
    return _finite(
        {
            "schema": SCHEMA,
            "confidence": CONFIDENCE,
            "baseline": analysis.baseline,
            "summary": [
                {
                    "variant": s.variant,
                    "task": s.benchmark,
                    **asdict(s.overall),
                    "errored": s.errored,
                    "same_predictions_as": analysis.same.get((s.variant, s.benchmark)),
                    "skipped": s.skipped,
                    "skip_reasons": s.skip_reasons,
                    "errors": s.errors,
                    "error_reasons": s.error_reasons,
                    "why_wrong": dict(analysis.why_wrong.get((s.variant, s.benchmark), {})),
                    "answers": dict(analysis.predicted.get((s.variant, s.benchmark), {})),
                    "by_group": {g: asdict(a) for g, a in s.by_group.items()},
                    "by_subject": {g: asdict(a) for g, a in s.by_subject.items()},
                }
                for s in analysis.summary
            ],
            "conclusion": conclusion(analysis),
            "multiple_comparisons": {
                "policy": "Holm-adjusted p (p_holm) decides 'significant' at 0.05; Benjamini-Hochberg "
                "q (q_bh) beside it; the family is every accuracy comparison and every paired "
                "continuous change of the run; a KL is a size, not a test",
                "family_size": sum(math.isfinite(c.p_holm) for c in analysis.comparisons)
                + sum(math.isfinite(c.p_holm) for c in analysis.continuous),
            },
            "noise_floor": {
                "null_variants": list(analysis.null_variants),
                "floors": [
                    {"task": t, "measure": m, "floor": v} for (t, m), v in sorted(analysis.noise.items())
                ],
                "within_noise": [
                    {"variant": v, "task": t, "measure": m} for v, t, m in sorted(analysis.within_noise)
                ],
            },
            "comparisons": [
                {
                    "variant": c.variant,
                    "reference": c.reference,
                    "task": c.benchmark,
                    **asdict(c.paired),
                    "p_holm": c.p_holm,
                    "q_bh": c.q_bh,
                    "significant": c.significant,
                }
                for c in analysis.comparisons
            ],
            "continuous": [_continuous_json(c) for c in analysis.continuous],
            "adapters": {v: asdict(f) for v, f in analysis.facts.items()},
            "frontier": _frontier_json(analysis),
            "gates": dict(gates)
            if gates is not None
            else {"file": "", "note": "not checked", "passed": True, "results": []},
            "manifest": dict(manifest),
            "cases": [r.as_dict() if hasattr(r, "as_dict") else dict(r) for r in rows],
        }
    )


def write_report(run_dir: Path, payload: Mapping, analysis: Analysis) -> dict[str, Path]:
    """Write ``report.md`` (which links the figures), the figures, then ``results.json``, last
    and atomically: a folder with ``results.json`` holds a finished report. A failing plot never
    costs the numbers: ``results.json`` is written all the same, then the error raised."""
    run_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    try:
        paths["markdown"] = atomic_write(run_dir / "report.md", render_markdown(payload, analysis))
        paths["figure"] = plot_tradeoff(analysis, run_dir / FIGURE_NAME, title=payload["manifest"]["run_id"])
        if analysis.frontier is not None and analysis.frontier.drawn and analysis.frontier.points:
            paths["frontier"] = plot_frontier(
                analysis.frontier,
                run_dir / FRONTIER_NAME,
                baseline=analysis.baseline,
                title=payload["manifest"]["run_id"],
            )
    finally:
        paths = {"results": write_json(run_dir / "results.json", payload), **paths}
    return paths


# -- text -------------------------------------------------------------------------------------


def _table(head: Sequence[str], rows: Iterable[Sequence], align: str = "") -> list[str]:
    align = align or "l" + "r" * (len(head) - 1)
    sep = ["---:" if a == "r" else "---" for a in align]
    return [
        "| " + " | ".join(head) + " |",
        "| " + " | ".join(sep) + " |",
        *("| " + " | ".join(str(c) for c in row) + " |" for row in rows),
    ]


def _num(x: float | None, digits: int = 3) -> str:
    """A signed number; tiny ones (a KL of an adapter that barely moved) in 3 significant digits."""
    if x is None or not math.isfinite(x):
        return "n/a"
    if x != 0 and abs(x) < 10**-digits:
        return f"{x:+.2e}"
    return f"{x:+.{digits}f}"


def _mean_interval(m: PairedMean, digits: int = 3) -> str:
    return interval(m.ci_low, m.ci_high, lambda x: _num(x, digits))


def _accuracy_cell(s: PairSummary, analysis: Analysis) -> tuple[str, str]:
    if s.errored:
        return "errored", "–"
    same = analysis.same.get((s.variant, s.benchmark))
    note = f" (= {same})" if same else ""
    return pct(s.overall.accuracy) + note, interval(s.overall.ci_low, s.overall.ci_high)


def _wall(man: Mapping) -> str:
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


MIN_SUBJECT_N = 20  # per-subject rows shown only where every variant scored this many items
# Every choice of a multiple-choice task has its column in "answers given", chosen or not: a
# choice no variant gives is the bias that table exists to show.
ANSWER_CHOICES = {"mmlu": tuple(MMLU_LETTERS)}


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


def _label(labels: Mapping, variant: str, task: str) -> str:
    return labels.get((variant, task), variant)


def render_markdown(payload: Mapping, analysis: Analysis) -> str:
    man = payload["manifest"]
    baseline = analysis.baseline
    exp = man["experiment"]
    labels = variant_labels(payload)
    out = [
        f"# Trade-off report: run {man['run_id']}",
        "",
        f"Experiment `{exp['name']}` ({exp['source']}); baseline variant **{baseline}**; {_wall(man)}.",
        "",
        "## Conclusion",
        "",
        conclusion(analysis),
        "",
        *_departures_section(exp),
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
        *[f"  - *{m.title}*: {_md_escape(m.definition)}." for m in MEASURES.values()],
        "  A change is the variant minus the baseline on the same items (paired t interval and test); a",
        "  KL is a size (never below 0): its mean with a bootstrap (BCa) interval, no sign and no test.",
        "- **(= v)** marks predictions identical to variant v's (e.g. MMLU of a 3-shot Spider variant):",
        "  the same measurement twice, not compared.",
        "",
        f"![trade-off plot]({FIGURE_NAME})",
        "",
        "## Accuracy",
        "",
    ]
    rows = []
    for s in analysis.summary:
        acc, ci = _accuracy_cell(s, analysis)
        rows.append(
            [
                s.benchmark,
                _label(labels, s.variant, s.benchmark) + (" (baseline)" if s.variant == baseline else ""),
                s.overall.n,
                s.overall.correct,
                acc,
                ci,
                s.skipped,
                s.errors,
            ]
        )
    out += _table(
        ["task", "variant", "n", "correct", "accuracy", f"{CONFIDENCE:.0%} CI", "skipped", "errors"],
        rows,
        align="llrrrrrr",
    )
    out += ["", f"## Differences from the baseline ({baseline})", ""]
    if analysis.comparisons:
        out += _table(
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
                    _label(labels, c.variant, c.benchmark)
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
    out += _continuous_section(analysis)
    out += _frontier_section(analysis)
    out += _adapters_section(analysis)
    out += _why_wrong_section(analysis, labels)
    for benchmark, title, attr in _group_sections(analysis.summary):
        out += _group_table(analysis, labels, benchmark, title, attr)
    skips = [(s, reason, n) for s in analysis.summary for reason, n in s.skip_reasons.items()]
    errors = [(s, reason, n) for s in analysis.summary for reason, n in s.error_reasons.items()]
    out += ["", "## Skipped and errored items", ""]
    if skips or errors:
        out += _table(
            ["task", "variant", "kind", "items", "reason"],
            [
                [s.benchmark, _label(labels, s.variant, s.benchmark), kind, n, _md_escape(reason)]
                for kind, block in (("skipped", skips), ("error", errors))
                for s, reason, n in block
            ],
            align="lllrl",
        )
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
    out += _manifest_section(man, exp)
    out += ["", "Every number above is in `results.json`, with every item's outcome under `cases`.", ""]
    return "\n".join(out)


def _group_table(analysis: Analysis, labels: Mapping, task: str, title: str, attr: str) -> list[str]:
    """One task's accuracy per group (every group) or per subject (only the subjects where every
    variant scored at least ``MIN_SUBJECT_N`` items: fewer cannot say much; all are in results.json)."""
    block = [s for s in analysis.summary if s.benchmark == task and getattr(s, attr) and not s.errored]
    if not block:
        return []
    keys = sorted({k for s in block for k in getattr(s, attr)}, key=_group_order(task))
    note = "Accuracy (correct/n) and its 95% Wilson interval, per variant."
    if attr == "by_subject":
        shown = [
            k for k in keys if all((getattr(s, attr).get(k) or _NO_ITEMS).n >= MIN_SUBJECT_N for s in block)
        ]
        note += (
            f" Only the subjects where every variant scored at least {MIN_SUBJECT_N} items "
            f"({len(shown)} of {len(keys)}): with fewer, a 95% interval spans some 40 points or more. "
            "Every subject is in `results.json` (`summary[].by_subject`)."
        )
        keys = shown
    out = ["", f"## {title}", "", note, ""]
    if keys:
        out += _table(
            [
                TASKS[task].report.subgroup_label if attr == "by_subject" else "group",
                *(_label(labels, s.variant, task) for s in block),
            ],
            [[k, *(_cell(getattr(s, attr).get(k)) for s in block)] for k in keys],
        )
    return out


def _continuous_section(analysis: Analysis) -> list[str]:
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
        out += _table(
            ["task", "variant", "measure", "n", "variant", "baseline", "Δ", "95% CI", "p", "Holm p", "BH q"],
            [
                [
                    c.benchmark,
                    _variant_cell(c, analysis),
                    _md_escape(MEASURES[c.measure].title),
                    c.result.n,
                    _num(c.result.mean_variant).lstrip("+"),
                    _num(c.result.mean_reference).lstrip("+"),
                    _num(c.result.delta),
                    _mean_interval(c.result),
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
        out += _table(
            ["task", "variant", "measure", "n", "mean", "95% CI"],
            [
                [
                    c.benchmark,
                    _variant_cell(c, analysis),
                    _md_escape(MEASURES[c.measure].title),
                    c.result.n,
                    _size(c.result.delta),
                    interval(c.result.ci_low, c.result.ci_high, _size),
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


def _variant_cell(c, analysis: Analysis) -> str:
    if analysis.is_null(c.variant):
        return f"{c.variant} (*null*)"
    if (c.variant, c.benchmark, c.measure) in analysis.within_noise:
        return f"{c.variant} (*within noise*)"
    return c.variant


def _size(x: float | None) -> str:
    """A non-negative size (a KL), unsigned."""
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{x:.2e}" if 0 < abs(x) < 1e-3 else f"{x:.4f}"


def _change_cell(m: PairedMean) -> str:
    """A change of a probability, in points, with its interval."""
    return f"{points(m.delta)} {interval(m.ci_low, m.ci_high, points)}"


def _departures_section(exp: Mapping) -> list[str]:
    departures = exp.get("departures") or ()
    if not departures:
        return []
    return [
        "## Departures from the protocol reproduced",
        "",
        *(f"- {_md_escape(d)}" for d in departures),
        "",
    ]


def _values(facts) -> str:
    if facts is None:
        return "–"
    values = ", ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in facts.values) or "–"
    return values + (f" @ {facts.epochs_at:g} ep" if facts.epochs_at is not None else "")


def _frontier_section(analysis: Analysis) -> list[str]:
    f = analysis.frontier
    if f is None or not f.drawn:  # one adapter with different shots is no frontier
        return []
    margin = points(f.margin)[1:]
    out = [
        "",
        "## The learning-forgetting frontier",
        "",
        f"One point per adapter or checkpoint: what it bought on {f.specialization} and what it cost on "
        f"{f.generalization}, against the baseline ({analysis.baseline}), paired on the same items. "
        f"**front**: no other point is at least as good on both axes and better on one, a change counting "
        f"only where its Holm-corrected test is significant (by accuracy; **front (p)**: by the "
        f"probability of the right answer instead). **non-inf.**: the {f.generalization} interval's lower "
        f"end is above -{margin} points (the margin). The best trade-off is {f.best_rule}"
        + (f": **{f.best}**." if f.best else f"; none is named: {f.why_none}.")
        + (f" {f.selection_note}" if f.selection_note else ""),
        "",
    ]
    if f.points:
        out.append(f"![frontier plot]({FRONTIER_NAME})")
        out.append("")
        rows = []
        for p in f.points:
            facts = p.facts
            steps = f"{facts.steps_done}/{facts.steps_planned}" if facts and facts.steps_planned else "–"
            loss = f"{facts.final_loss:.3f}" if facts and isinstance(facts.final_loss, (int, float)) else "–"
            status = (facts.status + (", cut short" if facts.cut_short else "")) if facts else "–"
            g, c = p.gain.paired, p.cost.paired
            rows.append(
                [
                    ("**" + p.variant + "** (best)") if p.variant == f.best else p.variant,
                    _values(facts),
                    steps,
                    loss,
                    status,
                    f"{points(g.delta)} {interval(g.delta_ci_low, g.delta_ci_high, points)}",
                    p_value(p.gain.p_holm) + (" *" if p.gain.significant else ""),
                    f"{points(c.delta)} {interval(c.delta_ci_low, c.delta_ci_high, points)}",
                    p_value(p.cost.p_holm) + (" *" if p.cost.significant else ""),
                    "yes" if p.non_inferior else "no",
                    _change_cell(p.continuous) if p.continuous else "–",
                    f"{_size(p.task_kl.delta)} {interval(p.task_kl.ci_low, p.task_kl.ci_high, _size)}"
                    if p.task_kl
                    else "–",
                    "yes" if p.on_front else "",
                    "yes" if p.on_front_continuous else "",
                ]
            )
        out += _table(
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
                "p(right) Δ [CI]",
                "KL to base [CI]",
                "front",
                "front (p)",
            ],
            rows,
            align="lllrlrrrrlrrll",
        )
        out += [
            "",
            "Δ in points; p(right): the probability of the right answer among the choices, in points; "
            "\\* significant (Holm).",
        ]
    else:
        out.append("No adapter variant ran both tasks.")
    out += _seeds_table(f)
    if f.not_benchmarked:
        out += ["", "Not benchmarked (their training did not succeed; they count as run and lost):", ""]
        out += [
            f"- `{x.variant}` ({_values(x)}): **{x.status}**"
            + (f" after {x.steps_done} of {x.steps_planned} steps" if x.steps_planned else "")
            + f": {_md_escape(x.reason or 'no reason recorded')}"
            for x in f.not_benchmarked
        ]
    return out


def _seed_cell(c) -> str:
    return f"{points(c.mean)} {interval(c.ci_low, c.ci_high, points)}"


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
                _seed_cell(g.gain),
                f"{100 * g.gain.spread:.1f} ({', '.join(points(x) for x in g.gain.per_seed)})",
                p_value(g.gain_p_holm) + (" *" if g.gain_significant else ""),
                _seed_cell(g.cost),
                f"{100 * g.cost.spread:.1f} ({', '.join(points(x) for x in g.cost.per_seed)})",
                "yes" if g.non_inferior else "no",
                _seed_cell(g.prob) if g.prob else "–",
            ]
        )
    out += _table(
        [
            "setting",
            "seeds",
            f"{f.specialization} Δ, seed mean [CI]",
            "seeds' SD (each)",
            "Holm p",
            f"{f.generalization} Δ, seed mean [CI]",
            "seeds' SD (each)",
            "non-inf.",
            "p(right) Δ [CI]",
        ],
        rows,
        align="lrrrrrrlr",
    )
    return out


def _adapters_section(analysis: Analysis) -> list[str]:
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
    out += _table(
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


def _why_wrong_section(analysis: Analysis, labels: Mapping | None = None) -> list[str]:
    labels = labels or {}
    if not analysis.why_wrong and not analysis.predicted:
        return []
    out = ["", "## Why answers were wrong", ""]
    for task in TASKS:
        block = {v: kinds for (v, t), kinds in analysis.why_wrong.items() if t == task}
        if block:
            kinds = sorted({k for c in block.values() for k in c})
            out += [f"{TASKS[task].report.title}: wrong answers by kind.", ""]
            out += _table(
                ["variant", *kinds],
                [[_label(labels, v, task), *(c.get(k, 0) for k in kinds)] for v, c in sorted(block.items())],
            )
            out.append("")
        answers = {v: c for (v, t), c in analysis.predicted.items() if t == task}
        if answers:
            choices = ANSWER_CHOICES.get(task, ())
            keys = [*choices, *sorted({k for c in answers.values() for k in c} - set(choices))]
            out += [
                f"{TASKS[task].report.title}: answers given (a model that never gives one is biased, "
                "whatever its accuracy).",
                "",
            ]
            out += _table(
                ["variant", *(f"`{k}`" for k in keys)],
                [[_label(labels, v, task), *(c.get(k, 0) for k in keys)] for v, c in sorted(answers.items())],
            )
            out.append("")
    return out


def _manifest_section(man: Mapping, exp: Mapping) -> list[str]:
    out = ["", "## Manifest", ""]
    libs = ", ".join(f"{k} {v}" for k, v in man["libraries"].items() if v)
    out += [
        f"- run `{man['run_id']}`, {man['started']} to {man['finished']} ({_wall(man)})",
        f"- command: `{' '.join(man['command'])}`",
        f"- git commit: `{man['git_commit'] or 'unknown'}`; "
        f"experiment file sha256 `{(exp['sha256'] or 'unknown')[:12]}`",
        f"- Python {man['python']} on {man['platform']} ({man['cpu_count']} CPUs); "
        f"device(s): {', '.join(man['devices']) or 'unknown'}",
        f"- libraries: {libs}",
    ]
    trained = (man.get("bench") or {}).get("training") or []
    if trained:
        out += ["", "Training by this command:", ""]
        out += _table(
            ["config", "seconds", "exit"],
            [[f"`{t['config']}`", f"{t['seconds']:.1f}", t["exit"]] for t in trained],
            align="lrr",
        )
    phases = man["phases"]
    models = {v["name"]: v.get("model", "") for v in exp.get("variants", [])}
    if phases:
        out += ["", "Prediction phases (from `phases/*.json`):", ""]
        out += _table(
            [
                "phase",
                "model",
                "adapter",
                "load",
                "template",
                "seed",
                "prompts",
                "cached",
                "computed",
                "seconds",
                "device",
            ],
            [[name, *_phase_cells(p, models)] for name, p in sorted(phases.items())],
            align="lllllrrrrrl",
        )
    return out


def _group_sections(summary: Sequence[PairSummary]) -> list[tuple[str, str, str]]:
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


_NO_ITEMS = Accuracy(0, 0, float("nan"), float("nan"), float("nan"))


def _cell(a: Accuracy | None) -> str:
    if a is None or a.n == 0:
        return "–"
    return f"{pct(a.accuracy)} ({a.correct}/{a.n}) {interval(a.ci_low, a.ci_high, lambda x: pct(x, 0))}"


def _md_escape(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")[:300]


def _phase_cells(p: Mapping, models: Mapping[str, str] | None = None) -> list:
    if "unreadable" in p:
        return ["unreadable: " + _md_escape(p["unreadable"]), *[""] * 9]
    fp = p.get("fingerprint") if isinstance(p.get("fingerprint"), dict) else {}

    def short(v):
        return "–" if v in (None, "") else _md_escape(v if isinstance(v, str) else json.dumps(v))[:60]

    template = p.get("template", p.get("kind", ""))
    if p.get("template_version") not in (None, ""):
        template = f"{template} v{p['template_version']}"
    seconds = p.get("seconds")
    name = (models or {}).get(p.get("variant"), "")
    model = f"{_md_escape(name)} (`{short(fp.get('model'))}`)" if name else short(fp.get("model"))
    return [
        model,
        short(fp.get("adapter")),
        short(fp.get("load")),
        short(template),
        short(p.get("seed")),
        short(p.get("n_prompts")),
        short(p.get("cached")),
        short(p.get("computed")),
        f"{seconds:.1f}" if isinstance(seconds, (int, float)) else "–",
        short(p.get("device")),
    ]


def format_table(analysis: Analysis, labels: Mapping | None = None) -> str:
    """The terminal summary: accuracies with intervals, differences from the baseline, the
    continuous measures and the frontier's best trade-off. ``labels``: :func:`variant_labels`."""
    summary = analysis.summary
    labels = labels or {}
    name = lambda variant, task: _label(labels, variant, task)
    width = max([len(name(s.variant, s.benchmark)) for s in summary] + [7])
    tw = max([len(s.benchmark) for s in summary] + [9])
    head = (
        f"{'task':<{tw}} {'variant':<{width}} {'n':>5} {'correct':>7} {'accuracy':>8}  {'95% CI':<17} "
        f"{'skipped':>7} {'errors':>6}"
    )
    lines = [head, "-" * len(head)]
    for s in summary:
        a = s.overall
        _, ci = _accuracy_cell(s, analysis)
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
    for c in analysis.continuous:
        m = c.result
        if MEASURES[c.measure].is_size:
            value = f"{_size(m.delta)} {interval(m.ci_low, m.ci_high, _size)} (n={m.n})"
        else:
            value = (
                f"Δ {_num(m.delta, 4)} {_mean_interval(m, 4)} "
                f"(n={m.n}, p={p_value(m.p_value)}, Holm p={p_value(c.p_holm)})"
            )
        lines.append(f"{c.benchmark} {c.variant}: {MEASURES[c.measure].title} {value}")
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
