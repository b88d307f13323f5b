"""CI gates on a run's accuracies: floors, regression ceilings, and a stored baseline.

A gates file is TOML with three kinds of gate (every key is listed; none other is accepted):

    [[floor]]                 # an accuracy must reach a floor
    variant = "ft"
    benchmark = "spider"
    min_accuracy = 0.05       # a fraction, 0..1

    [[max_drop]]              # a variant may lose at most this much against another one
    variant = "ft"
    benchmark = "mmlu"
    reference = "base"
    max_points = 10           # percentage points on the items both scored; negative: a required gain

    [baseline_file]           # compare with a stored results.json (one table, optional)
    path = "reports/ci-baseline/results.json"   # relative to the working directory
    max_drop_points = 5       # drop allowed against the stored accuracy (default 100: no limit)
    alpha = 0.05              # fail when significantly worse: exact McNemar p < alpha, paired on
                              # the shared items, and more items lost than gained (0: no test)
    variants = ["ft"]         # default: every variant in both runs
    benchmarks = ["mmlu"]     # default: every benchmark in both runs

The file is validated as it loads, like the experiment config (harness/config.py): every
problem is gathered, each names the file and the dotted key, an unknown key gets a
did-you-mean, and an unknown variant or benchmark is named with the choices.

A gate whose (variant, benchmark) did not run fails, because an explicit gate that silently
checks nothing is worse than none; except when the run's selection was narrowed on purpose
(``-m``, ``-k``, ``--variant``, a file or node argument, ...): then it is skipped with a notice.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import tomllib
import typing
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Mapping, Sequence

from harness.config import BENCHMARKS
from harness.report import Paired, paired, pct, points, p_value, verdicts, interval

_EPS = 1e-9  # a floor of 0.2 holds for 40/200


class GatesError(ValueError):
    """The gates file is malformed; the message lists every problem found."""


@dataclass(frozen=True)
class Floor:
    variant: str
    benchmark: str
    min_accuracy: float


@dataclass(frozen=True)
class MaxDrop:
    variant: str
    benchmark: str
    reference: str
    max_points: float


@dataclass(frozen=True)
class BaselineFile:
    path: str
    max_drop_points: float = 100.0  # 100: no limit on the drop itself
    alpha: float = 0.05  # 0: no significance test
    variants: tuple[str, ...] = ()  # empty: every variant in both runs
    benchmarks: tuple[str, ...] = ()  # empty: every benchmark in both runs


@dataclass(frozen=True)
class Gates:
    floor: tuple[Floor, ...] = ()
    max_drop: tuple[MaxDrop, ...] = ()
    baseline_file: BaselineFile | None = None
    source: str = ""  # the file it was loaded from

    def __len__(self) -> int:
        return len(self.floor) + len(self.max_drop) + (self.baseline_file is not None)


@dataclass(frozen=True)
class GateResult:
    gate: str  # "floor[0]", "max_drop[1]", "baseline_file ft/mmlu"
    status: str  # "passed", "failed" or "skipped"
    message: str  # names the gate and gives the figures
    figures: dict = dataclasses.field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.status == "failed"


# -- loading --------------------------------------------------------------------------------

_TOP = {"floor": Floor, "max_drop": MaxDrop, "baseline_file": BaselineFile}


def _did_you_mean(name: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(choices)})"


def _build(cls, raw, key: str, errors: list[str]):
    """A ``cls`` from one TOML table; every problem goes to ``errors`` under its dotted key."""
    if not isinstance(raw, dict):
        errors.append(f"{key}: expected a table, got {type(raw).__name__} {raw!r}")
        return None
    hints = typing.get_type_hints(cls)
    fields = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for k, v in raw.items():
        if k not in fields:
            errors.append(f"{key}.{k}: unknown key" + _did_you_mean(k, fields))
            continue
        want = hints[k]
        if want is float and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        if typing.get_origin(want) is tuple:
            if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                errors.append(f"{key}.{k}: expected a list of strings, got {v!r}")
                continue
            v = tuple(v)
        elif not isinstance(v, want) or isinstance(v, bool):
            errors.append(f"{key}.{k}: expected {want.__name__}, got {type(v).__name__} {v!r}")
            continue
        kwargs[k] = v
    missing = [f.name for f in dataclasses.fields(cls)
               if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING and f.name not in raw]
    errors += [f"{key}.{m}: required" for m in missing]
    if missing or len(kwargs) < len([k for k in raw if k in fields]):
        return None
    return cls(**kwargs)


def _unknown_name(kind: str, name: str, choices: Sequence[str], key: str) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"{key}: unknown {kind} {name!r}{hint} (available: {', '.join(choices) or 'none'})"


def parse_gates(raw: Mapping, *, variants: Sequence[str], source: str = "") -> Gates:
    """Gates from the parsed TOML ``raw``, checked against the experiment's ``variants``."""
    errors: list[str] = []
    built: dict[str, object] = {}
    for k, v in raw.items():
        if k not in _TOP:
            errors.append(f"{k}: unknown key" + _did_you_mean(k, list(_TOP)))
        elif k == "baseline_file":
            if isinstance(v, list):
                errors.append("baseline_file: expected one [baseline_file] table, got [[baseline_file]]")
            else:
                built[k] = _build(BaselineFile, v, k, errors)
        elif not isinstance(v, list):
            errors.append(f"{k}: expected [[{k}]] tables, got {type(v).__name__}")
        else:
            built[k] = tuple(_build(_TOP[k], item, f"{k}[{i}]", errors) for i, item in enumerate(v))
    for kind in ("floor", "max_drop"):
        for i, g in enumerate(built.get(kind, ())):
            if g is None:
                continue
            key = f"{kind}[{i}]"
            if g.variant not in variants:
                errors.append(_unknown_name("variant", g.variant, variants, f"{key}.variant"))
            if g.benchmark not in BENCHMARKS:
                errors.append(_unknown_name("benchmark", g.benchmark, BENCHMARKS, f"{key}.benchmark"))
            if kind == "floor" and not 0.0 <= g.min_accuracy <= 1.0:
                errors.append(f"{key}.min_accuracy: a fraction between 0 and 1, got {g.min_accuracy}"
                              + ("; for percent write e.g. 0.05 for 5%" if g.min_accuracy > 1 else ""))
            if kind == "max_drop":
                if g.reference not in variants:
                    errors.append(_unknown_name("variant", g.reference, variants, f"{key}.reference"))
                if g.reference == g.variant:
                    errors.append(f"{key}.reference: {g.reference!r} is the variant itself")
                if not -100.0 <= g.max_points <= 100.0:
                    errors.append(f"{key}.max_points: percentage points between -100 and 100, got {g.max_points}")
    bf = built.get("baseline_file")
    if bf is not None:
        for i, v in enumerate(bf.variants):
            if v not in variants:
                errors.append(_unknown_name("variant", v, variants, f"baseline_file.variants[{i}]"))
        for i, b in enumerate(bf.benchmarks):
            if b not in BENCHMARKS:
                errors.append(_unknown_name("benchmark", b, BENCHMARKS, f"baseline_file.benchmarks[{i}]"))
        if not 0.0 <= bf.max_drop_points <= 100.0:
            errors.append(f"baseline_file.max_drop_points: percentage points between 0 and 100, got {bf.max_drop_points}")
        if not 0.0 <= bf.alpha < 1.0:
            errors.append(f"baseline_file.alpha: a significance level in [0, 1), got {bf.alpha}")
        try:
            read_stored_cases(bf.path)
        except GatesError as e:
            errors.append(f"baseline_file.path: {e}")
    if errors:
        raise GatesError(f"{source or 'gates'}: invalid gates file:\n  " + "\n  ".join(errors))
    return Gates(
        floor=tuple(built.get("floor", ())),
        max_drop=tuple(built.get("max_drop", ())),
        baseline_file=bf,
        source=source,
    )


def load_gates(path: str | Path, *, variants: Sequence[str]) -> Gates:
    """Load and validate a gates file; raises :class:`GatesError` naming the file and keys."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GatesError(f"{path}: gates file not found (give --gates PATH, or --gates none to run without gates)") from None
    except tomllib.TOMLDecodeError as e:
        raise GatesError(f"{path}: not valid TOML ({e})") from None
    return parse_gates(raw, variants=variants, source=str(path))


def read_stored_cases(path: str | Path) -> list[SimpleNamespace]:
    """The case rows of a stored ``results.json`` (this harness's schema)."""
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
        return [SimpleNamespace(variant=c["variant"], benchmark=c["benchmark"], item_id=c["item_id"], outcome=c["outcome"])
                for c in cases]
    except (KeyError, TypeError) as e:
        raise GatesError(f"{str(path)!r}: a case lacks {e}: not a harness results.json") from None


# -- checking -------------------------------------------------------------------------------


def check_gates(gates: Gates, rows: Sequence, summary: Sequence, *, narrowed: str = "") -> list[GateResult]:
    """Check every gate against a run's case ``rows`` and its ``summary`` (report.summarize).

    ``narrowed`` describes how the run's selection was narrowed ("" if it was not): a gate on
    a (variant, benchmark) that did not run is then skipped instead of failed.
    """
    by_pair = {(s.variant, s.benchmark): s for s in summary}
    results: list[GateResult] = []

    def absent(gate: str, what: str, pair: tuple[str, str]) -> GateResult:
        variant, benchmark = pair
        if narrowed:
            return GateResult(gate, "skipped", f"{gate} {what}: skipped, {variant}/{benchmark} is not in this run "
                                               f"(selection narrowed by {narrowed})")
        return GateResult(gate, "failed", f"{gate} {what}: {variant}/{benchmark} did not run, so the gate cannot "
                                          f"hold; run it, or narrow the run on purpose (-m/--variant) to skip the gate")

    for i, g in enumerate(gates.floor):
        name, what = f"floor[{i}]", f"{g.variant}/{g.benchmark} accuracy >= {pct(g.min_accuracy)}"
        s = by_pair.get((g.variant, g.benchmark))
        if s is None:
            results.append(absent(name, what, (g.variant, g.benchmark)))
            continue
        a = s.overall
        figures = {"accuracy": a.accuracy, "n": a.n, "correct": a.correct, "ci_low": a.ci_low, "ci_high": a.ci_high,
                   "min_accuracy": g.min_accuracy}
        if a.n == 0:
            results.append(GateResult(name, "failed", f"{name} {what}: no scored items ({s.skipped} skipped)", figures))
            continue
        ok = a.accuracy >= g.min_accuracy - _EPS
        results.append(GateResult(
            name, "passed" if ok else "failed",
            f"{name} {g.variant}/{g.benchmark}: accuracy {pct(a.accuracy)} ({a.correct}/{a.n}, 95% CI "
            f"{interval(a.ci_low, a.ci_high)}) {'>=' if ok else '<'} floor {pct(g.min_accuracy)}",
            figures))

    for i, g in enumerate(gates.max_drop):
        name = f"max_drop[{i}]"
        what = f"{g.variant}/{g.benchmark} vs {g.reference}, drop <= {g.max_points:g} points"
        missing = next((p for p in [(g.variant, g.benchmark), (g.reference, g.benchmark)] if p not in by_pair), None)
        if missing:
            results.append(absent(name, what, missing))
            continue
        p = paired(verdicts(rows, g.variant, g.benchmark), verdicts(rows, g.reference, g.benchmark))
        results.append(_drop_result(name, f"{g.variant}/{g.benchmark} vs {g.reference}", p, g.max_points, alpha=0.0))

    if gates.baseline_file is not None:
        results += _check_baseline_file(gates.baseline_file, rows, by_pair, absent)
    return results


def _drop_result(name: str, what: str, p: Paired, max_points: float, *, alpha: float, where: str = "") -> GateResult:
    """Pass when the drop on the shared items is within ``max_points`` and (alpha > 0) the
    variant is not significantly worse (exact McNemar p < alpha with more losses than gains)."""
    figures = {"n_shared": p.n, "accuracy": p.accuracy, "reference_accuracy": p.reference_accuracy,
               "delta_points": 100 * p.delta if p.n else math.nan, "delta_ci_low": p.delta_ci_low,
               "delta_ci_high": p.delta_ci_high, "gained": p.only_variant, "lost": p.only_reference,
               "mcnemar_p": p.mcnemar_p, "max_points": max_points, "alpha": alpha}
    if p.n == 0:
        return GateResult(name, "failed", f"{name} {what}{where}: no items scored by both, nothing to compare", figures)
    drop = -100 * p.delta
    too_far = drop > max_points + _EPS
    worse = alpha > 0 and p.mcnemar_p < alpha and p.only_reference > p.only_variant
    why = []
    if too_far:
        why.append(f"drop {drop:.1f} points > allowed {max_points:g}")
    if worse:
        why.append(f"significantly worse (McNemar p={p_value(p.mcnemar_p)} < alpha {alpha:g})")
    verdict = "; ".join(why) if why else f"drop {drop:.1f} points <= allowed {max_points:g}" + (
        f", not significantly worse at alpha {alpha:g}" if alpha > 0 else "")
    return GateResult(
        name, "failed" if why else "passed",
        f"{name} {what}{where}: {pct(p.accuracy)} vs {pct(p.reference_accuracy)} on {p.n} shared items "
        f"(Δ {points(p.delta)} points, 95% CI {interval(p.delta_ci_low, p.delta_ci_high, points)}; "
        f"+{p.only_variant}/-{p.only_reference} items; McNemar p={p_value(p.mcnemar_p)}): {verdict}",
        figures)


def _check_baseline_file(bf: BaselineFile, rows: Sequence, by_pair: Mapping, absent) -> list[GateResult]:
    name, where = "baseline_file", f" (stored {bf.path})"
    try:
        stored = read_stored_cases(bf.path)
    except GatesError as e:
        return [GateResult(name, "failed", f"{name}: {e}")]
    stored_pairs = {(c.variant, c.benchmark) for c in stored}
    explicit = bool(bf.variants or bf.benchmarks)
    variants = bf.variants or tuple(sorted({v for v, _ in by_pair} | {v for v, _ in stored_pairs}))
    benchmarks = bf.benchmarks or tuple(sorted({b for _, b in by_pair} | {b for _, b in stored_pairs}))
    wanted = [(v, b) for v in variants for b in benchmarks]
    if not explicit:  # every pair the two runs share
        wanted = [pair for pair in wanted if pair in by_pair and pair in stored_pairs]
        if not wanted:
            return [GateResult(name, "failed", f"{name}{where}: no (variant, benchmark) is in both this run and "
                                               f"the stored one ({', '.join(sorted('/'.join(p) for p in stored_pairs))})")]
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
