"""The learning-forgetting frontier: what each adapter or checkpoint bought and what it cost.

For every variant with an adapter, one point: x = its change on the specialization task
(Spider execution accuracy, paired with the baseline on the same items), y = its change on the
generalization task (MMLU accuracy, and the probability of the right answer among the choices,
which moves before accuracy does), each with its 95% interval and its p-value corrected across
the run's tests (Holm). The Pareto front is drawn on the changes the corrected tests can tell
from zero (a change that is not significant counts as none), so noise puts no point on it.

The best trade-off is the point with the largest specialization gain among those that
*qualify*: the gain significant after Holm's correction, and the generalization change
non-inferior at the experiment's margin (the lower end of its interval above -margin). None is
named when none qualifies. Adapters whose training diverged or failed are listed with the reason
and are not points: they were not benchmarked.

:func:`adapter_facts` reads what training left behind (the adapters' summaries); everything
else here is a pure function of the run's numbers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.formatting import points as fmt_points
from harness.stats import PairedMean, best_tradeoff, pareto_front
from harness.summary import Comparison, Continuous
from harness.tasks import TASKS
from harness.training_config import run_status

SUMMARY_NAME = "training_summary.json"


@dataclass(frozen=True)
class AdapterFacts:
    """What training says of one variant's adapter."""

    variant: str
    adapter: str
    status: str  # "succeeded", "diverged", "failed", or "not trained" (no summary anywhere)
    reason: str | None = None
    steps_done: int | None = None
    steps_planned: int | None = None
    examples_seen: int | None = None
    tokens_seen: int | None = None
    final_loss: float | None = None
    cut_short: bool = False
    sweep: str = ""
    point: str = ""  # the run's sweep label
    values: tuple[tuple[str, str], ...] = ()
    epochs_at: float | None = None

    @property
    def benchmarkable(self) -> bool:
        return self.status == "succeeded"


def _summary(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def adapter_facts(variants: Sequence) -> dict[str, AdapterFacts]:
    """The training facts of every variant with an adapter: from the adapter's own summary
    (a checkpoint has one too), else from its run's failure summary."""
    out: dict[str, AdapterFacts] = {}
    for v in variants:
        if not v.adapter:
            continue
        origin = getattr(v, "origin", None)
        where = (
            {
                "sweep": origin.sweep,
                "point": origin.point,
                "values": tuple(origin.values),
                "epochs_at": origin.epochs_at,
            }
            if origin is not None
            else {}
        )
        summary = _summary(Path(v.adapter) / SUMMARY_NAME)
        if summary is not None and (Path(v.adapter) / "adapter_config.json").is_file():
            out[v.name] = AdapterFacts(
                v.name,
                v.adapter,
                str(summary.get("status") or "succeeded"),
                summary.get("reason"),
                summary.get("steps_done", summary.get("step")),
                summary.get("steps_planned"),
                summary.get("examples_seen"),
                summary.get("tokens_seen"),
                summary.get("final_loss"),
                bool(summary.get("cut_short")),
                **where,
            )
            continue
        status = run_status(origin.run_output if origin is not None else v.adapter)
        if status is None or status.get("status") == "succeeded":
            out[v.name] = AdapterFacts(
                v.name, v.adapter, "not trained", "no adapter and no training summary: train it", **where
            )
        else:
            out[v.name] = AdapterFacts(
                v.name,
                v.adapter,
                str(status.get("status")),
                status.get("reason"),
                status.get("steps_done"),
                status.get("steps_planned"),
                None,
                None,
                status.get("final_loss"),
                bool(status.get("cut_short")),
                **where,
            )
    return out


def roles(tasks: Sequence[str]) -> tuple[str | None, str | None]:
    """The experiment's (specialization, generalization) tasks: the first of each role."""
    spec = next((t for t in tasks if TASKS[t].report.role == "specialization"), None)
    gen = next((t for t in tasks if TASKS[t].report.role == "generalization"), None)
    return spec, gen


@dataclass(frozen=True)
class FrontierPoint:
    variant: str
    gain: Comparison  # on the specialization task
    cost: Comparison  # accuracy on the generalization task
    continuous: PairedMean | None  # probability of the right answer on the generalization task
    task_kl: PairedMean | None  # KL(base || adapted) on the specialization task's gold answers
    facts: AdapterFacts | None
    on_front: bool  # by accuracy on both axes (significant changes only)
    on_front_continuous: bool  # by the specialization accuracy and the continuous measure
    non_inferior: bool = False  # the cost's interval stays above -margin
    qualifies: bool = False  # gain significant (Holm) and cost non-inferior


@dataclass(frozen=True)
class Frontier:
    specialization: str
    generalization: str
    points: tuple[FrontierPoint, ...]
    not_benchmarked: tuple[AdapterFacts, ...]
    best: str | None  # the variant of the best trade-off; None when no point qualifies
    best_rule: str  # how it was chosen, for a reader
    margin: float  # the non-inferiority margin on the generalization accuracy (a fraction)
    why_none: str = ""  # when best is None: "no point gains significantly" or "no point qualifies"
    drawn: bool = False  # a sweep or checkpoints: a frontier to draw (one adapter is not one)


DEFAULT_MARGIN = 0.01


def _credible(c: Comparison | None, estimate: float) -> float:
    """A change the run's corrected test tells from zero, else 0: what the front is drawn on."""
    return estimate if c is not None and c.significant else 0.0


def build_frontier(
    tasks: Sequence[str],
    comparisons: Sequence[Comparison],
    continuous: Sequence[Continuous],
    facts: Mapping[str, AdapterFacts],
    *,
    margin: float = DEFAULT_MARGIN,
) -> Frontier | None:
    """The frontier of the variants with adapters, or None when the run has no specialization
    or no generalization task, or no adapter variant. ``margin``: the generalization accuracy
    loss (a fraction) a point's interval may reach and still count as non-inferior."""
    spec, gen = roles(tasks)
    if spec is None or gen is None or not facts:
        return None
    by = {(c.variant, c.benchmark): c for c in comparisons}
    cont = {(c.variant, c.benchmark, c.measure): c for c in continuous}
    names = [v for v in facts if (v, spec) in by and (v, gen) in by]
    gains = [by[(v, spec)] for v in names]
    costs = [by[(v, gen)] for v in names]
    probs = [cont.get((v, gen, "gold_prob")) for v in names]
    front = pareto_front(
        [(_credible(g, g.paired.delta), _credible(c, c.paired.delta)) for g, c in zip(gains, costs)]
    )
    if names and all(p is not None for p in probs):
        front_c = pareto_front(
            [(_credible(g, g.paired.delta), _credible(p, p.result.delta)) for g, p in zip(gains, probs)]
        )
    else:
        front_c = [False] * len(names)
    significant = [g.significant for g in gains]
    lows = [c.paired.delta_ci_low for c in costs]
    best_index = best_tradeoff([g.paired.delta for g in gains], significant, lows, margin)
    non_inferior = [low > -margin for low in lows]  # NaN: not shown to be
    qualifies = [s and g.paired.delta > 0 and ni for s, g, ni in zip(significant, gains, non_inferior)]
    if best_index is not None:
        why_none = ""
    elif not any(s and g.paired.delta > 0 for s, g in zip(significant, gains)):
        why_none = f"no point gains significantly on {spec}"
    else:
        why_none = (
            f"no point qualifies: every significant {spec} gain comes with a {gen} interval reaching "
            f"past -{fmt_points(margin)[1:]} points"
        )
    points = tuple(
        FrontierPoint(
            v,
            gains[i],
            costs[i],
            probs[i].result if probs[i] is not None else None,
            cont[(v, spec, "kl_to_base")].result if (v, spec, "kl_to_base") in cont else None,
            facts.get(v),
            front[i],
            front_c[i],
            non_inferior[i],
            qualifies[i],
        )
        for i, v in enumerate(names)
    )
    drawn = any(f.sweep or f.point or f.epochs_at is not None for f in facts.values())
    m = fmt_points(margin)[1:]
    return Frontier(
        spec,
        gen,
        points,
        tuple(f for f in facts.values() if not f.benchmarkable),
        names[best_index] if best_index is not None else None,
        f"the largest {spec} gain among the points whose gain is significant (Holm-adjusted "
        f"p < 0.05) and whose {gen} accuracy change is non-inferior at a margin of "
        f"{m} points (the lower end of its 95% interval above -{m})",
        margin,
        why_none,
        drawn,
    )
