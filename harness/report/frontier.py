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
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from harness.config.training import run_status
from harness.formatting import points as fmt_points
from harness.models.adapters import SUMMARY_NAME
from harness.numbers.bootstrap import SeedsChange, seeds_and_items_bootstrap
from harness.numbers.checks import ALPHA
from harness.numbers.means import PairedMean
from harness.numbers.multiple_comparisons import adjust_pvalues
from harness.numbers.summary import Comparison, Continuous, Measure, field_values, verdicts
from harness.numbers.tradeoff import best_tradeoff, non_inferior, pareto_front, qualifies
from harness.tasks import TASKS


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


def task_name(task: str) -> str:
    """The task's name as a reader knows it ("Spider", "MMLU"), from its report title."""
    return TASKS[task].report.title.split()[0] if task in TASKS else task


def frontier_measure(task: str) -> str:
    """The continuous measure ``task`` declares for the frontier (``Report.frontier_measure``):
    the generalization task's paired change, the specialization task's divergence from the base."""
    return TASKS[task].report.frontier_measure if task in TASKS else ""


def frontier_measure_of(task: str) -> Measure | None:
    """The :class:`Measure` itself that ``task`` declares for the frontier (None: none)."""
    return TASKS[task].report.measures.get(frontier_measure(task)) if task in TASKS else None


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
class SeedGroup:
    """One training setting (sweep point and checkpoint) trained with several seeds: its changes
    as seed means with the seeds' spread and an interval over seeds and items
    (:func:`harness.numbers.stats.seeds_and_items_bootstrap`), p-values Holm-corrected across the
    groups' tests."""

    setting: str  # the variants' name without the seed: "lr=2e-4@1ep"
    variants: tuple[str, ...]  # one per seed
    epochs_at: float | None
    gain: SeedsChange  # specialization accuracy change
    cost: SeedsChange  # generalization accuracy change
    prob: SeedsChange | None  # probability of the right generalization answer, change
    gain_p_holm: float = math.nan
    cost_p_holm: float = math.nan
    non_inferior: bool = False
    qualifies: bool = False

    @property
    def gain_significant(self) -> bool:
        return self.gain_p_holm < ALPHA


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
    groups: tuple[SeedGroup, ...] = ()  # settings trained with several seeds; best is chosen among them
    split: str = ""  # the specialization items' split ("dev", "validation"): chosen and scored there

    @property
    def selection_note(self) -> str:
        """Which split chose the point and which scored it, and what that means."""
        if not self.drawn or not self.split:
            return ""
        if self.split == "validation":
            return (
                f"The point was chosen on the {task_name(self.specialization)} validation split (train "
                "databases held out from training) and its numbers are measured there: confirm the chosen "
                f'setting on dev ({self.specialization}.split = "dev") before quoting its gain.'
            )
        return (
            f"The point was chosen and measured on the same split ({self.split}): its gain is "
            "optimistic by the choice. Choose on validation "
            f'({self.specialization}.split = "validation", trained with data.hold_out = "validation") '
            "and confirm on dev."
        )


DEFAULT_MARGIN = 0.01
_SEED = re.compile(r"seed=[^,@]+,?")


def setting_of(variant: str) -> str:
    """A sweep variant's name without its seed: "lr=2e-4,seed=1@1ep" -> "lr=2e-4@1ep"."""
    return _SEED.sub("", variant).replace(",@", "@")


def _is_seed_key(key: str) -> bool:
    return key.rsplit(".", 1)[-1] == "seed"


def split_of(rows: Sequence, task: str) -> str:
    """The split of a task's items, read from their ids ("dev-0001", "validation-0123"); "" when
    they do not say or disagree."""
    splits = {r.item_id.rpartition("-")[0] for r in rows if r.benchmark == task}
    return splits.pop() if len(splits) == 1 else ""


def seed_groups(
    rows: Sequence, baseline: str, tasks: Sequence[str], facts: Mapping[str, AdapterFacts]
) -> list[SeedGroup]:
    """The settings of a sweep whose seed is one of its axes, each with its changes over seeds
    and items against ``baseline``, on the items every seed and the baseline scored."""
    spec, gen = roles(tasks)
    if spec is None or gen is None:
        return []
    by_setting: dict[str, list[str]] = {}
    for v, f in facts.items():
        if f.benchmarkable and any(_is_seed_key(k) for k, _ in f.values):
            by_setting.setdefault(setting_of(v), []).append(v)
    out = []
    for setting, variants in by_setting.items():
        if len(variants) < 2:
            continue
        gain = _accuracy_changes(rows, variants, baseline, spec)
        cost = _accuracy_changes(rows, variants, baseline, gen)
        if gain is None or cost is None:
            continue
        measure = frontier_measure_of(gen)
        prob = _value_changes(rows, variants, baseline, gen, measure.field) if measure else None
        out.append(SeedGroup(setting, tuple(variants), facts[variants[0]].epochs_at, gain, cost, prob))
    return out


def _accuracy_changes(rows, variants, baseline, task) -> SeedsChange | None:
    ref = verdicts(rows, baseline, task)
    mine = [verdicts(rows, v, task) for v in variants]
    shared = sorted(set(ref).intersection(*mine))
    if not shared:
        return None
    return seeds_and_items_bootstrap([[int(m[k]) - int(ref[k]) for k in shared] for m in mine])


def _value_changes(rows, variants, baseline, task, field) -> SeedsChange | None:
    ref = field_values(rows, baseline, task, field)
    mine = [field_values(rows, v, task, field) for v in variants]
    shared = sorted(set(ref).intersection(*mine))
    if not shared:
        return None
    return seeds_and_items_bootstrap([[float(m[k]) - float(ref[k]) for k in shared] for m in mine])


def _judge_groups(groups: Sequence[SeedGroup], margin: float) -> list[SeedGroup]:
    """Holm across the groups' gain and cost tests; non-inferiority and qualification."""
    holm, _ = adjust_pvalues([g.gain.p_value for g in groups] + [g.cost.p_value for g in groups])
    k = len(groups)
    return [
        replace(
            g,
            gain_p_holm=holm[i],
            cost_p_holm=holm[k + i],
            non_inferior=non_inferior(g.cost.ci_low, margin),
            qualifies=qualifies(g.gain.mean, holm[i] < ALPHA, g.cost.ci_low, margin),
        )
        for i, g in enumerate(groups)
    ]


def _credible(c: Comparison | Continuous | None, estimate: float) -> float:
    """A change the run's corrected test tells from zero, else 0: what the front is drawn on."""
    return estimate if c is not None and c.significant else 0.0


def build_frontier(
    tasks: Sequence[str],
    comparisons: Sequence[Comparison],
    continuous: Sequence[Continuous],
    facts: Mapping[str, AdapterFacts],
    *,
    margin: float = DEFAULT_MARGIN,
    groups: Sequence[SeedGroup] = (),
    split: str = "",
) -> Frontier | None:
    """The frontier of the variants with adapters, or None when the run has no specialization
    or no generalization task, or no adapter variant. ``margin``: the generalization accuracy
    loss (a fraction) a point's interval may reach and still count as non-inferior."""
    spec, gen = roles(tasks)
    if spec is None or gen is None or not facts:
        return None
    points = _points(spec, gen, comparisons, continuous, facts, margin)
    candidates = [
        (p.variant, p.gain.paired.delta, p.gain.significant, p.cost.paired.delta_ci_low) for p in points
    ]
    what = "points"
    judged = _judge_groups(groups, margin) if groups else []
    if judged:  # several seeds per setting: the choice is among settings, on seed-aware intervals
        what = "settings (seed means, intervals over seeds and items)"
        candidates = [(g.setting, g.gain.mean, g.gain_significant, g.cost.ci_low) for g in judged]
    best, why_none = _choose(candidates, margin, spec, gen, over_seeds=bool(judged))
    m = fmt_points(margin)[1:]
    return Frontier(
        spec,
        gen,
        points,
        tuple(f for f in facts.values() if not f.benchmarkable),
        best,
        f"the largest {task_name(spec)} gain among the {what} whose gain is significant (Holm-adjusted "
        f"p < 0.05) and whose {task_name(gen)} accuracy change is non-inferior at a margin of "
        f"{m} points (the lower end of its 95% interval above -{m})",
        margin,
        why_none,
        any(f.sweep or f.point or f.epochs_at is not None for f in facts.values()),
        tuple(judged),
        split,
    )


def _points(
    spec: str,
    gen: str,
    comparisons: Sequence[Comparison],
    continuous: Sequence[Continuous],
    facts: Mapping[str, AdapterFacts],
    margin: float,
) -> tuple[FrontierPoint, ...]:
    """One point per adapter variant that ran both tasks, with both fronts and the rule's verdicts."""
    by = {(c.variant, c.benchmark): c for c in comparisons}
    cont = {(c.variant, c.benchmark, c.measure): c for c in continuous}
    names = [v for v in facts if (v, spec) in by and (v, gen) in by]
    gains = [by[(v, spec)] for v in names]
    costs = [by[(v, gen)] for v in names]
    probs = [cont.get((v, gen, frontier_measure(gen))) for v in names]
    front = pareto_front(
        [(_credible(g, g.paired.delta), _credible(c, c.paired.delta)) for g, c in zip(gains, costs)]
    )
    with_prob = [p for p in probs if p is not None]
    if names and len(with_prob) == len(names):
        front_c = pareto_front(
            [(_credible(g, g.paired.delta), _credible(p, p.result.delta)) for g, p in zip(gains, with_prob)]
        )
    else:
        front_c = [False] * len(names)
    return tuple(
        FrontierPoint(
            v,
            gains[i],
            costs[i],
            p.result if (p := probs[i]) is not None else None,
            cont[(v, spec, frontier_measure(spec))].result
            if (v, spec, frontier_measure(spec)) in cont
            else None,
            facts.get(v),
            front[i],
            front_c[i],
            non_inferior(costs[i].paired.delta_ci_low, margin),
            qualifies(gains[i].paired.delta, gains[i].significant, costs[i].paired.delta_ci_low, margin),
        )
        for i, v in enumerate(names)
    )


def _choose(
    candidates: Sequence[tuple[str, float, bool, float]],
    margin: float,
    spec: str,
    gen: str,
    *,
    over_seeds: bool,
) -> tuple[str | None, str]:
    """The best trade-off among (name, gain, gain significant, cost interval's low end), by
    :func:`harness.numbers.tradeoff.best_tradeoff`, and when there is none, why."""
    index = best_tradeoff(
        [c[1] for c in candidates], [c[2] for c in candidates], [c[3] for c in candidates], margin
    )
    if index is not None:
        return candidates[index][0], ""
    kind, where = ("setting", " over its seeds") if over_seeds else ("point", "")
    if not any(significant and gain > 0 for _, gain, significant, _ in candidates):
        return None, f"no {kind} gains significantly on {task_name(spec)}{where}"
    return None, (
        f"no {kind} qualifies: every significant {task_name(spec)} gain comes with {task_name(gen)} "
        f"intervals reaching past -{fmt_points(margin)[1:]} points"
    )
