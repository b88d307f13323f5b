"""The report of a run: ``results.json``, ``report.md`` and the trade-off figure.

Renders what harness/summary.py computed (accuracies with Wilson intervals, paired comparisons
with the baseline) and what harness/gates.py decided, with the run's manifest (code, libraries,
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

from harness.analysis import Analysis
from harness.figure import plot_frontier, plot_tradeoff
from harness.files import atomic_write, file_sha256, write_json
from harness.formatting import interval, p_value, pct, points
from harness.stats import CONFIDENCE, Accuracy, PairedMean
from harness.summary import MEASURES, PairSummary
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
        "max_cost": f.max_cost,
        "points": [
            {
                "variant": p.variant,
                "gain": asdict(p.gain.paired),
                "cost": asdict(p.cost.paired),
                "log_probability": asdict(p.continuous) if p.continuous else None,
                "kl_to_base": asdict(p.task_kl) if p.task_kl else None,
                "on_front": p.on_front,
                "on_front_continuous": p.on_front_continuous,
            }
            for p in f.points
        ],
        "not_measured": [asdict(x) for x in f.not_benchmarked],
    }


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
            "comparisons": [
                {"variant": c.variant, "reference": c.reference, "task": c.benchmark, **asdict(c.paired)}
                for c in analysis.comparisons
            ],
            "continuous": [
                {
                    "variant": c.variant,
                    "reference": c.reference,
                    "task": c.benchmark,
                    "measure": c.measure,
                    **asdict(c.result),
                }
                for c in analysis.continuous
            ],
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
        if analysis.frontier is not None and analysis.frontier.points:
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
        "- **Continuous measures** see what accuracy cannot: the log-probability the model gives the",
        "  right answer (mean paired change, paired t interval and test), the KL divergence of its answer",
        "  distribution from the baseline's, and, for an adapter, the KL of its next-token distributions",
        "  from the base model's on the fine-tuning task's own gold answers (which predicts forgetting).",
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
            ],
            [
                [
                    c.benchmark,
                    _label(labels, c.variant, c.benchmark),
                    c.paired.n,
                    pct(c.paired.accuracy),
                    pct(c.paired.reference_accuracy),
                    points(c.paired.delta),
                    interval(c.paired.delta_ci_low, c.paired.delta_ci_high, points),
                    c.paired.only_variant,
                    c.paired.only_reference,
                    p_value(c.paired.mcnemar_p),
                ]
                for c in analysis.comparisons
            ],
            align="llrrrrrrrr",
        )
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
                "subject" if attr == "by_subject" else "group",
                *(_label(labels, s.variant, task) for s in block),
            ],
            [[k, *(_cell(getattr(s, attr).get(k)) for s in block)] for k in keys],
        )
    return out


def _continuous_section(analysis: Analysis) -> list[str]:
    if not analysis.continuous:
        return []
    out = [
        "",
        "## Continuous measures",
        "",
        "Per item, then averaged: Δ is the variant minus the baseline on the same items (paired t), a KL is",
        "the mean divergence itself (0 = no change). Log-probabilities and KL in nats.",
        "",
    ]
    rows = []
    for c in analysis.continuous:
        title = MEASURES[c.measure][0]
        m = c.result
        if c.measure == "gold_logprob":
            rows.append(
                [
                    c.benchmark,
                    c.variant,
                    title,
                    m.n,
                    _num(m.mean_variant),
                    _num(m.mean_reference),
                    _num(m.delta),
                    _mean_interval(m),
                    p_value(m.p_value),
                ]
            )
        else:
            rows.append(
                [
                    c.benchmark,
                    c.variant,
                    title,
                    m.n,
                    _num(m.mean_variant, 4),
                    "–",
                    _num(m.delta, 4),
                    _mean_interval(m, 4),
                    p_value(m.p_value),
                ]
            )
    out += _table(
        ["task", "variant", "measure", "n", "variant", "baseline", "Δ or mean", "95% CI", "p"],
        rows,
        align="lllrrrrrr",
    )
    return out


def _values(facts) -> str:
    if facts is None:
        return "–"
    values = ", ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in facts.values) or "–"
    return values + (f" @ {facts.epochs_at:g} ep" if facts.epochs_at is not None else "")


def _frontier_section(analysis: Analysis) -> list[str]:
    f = analysis.frontier
    if f is None:
        return []
    out = [
        "",
        "## The learning-forgetting frontier",
        "",
        f"One point per adapter or checkpoint: what it bought on {f.specialization} and what it cost on "
        f"{f.generalization}, against the baseline ({analysis.baseline}), paired on the same items. "
        f"**front**: no other point is at least as good on both axes and better on one (by accuracy; "
        f"**front (logp)**: by the log-probability of the right answer instead). "
        f"The best trade-off is {f.best_rule}.",
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
                    f"{points(c.delta)} {interval(c.delta_ci_low, c.delta_ci_high, points)}",
                    f"{_num(p.continuous.delta)} {_mean_interval(p.continuous)}" if p.continuous else "–",
                    f"{_num(p.task_kl.delta, 4)}" if p.task_kl else "–",
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
                f"{f.generalization} Δ [CI]",
                "logp Δ [CI]",
                "KL to base",
                "front",
                "front (logp)",
            ],
            rows,
            align="lllrlrrrrll",
        )
    else:
        out.append("No adapter variant ran both tasks.")
    if f.not_benchmarked:
        out += ["", "Not benchmarked (their training did not succeed; they count as run and lost):", ""]
        out += [
            f"- `{x.variant}` ({_values(x)}): **{x.status}**"
            + (f" after {x.steps_done} of {x.steps_planned} steps" if x.steps_planned else "")
            + f": {_md_escape(x.reason or 'no reason recorded')}"
            for x in f.not_benchmarked
        ]
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
            f"{'+/-':>9} {'McNemar p':>9}"
        )
        lines += [head, "-" * len(head)]
        for c in analysis.comparisons:
            p = c.paired
            lines.append(
                f"{c.benchmark:<{tw}} {name(c.variant, c.benchmark):<{width}} "
                f"{name(c.reference, c.benchmark):<{width}} "
                f"{p.n:>5} {points(p.delta):>8}  "
                f"{interval(p.delta_ci_low, p.delta_ci_high, points):<15} "
                f"{f'+{p.only_variant}/-{p.only_reference}':>9} {p_value(p.mcnemar_p):>9}"
            )
    for c in analysis.continuous:
        m = c.result
        lines.append(
            f"{c.benchmark} {c.variant}: {MEASURES[c.measure][0]} "
            f"{'Δ ' if c.measure == 'gold_logprob' else ''}{_num(m.delta, 4)} {_mean_interval(m, 4)} "
            f"(n={m.n}, p={p_value(m.p_value)})"
        )
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
