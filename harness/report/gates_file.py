"""A gates file (CI gates on a run's accuracies: floors, regression ceilings, and a stored
baseline), as it loads: its format, its validation, and the stored results.json it names.

A gates file is TOML with five kinds of gate (every key is listed; none other is accepted):

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

The file is validated as it loads, like the experiment config (harness/config/experiment/): every
problem is gathered, each names the file and the dotted key, an unknown key gets a
did-you-mean, and an unknown variant or task is named with the choices. The keys ``benchmark``
and ``benchmarks`` of older files are refused, each with the key it was renamed to (``task``,
``tasks``; ``renamed_keys``, harness/configfile.py), beside every other problem: silently
reading a renamed key would be a guess about a file that gates CI.

harness/report/gates.py checks the gates against a run.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field, model_validator

from harness import configfile
from harness.configfile import ConfigError, Problems, Strict, unknown
from harness.records.run_folder import INCOMPLETE, incomplete_reason
from harness.tasks import TASKS

LEGACY_OUTCOMES = {"failed": "wrong"}  # a wrong answer's outcome in results.json schema 2 and before
if TYPE_CHECKING:  # a Literal of the registry's names, built at run time: a str to the checker
    TaskName = str
else:
    TaskName = Literal[tuple(TASKS)]
RENAMED_TASK = {"benchmark": "task"}  # older gates files' keys
RENAMED_TASKS = {"benchmarks": "tasks"}


class GatesError(ConfigError):
    """The gates file is malformed; the message lists every problem found."""


class Floor(Strict):
    renamed_keys = RENAMED_TASK
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
    renamed_keys = RENAMED_TASK
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
    renamed_keys = RENAMED_TASKS
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

    def __len__(self) -> int:
        return (
            len(self.floor)
            + len(self.max_drop)
            + len(self.adapter)
            + len(self.frontier)
            + (self.baseline_file is not None)
        )


def parse_gates(raw: Mapping, *, variants: Sequence[str], source: str = "") -> Gates:
    """Gates from the parsed TOML ``raw``, checked against the experiment's ``variants``."""
    where = source or "gates"
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
    return gates


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
