"""CI gates on a run's accuracies: floors, regression ceilings, and a stored baseline.

A gates file is TOML with three kinds of gate (every key is listed; none other is accepted):

    [[floor]]                 # an accuracy must reach a floor
    variant = "ft"
    task = "spider"
    min_accuracy = 0.05       # a fraction, 0..1
    min_n = 40                # optional: skip (and say so) on fewer scored items, a narrowed run

    [[max_drop]]              # a variant may lose at most this much against another one
    variant = "ft"
    task = "mmlu"
    reference = "base"
    max_points = 10           # percentage points on the items both scored; negative: a required gain

    [[adapter]]               # the variant's adapter was trained to the end of its recipe
    variant = "ft"
    complete = true           # fail when the time budget cut it short

    [[frontier]]              # some adapter gains on the specialization task without costing much,
                              # read from the 95% intervals (paired, points), not the estimates:
    max_cost_points = 1.0     # the generalization interval's lower end must be above -this
    min_gain_points = 0.0     # the specialization interval's lower end must be above this

    [baseline_file]           # compare with a stored results.json (one table, optional)
    path = "reports/ci-baseline/results.json"   # relative to the working directory
    max_drop_points = 5       # drop allowed against the stored accuracy (default 100: no limit)
    alpha = 0.05              # fail when significantly worse: exact McNemar p < alpha, paired on
                              # the shared items, and more items lost than gained (0: no test)
    variants = ["ft"]         # default: every variant in both runs
    tasks = ["mmlu"]          # default: every task in both runs

The file is validated as it loads, like the experiment config (harness/config/experiment.py): every
problem is gathered, each names the file and the dotted key, an unknown key gets a
did-you-mean, and an unknown variant or task is named with the choices. The keys ``benchmark``
and ``benchmarks`` of older files are refused, each with the key it was renamed to (``task``,
``tasks``): silently reading a renamed key would be a guess about a file that gates CI.

A gate whose (variant, task) did not run fails, because an explicit gate that silently
checks nothing is worse than none; except when the run's selection was narrowed on purpose
(``-m``, ``-k``, ``--variant``, a file or node argument, ...): then it is skipped with a notice.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated, Literal

from pydantic import Field, model_validator

from harness import configfile
from harness.configfile import ConfigError, Problems, Strict, unknown
from harness.formatting import interval, p_value, pct, points
from harness.numbers.stats import Paired, paired
from harness.numbers.summary import compare, verdicts
from harness.records.run_folder import INCOMPLETE, incomplete_reason
from harness.report.analysis import Analysis
from harness.tasks import TASKS

LEGACY_OUTCOMES = {"failed": "wrong"}  # a wrong answer's outcome in results.json schema 2 and before
_EPS = 1e-9  # a floor of 0.2 holds for 40/200
TaskName = Literal[tuple(TASKS)]  # type: ignore[valid-type]


class GatesError(ConfigError):
    """The gates file is malformed; the message lists every problem found."""


class Floor(Strict):
    variant: str
    task: TaskName
    min_accuracy: float
    min_n: Annotated[int, Field(ge=0)] = 0  # fewer scored items (a run narrowed by --limit): skipped

    @model_validator(mode="after")
    def _fraction(self):
        if not 0.0 <= self.min_accuracy <= 1.0:
            raise Problems(
                [
                    f"min_accuracy: a fraction between 0 and 1, got {self.min_accuracy}"
                    + ("; for percent write e.g. 0.05 for 5%" if self.min_accuracy > 1 else "")
                ]
            )
        return self


class MaxDrop(Strict):
    variant: str
    task: TaskName
    reference: str
    max_points: Annotated[float, Field(ge=-100, le=100)]  # percentage points; negative: a required gain
    min_n: Annotated[int, Field(ge=0)] = 0  # fewer shared items (a run narrowed by --limit): skipped

    @model_validator(mode="after")
    def _not_itself(self):
        if self.reference == self.variant:
            raise Problems([f"reference: {self.reference!r} is the variant itself"])
        return self


class BaselineFile(Strict):
    path: str
    max_drop_points: Annotated[float, Field(ge=0, le=100)] = 100.0  # 100: no limit on the drop itself
    alpha: Annotated[float, Field(ge=0, lt=1)] = 0.05  # 0: no significance test
    variants: tuple[str, ...] = ()  # empty: every variant in both runs
    tasks: tuple[TaskName, ...] = ()  # empty: every task in both runs


class AdapterGate(Strict):
    """The variant's adapter must be the one its recipe means: trained to the end."""

    variant: str
    complete: bool = True  # fail when training was cut short (time budget) or did not succeed


class FrontierGate(Strict):
    """The learning-forgetting frontier must hold a point whose specialization gain's 95%
    interval lies above ``min_gain_points`` and whose generalization change's interval lies
    above ``-max_cost_points`` (both paired with the baseline, in percentage points): a point
    estimate within the bound is not enough when its interval reaches past it."""

    max_cost_points: Annotated[float, Field(ge=0, le=100)]
    min_gain_points: Annotated[float, Field(ge=-100, le=100)] = 0.0


class Gates(Strict):
    floor: tuple[Floor, ...] = ()
    max_drop: tuple[MaxDrop, ...] = ()
    adapter: tuple[AdapterGate, ...] = ()
    frontier: tuple[FrontierGate, ...] = ()
    baseline_file: BaselineFile | None = None
    source: str = ""  # the file it was loaded from (set by the loader)

    def __len__(self) -> int:
        return (
            len(self.floor)
            + len(self.max_drop)
            + len(self.adapter)
            + len(self.frontier)
            + (self.baseline_file is not None)
        )


@dataclasses.dataclass(frozen=True)
class GateResult:
    gate: str  # "floor[0]", "max_drop[1]", "baseline_file ft/mmlu"
    status: str  # "passed", "failed" or "skipped"
    message: str  # names the gate and gives the figures
    figures: dict = dataclasses.field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.status == "failed"


# -- loading --------------------------------------------------------------------------------


def parse_gates(raw: Mapping, *, variants: Sequence[str], source: str = "") -> Gates:
    """Gates from the parsed TOML ``raw``, checked against the experiment's ``variants``."""
    where = source or "gates"
    if "source" in raw:
        raise GatesError(f"{where}: invalid gates file:\n  source: unknown key")
    renamed = _renamed_keys(raw)
    if renamed:
        raise GatesError(f"{where}: invalid gates file:\n  " + "\n  ".join(renamed))
    try:
        gates = configfile.validate(Gates, dict(raw), source=where, kind="gates file")
    except GatesError:
        raise
    except ConfigError as e:
        raise GatesError(str(e)) from None
    errors: list[str] = []
    for kind in ("floor", "max_drop", "adapter"):
        for i, g in enumerate(getattr(gates, kind)):
            key = f"{kind}[{i}]"
            if g.variant not in variants:
                errors.append(f"{key}.variant: " + unknown("variant", g.variant, variants))
            if kind == "max_drop" and g.reference not in variants:
                errors.append(f"{key}.reference: " + unknown("variant", g.reference, variants))
    bf = gates.baseline_file
    if bf is not None:
        for i, v in enumerate(bf.variants):
            if v not in variants:
                errors.append(f"baseline_file.variants[{i}]: " + unknown("variant", v, variants))
        try:
            read_stored_cases(bf.path)
        except GatesError as e:
            errors.append(f"baseline_file.path: {e}")
    if errors:
        raise GatesError(f"{where}: invalid gates file:\n  " + "\n  ".join(errors))
    return gates.model_copy(update={"source": source})


RENAMED = {"benchmark": "task", "benchmarks": "tasks"}  # older gates files' keys


def _renamed_keys(raw: Mapping) -> list[str]:
    """One problem per key of an older gates file, with the key it is called now."""
    problems = []
    for kind, value in raw.items():
        tables = value if isinstance(value, list) else [value]
        for i, table in enumerate(tables):
            if not isinstance(table, Mapping):
                continue
            where = f"{kind}[{i}]" if isinstance(value, list) else kind
            problems += [
                f"{where}.{old}: unknown key; did you mean '{new}'? ('{old}' was renamed '{new}')"
                for old, new in RENAMED.items()
                if old in table
            ]
    return problems


def load_gates(path: str | Path, *, variants: Sequence[str]) -> Gates:
    """Load and validate a gates file; raises :class:`GatesError` naming the file and keys."""
    if not Path(path).is_file():
        raise GatesError(
            f"{path}: gates file not found (give --gates PATH, or --gates none to run without gates)"
        )
    try:
        raw = configfile.read_toml(path, "gates file")
    except ConfigError as e:
        raise GatesError(str(e)) from None
    return parse_gates(raw, variants=variants, source=str(path))


def read_stored_cases(path: str | Path) -> list[SimpleNamespace]:
    """The case rows of a stored ``results.json`` (this harness's schema, 3 or 2), of a run that
    finished: an incomplete run's folder (harness/records/run_folder.py) is refused with its reason."""
    if (Path(path).parent / INCOMPLETE).is_file():
        why = incomplete_reason(Path(path).parent)
        raise GatesError(f"{str(path)!r} is an incomplete run's ({INCOMPLETE}: {why}); give a finished one")
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GatesError(f"no such file {str(path)!r}") from None
    except (OSError, ValueError) as e:
        raise GatesError(f"{str(path)!r} is not readable JSON ({e})") from None
    cases = data.get("cases") if isinstance(data, dict) else None
    if not isinstance(cases, list):
        raise GatesError(f"{str(path)!r} has no 'cases' list: not a harness results.json")
    try:
        return [
            SimpleNamespace(
                variant=c["variant"],
                benchmark=c["task"] if "task" in c else c["benchmark"],  # schema 2 and before: "benchmark"
                item_id=c["item_id"],
                outcome=LEGACY_OUTCOMES.get(c["outcome"], c["outcome"]),
            )
            for c in cases
        ]
    except (KeyError, TypeError) as e:
        raise GatesError(f"{str(path)!r}: a case lacks {e}: not a harness results.json") from None


# -- checking -------------------------------------------------------------------------------


def check_gates(gates: Gates, rows: Sequence, analysis: Analysis, *, narrowed: str = "") -> list[GateResult]:
    """Check every gate against a run's case ``rows`` and their ``analysis`` (harness.report.analysis:
    the accuracies, the adapters' facts and the frontier).

    ``narrowed`` describes how the run's selection was narrowed ("" if it was not): a gate on
    a (variant, task) that did not run is then skipped instead of failed. A floor or drop
    gate with ``min_n`` is skipped, with a notice, on fewer scored items than that.
    """
    by_pair = {(s.variant, s.benchmark): s for s in analysis.summary}
    results: list[GateResult] = []

    def absent(gate: str, what: str, pair: tuple[str, str]) -> GateResult:
        variant, task = pair
        if narrowed:
            return GateResult(
                gate,
                "skipped",
                f"{gate} {what}: skipped, {variant}/{task} is not in this run "
                f"(selection narrowed by {narrowed})",
            )
        return GateResult(
            gate,
            "failed",
            f"{gate} {what}: {variant}/{task} did not run, so the gate cannot "
            f"hold; run it, or narrow the run on purpose (-m/--variant) to skip the gate",
        )

    for i, g in enumerate(gates.floor):
        name, what = f"floor[{i}]", f"{g.variant}/{g.task} accuracy >= {pct(g.min_accuracy)}"
        s = by_pair.get((g.variant, g.task))
        if s is None:
            results.append(absent(name, what, (g.variant, g.task)))
            continue
        a = s.overall
        figures = {**dataclasses.asdict(a), "min_accuracy": g.min_accuracy}
        if 0 < a.n < g.min_n:
            results.append(
                GateResult(
                    name,
                    "skipped",
                    f"{name} {what}: skipped, only {a.n} scored items (the gate "
                    f"is set for at least {g.min_n}: a narrowed run)",
                    figures,
                )
            )
            continue
        if a.n == 0:
            results.append(
                GateResult(name, "failed", f"{name} {what}: no scored items ({s.skipped} skipped)", figures)
            )
            continue
        ok = a.accuracy >= g.min_accuracy - _EPS
        results.append(
            GateResult(
                name,
                "passed" if ok else "failed",
                f"{name} {g.variant}/{g.task}: accuracy {pct(a.accuracy)} ({a.correct}/{a.n}, 95% CI "
                f"{interval(a.ci_low, a.ci_high)}) {'>=' if ok else '<'} floor {pct(g.min_accuracy)}",
                figures,
            )
        )

    for i, g in enumerate(gates.max_drop):
        name = f"max_drop[{i}]"
        what = f"{g.variant}/{g.task} vs {g.reference}, drop <= {g.max_points:g} points"
        missing = next((p for p in [(g.variant, g.task), (g.reference, g.task)] if p not in by_pair), None)
        if missing:
            results.append(absent(name, what, missing))
            continue
        p = compare(rows, g.variant, g.reference, g.task).paired
        if 0 < p.n < g.min_n:
            results.append(
                GateResult(
                    name,
                    "skipped",
                    f"{name} {what}: skipped, only {p.n} shared items (the gate "
                    f"is set for at least {g.min_n}: a narrowed run)",
                )
            )
            continue
        results.append(
            _drop_result(name, f"{g.variant}/{g.task} vs {g.reference}", p, g.max_points, alpha=0.0)
        )

    for i, g in enumerate(gates.adapter):
        results.append(_adapter_result(f"adapter[{i}]", g, analysis, narrowed))
    for i, g in enumerate(gates.frontier):
        results.append(_frontier_result(f"frontier[{i}]", g, analysis))
    if gates.baseline_file is not None:
        results += _check_baseline_file(gates.baseline_file, rows, by_pair, absent)
    return results


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


def _check_baseline_file(bf: BaselineFile, rows: Sequence, by_pair: Mapping, absent) -> list[GateResult]:
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
            out.append(absent(gate, f"vs stored {bf.path}", (v, b)))
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
