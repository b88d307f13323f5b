"""CI gates checked against a run: each floor, drop ceiling, adapter, frontier and stored-baseline
gate gives a :class:`GateResult` (passed, failed or skipped, with a message that names the gate
and gives its figures); the gates file itself is harness/report/gates_file.py.

A gate whose (variant, task) did not run fails, because an explicit gate that silently
checks nothing is worse than none; except when the run's selection was narrowed on purpose
(``-m``, ``-k``, ``--variant``, a file or node argument, ...): then it is skipped with a notice.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

from harness.formatting import interval, p_value, pct, points
from harness.numbers.stats import Paired, paired
from harness.numbers.summary import compare, verdicts
from harness.report.analysis import Analysis
from harness.report.gates_file import (
    AdapterGate,
    BaselineFile,
    Floor,
    FrontierGate,
    Gates,
    GatesError,
    MaxDrop,
    read_stored_cases,
)

_EPS = 1e-9  # a floor of 0.2 holds for 40/200


@dataclasses.dataclass(frozen=True)
class GateResult:
    gate: str  # "floor[0]", "max_drop[1]", "baseline_file ft/mmlu"
    status: str  # "passed", "failed" or "skipped"
    message: str  # names the gate and gives the figures
    figures: dict = dataclasses.field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.status == "failed"


def check_gates(gates: Gates, rows: Sequence, analysis: Analysis, *, narrowed: str = "") -> list[GateResult]:
    """Check every gate against a run's case ``rows`` and their ``analysis`` (harness.report.analysis:
    the accuracies, the adapters' facts and the frontier).

    ``narrowed`` describes how the run's selection was narrowed ("" if it was not): a gate on
    a (variant, task) that did not run is then skipped instead of failed. A floor or drop
    gate with ``min_n`` is skipped, with a notice, on fewer scored items than that.
    """
    by_pair = {(s.variant, s.benchmark): s for s in analysis.summary}
    results: list[GateResult] = []
    for i, floor in enumerate(gates.floor):
        results.append(_floor_result(f"floor[{i}]", floor, by_pair, narrowed))
    for i, drop in enumerate(gates.max_drop):
        results.append(_max_drop_result(f"max_drop[{i}]", drop, rows, by_pair, narrowed))
    for i, g in enumerate(gates.adapter):
        results.append(_adapter_result(f"adapter[{i}]", g, analysis, narrowed))
    for i, f in enumerate(gates.frontier):
        results.append(_frontier_result(f"frontier[{i}]", f, analysis))
    if gates.baseline_file is not None:
        results += _check_baseline_file(gates.baseline_file, rows, by_pair, narrowed)
    return results


def _absent(gate: str, what: str, pair: tuple[str, str], narrowed: str) -> GateResult:
    """A gate whose (variant, task) did not run: skipped in a narrowed run, else failed."""
    variant, task = pair
    if narrowed:
        return GateResult(
            gate,
            "skipped",
            f"{gate} {what}: skipped, {variant}/{task} is not in this run (selection narrowed by {narrowed})",
        )
    return GateResult(
        gate,
        "failed",
        f"{gate} {what}: {variant}/{task} did not run, so the gate cannot "
        f"hold; run it, or narrow the run on purpose (-m/--variant) to skip the gate",
    )


def _floor_result(name: str, g: Floor, by_pair: Mapping, narrowed: str) -> GateResult:
    what = f"{g.variant}/{g.task} accuracy >= {pct(g.min_accuracy)}"
    s = by_pair.get((g.variant, g.task))
    if s is None:
        return _absent(name, what, (g.variant, g.task), narrowed)
    a = s.overall
    figures = {**dataclasses.asdict(a), "min_accuracy": g.min_accuracy}
    if 0 < a.n < g.min_n:
        return GateResult(
            name,
            "skipped",
            f"{name} {what}: skipped, only {a.n} scored items (the gate "
            f"is set for at least {g.min_n}: a narrowed run)",
            figures,
        )
    if a.n == 0:
        return GateResult(name, "failed", f"{name} {what}: no scored items ({s.skipped} skipped)", figures)
    ok = a.accuracy >= g.min_accuracy - _EPS
    return GateResult(
        name,
        "passed" if ok else "failed",
        f"{name} {g.variant}/{g.task}: accuracy {pct(a.accuracy)} ({a.correct}/{a.n}, 95% CI "
        f"{interval(a.ci_low, a.ci_high)}) {'>=' if ok else '<'} floor {pct(g.min_accuracy)}",
        figures,
    )


def _max_drop_result(name: str, g: MaxDrop, rows: Sequence, by_pair: Mapping, narrowed: str) -> GateResult:
    what = f"{g.variant}/{g.task} vs {g.reference}, drop <= {g.max_points:g} points"
    missing = next((p for p in [(g.variant, g.task), (g.reference, g.task)] if p not in by_pair), None)
    if missing:
        return _absent(name, what, missing, narrowed)
    p = compare(rows, g.variant, g.reference, g.task).paired
    if 0 < p.n < g.min_n:
        return GateResult(
            name,
            "skipped",
            f"{name} {what}: skipped, only {p.n} shared items (the gate "
            f"is set for at least {g.min_n}: a narrowed run)",
        )
    return _drop_result(name, f"{g.variant}/{g.task} vs {g.reference}", p, g.max_points, alpha=0.0)


def _adapter_result(name: str, g: AdapterGate, analysis: Analysis, narrowed: str) -> GateResult:
    facts = analysis.facts.get(g.variant)
    if facts is None:
        status = "skipped" if narrowed else "failed"
        return GateResult(
            name,
            status,
            f"{name} {g.variant}: its adapter is not in this run"
            + (f" (selection narrowed by {narrowed})" if narrowed else ""),
        )
    figures = {
        "status": facts.status,
        "cut_short": facts.cut_short,
        "steps_done": facts.steps_done,
        "steps_planned": facts.steps_planned,
    }
    steps = f"{facts.steps_done}/{facts.steps_planned} steps" if facts.steps_planned else "steps unknown"
    if facts.status != "succeeded":
        return GateResult(
            name, "failed", f"{name} {g.variant}: training {facts.status} ({facts.reason})", figures
        )
    if g.complete and facts.cut_short:
        return GateResult(
            name,
            "failed",
            f"{name} {g.variant}: training was cut short by its time budget ({steps}); "
            "the adapter is not the recipe's",
            figures,
        )
    return GateResult(name, "passed", f"{name} {g.variant}: trained to the end ({steps})", figures)


def _frontier_result(name: str, g: FrontierGate, analysis: Analysis) -> GateResult:
    f = analysis.frontier
    what = (
        f"a point whose gain's interval is above {g.min_gain_points:g} points and whose cost's "
        f"interval is above -{g.max_cost_points:g}"
    )
    if f is None or not f.points:
        return GateResult(
            name,
            "failed",
            f"{name} {what}: the run has no frontier (no adapter variant ran both "
            "a specialization and a generalization task)",
        )
    ok = [
        p
        for p in f.points
        if 100 * p.cost.paired.delta_ci_low > -g.max_cost_points - _EPS
        and 100 * p.gain.paired.delta_ci_low > g.min_gain_points + _EPS
    ]
    if ok:
        best = max(ok, key=lambda p: p.gain.paired.delta)
        gain, cost = best.gain.paired, best.cost.paired
        return GateResult(
            name,
            "passed",
            f"{name} {what}: {best.variant} gains {points(gain.delta)} "
            f"{interval(gain.delta_ci_low, gain.delta_ci_high, points)} on {f.specialization} and "
            f"changes {f.generalization} by {points(cost.delta)} "
            f"{interval(cost.delta_ci_low, cost.delta_ci_high, points)} points",
            {"variant": best.variant},
        )
    return GateResult(name, "failed", f"{name} {what}: none of the {len(f.points)} points does")


def _drop_result(
    name: str, what: str, p: Paired, max_points: float, *, alpha: float, where: str = ""
) -> GateResult:
    """Pass when the drop on the shared items is within ``max_points`` and (alpha > 0) the
    variant is not significantly worse (exact McNemar p < alpha with more losses than gains)."""
    figures = {
        "n_shared": p.n,
        "accuracy": p.accuracy,
        "reference_accuracy": p.reference_accuracy,
        "delta_points": 100 * p.delta if p.n else math.nan,
        "delta_ci_low": p.delta_ci_low,
        "delta_ci_high": p.delta_ci_high,
        "gained": p.only_variant,
        "lost": p.only_reference,
        "mcnemar_p": p.mcnemar_p,
        "max_points": max_points,
        "alpha": alpha,
    }
    if p.n == 0:
        return GateResult(
            name, "failed", f"{name} {what}{where}: no items scored by both, nothing to compare", figures
        )
    drop = -100 * p.delta
    too_far = drop > max_points + _EPS
    worse = alpha > 0 and p.mcnemar_p < alpha and p.only_reference > p.only_variant
    why = []
    if too_far:
        why.append(f"drop {drop:.1f} points > allowed {max_points:g}")
    if worse:
        why.append(f"significantly worse (McNemar p={p_value(p.mcnemar_p)} < alpha {alpha:g})")
    verdict = (
        "; ".join(why)
        if why
        else f"drop {drop:.1f} points <= allowed {max_points:g}"
        + (f", not significantly worse at alpha {alpha:g}" if alpha > 0 else "")
    )
    return GateResult(
        name,
        "failed" if why else "passed",
        f"{name} {what}{where}: {pct(p.accuracy)} vs {pct(p.reference_accuracy)} on {p.n} shared items "
        f"(Δ {points(p.delta)} points, 95% CI {interval(p.delta_ci_low, p.delta_ci_high, points)}; "
        f"+{p.only_variant}/-{p.only_reference} items; McNemar p={p_value(p.mcnemar_p)}): {verdict}",
        figures,
    )


def _check_baseline_file(
    bf: BaselineFile, rows: Sequence, by_pair: Mapping, narrowed: str
) -> list[GateResult]:
    name, where = "baseline_file", f" (stored {bf.path})"
    try:
        stored = read_stored_cases(bf.path)
    except GatesError as e:
        return [GateResult(name, "failed", f"{name}: {e}")]
    stored_pairs = {(c.variant, c.benchmark) for c in stored}
    explicit = bool(bf.variants or bf.tasks)
    variants = bf.variants or tuple(sorted({v for v, _ in by_pair} | {v for v, _ in stored_pairs}))
    tasks = bf.tasks or tuple(sorted({b for _, b in by_pair} | {b for _, b in stored_pairs}))
    wanted = [(v, b) for v in variants for b in tasks]
    if not explicit:  # every pair the two runs share
        wanted = [pair for pair in wanted if pair in by_pair and pair in stored_pairs]
        if not wanted:
            return [
                GateResult(
                    name,
                    "failed",
                    f"{name}{where}: no (variant, task) is in both this run and "
                    f"the stored one ({', '.join(sorted('/'.join(p) for p in stored_pairs))})",
                )
            ]
    out = []
    for v, b in wanted:
        gate = f"{name} {v}/{b}"
        if (v, b) not in by_pair:
            out.append(_absent(gate, f"vs stored {bf.path}", (v, b), narrowed))
        elif (v, b) not in stored_pairs:
            out.append(GateResult(gate, "failed", f"{gate}{where}: the stored results have no {v}/{b}"))
        else:
            p = paired(verdicts(rows, v, b), verdicts(stored, v, b))
            out.append(_drop_result(gate, "vs stored", p, bf.max_drop_points, alpha=bf.alpha, where=where))
    return out


def gates_json(source: str, results: Sequence[GateResult], note: str = "") -> dict:
    """The ``gates`` section of results.json."""
    return {
        "file": source,
        "note": note,
        "passed": not any(r.failed for r in results),
        "results": [dataclasses.asdict(r) for r in results],
    }
