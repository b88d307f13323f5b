"""The content of ``results.json``: every number of the analysis, the gates, the manifest and
every case, undefined numbers as null (docs/results_schema.md)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict

from harness.numbers.stats import CONFIDENCE, PairedMean
from harness.numbers.summary import Continuous
from harness.report.analysis import MEASURES, Analysis, conclusion
from harness.report.frontier import frontier_measure

SCHEMA = 3  # docs/results_schema.md: every key, and what changed from the schemas before


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
    name = frontier_measure(task)
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
