"""The learning-forgetting frontier: what each adapter or checkpoint bought and what it cost.

For every variant with an adapter, one point: x = its change on the specialization task
(Spider execution accuracy, paired with the baseline on the same items), y = its change on the
generalization task (MMLU accuracy, and the continuous log-probability of the right answer,
which moves before accuracy does), each with its 95% interval. Points that no other point beats
on both axes are the Pareto front; the best trade-off is the front point with the largest gain
among those whose cost stays within a bound (all of them without one). Adapters whose training
diverged or failed are listed with the reason and are not points: they were not benchmarked.

:func:`adapter_facts` reads what training left behind (the adapters' summaries); everything
else here is a pure function of the run's numbers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

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
    continuous: PairedMean | None  # log-probability of the right answer on the generalization task
    task_kl: PairedMean | None  # KL(base || adapted) on the specialization task's gold answers
    facts: AdapterFacts | None
    on_front: bool  # by accuracy on both axes
    on_front_continuous: bool  # by the specialization accuracy and the continuous measure


@dataclass(frozen=True)
class Frontier:
    specialization: str
    generalization: str
    points: tuple[FrontierPoint, ...]
    not_benchmarked: tuple[AdapterFacts, ...]
    best: str | None  # the variant of the best trade-off
    best_rule: str  # how it was chosen, for a reader
    max_cost: float | None  # the bound on the cost used (a fraction), if any


def build_frontier(
    tasks: Sequence[str],
    comparisons: Sequence[Comparison],
    continuous: Sequence[Continuous],
    facts: Mapping[str, AdapterFacts],
    *,
    max_cost: float | None = None,
) -> Frontier | None:
    """The frontier of the variants with adapters, or None when the run has no specialization
    or no generalization task, or no adapter variant."""
    spec, gen = roles(tasks)
    if spec is None or gen is None or not facts:
        return None
    by = {(c.variant, c.benchmark): c for c in comparisons}
    cont = {(c.variant, c.benchmark, c.measure): c.result for c in continuous}
    names = [v for v in facts if (v, spec) in by and (v, gen) in by]
    gains = [by[(v, spec)].paired.delta for v in names]
    costs = [by[(v, gen)].paired.delta for v in names]
    logp = [cont.get((v, gen, "gold_logprob")) for v in names]
    by_accuracy = list(zip(gains, costs))
    front = pareto_front(by_accuracy)
    if names and all(p is not None for p in logp):
        candidates, rule_axis = (
            [(g, p.delta) for g, p in zip(gains, logp)],
            "log-probability of the right answer",
        )
        front_c = pareto_front(candidates)
    else:
        candidates, rule_axis = by_accuracy, "accuracy"
        front_c = [False] * len(names)
    # The bound is on accuracy (the frontier gates' max_cost_points), whichever axis draws the front.
    best_index = best_tradeoff(candidates, max_cost, changes=costs)
    bound = "" if max_cost is None else f" whose {gen} accuracy change is no worse than -{max_cost:g}"
    points = tuple(
        FrontierPoint(
            v,
            by[(v, spec)],
            by[(v, gen)],
            logp[i],
            cont.get((v, spec, "kl_to_base")),
            facts.get(v),
            front[i],
            front_c[i],
        )
        for i, v in enumerate(names)
    )
    return Frontier(
        spec,
        gen,
        points,
        tuple(f for f in facts.values() if not f.benchmarkable),
        names[best_index] if best_index is not None else None,
        f"the Pareto-front point (by {spec} accuracy and {gen} {rule_axis}) "
        f"with the largest {spec} gain{bound}",
        max_cost,
    )
