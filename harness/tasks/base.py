"""The shape every task has, and the settings every task shares.

:class:`Task` is a ``Protocol``: it documents the shape and shares no code (a task module
copies and changes what it needs rather than inheriting it). A task module defines its items
and loader, its prompt builder, which request it sends the engine, its DeepEval metric and its
report groups, and ends with ``TASK = <an object of that shape>``; ``harness/tasks/__init__.py``
lists the tasks.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol

from deepeval.errors import MissingTestCaseParamsError
from deepeval.test_case import LLMTestCase
from pydantic import BeforeValidator, Field

from harness.configfile import Strict
from harness.engine.core import AUTO_BATCH, Engine, Phase
from harness.records.results import CaseSpec

NonNegative = Annotated[int, Field(ge=0)]
Positive = Annotated[int, Field(gt=0)]


def _batch_size(value: Any) -> Any:
    if value == AUTO_BATCH or (isinstance(value, int) and not isinstance(value, bool) and value > 0):
        return value
    raise ValueError(f"expected a whole number >= 1 or {AUTO_BATCH!r}, got {value!r}")


# Prompts per batch: a number, or "auto": on a CPU the task's default (8); on a CUDA device the
# largest batch that fits, found once per (model, device, task) from a cap (harness.engine.core).
BatchSize = Annotated[Positive | Literal["auto"], BeforeValidator(_batch_size)]


class TaskDataError(ValueError):
    """The task's data is unusable (found while predicting, as a prompt too long for the
    model): the whole run stops with this one line, not an error per case."""


class TaskSettings(Strict):
    """The keys every task's table in the experiment file has (``[spider]``, ``[mmlu]``, ...)."""

    limit: NonNegative = 0  # items to run, a seeded sample (stratified where the task has strata); 0: all
    shots: NonNegative = 0  # solved examples in each prompt; a variant may override it


class VariantOptions(Strict):
    """A variant's own table for a task (``spider = {shots = 3}``)."""

    shots: NonNegative | None = None  # None: the task's ``shots``


@dataclass(frozen=True)
class TaskData:
    """What a task loaded for a run: the selected items, and whatever else its prompts and
    metric need (schemas, a shot pool, folders), in ``context``."""

    items: tuple
    context: Any = None


@dataclass(frozen=True)
class Predictions:
    """A variant's predictions on a task, by item id, and the record of how they were made."""

    by_item: Mapping[str, Any]
    phase: Phase
    more_phases: Mapping[str, Phase] = field(default_factory=dict)  # other requests: "kl" -> its phase


@dataclass(frozen=True)
class RunContext:
    """What a task's ``predict`` may use besides the engine."""

    engine: Engine
    seed: int


@dataclass(frozen=True)
class Report:
    """How the report shows a task: the label and order of its groups, and its file outputs."""

    title: str  # "Spider execution accuracy"
    group_label: str  # "hardness"
    group_order: Sequence[str] = ()
    subgroup_label: str = ""  # "subject": a second, finer grouping from the row's extra fields
    chance: float | None = None  # the accuracy of guessing, drawn on the figure
    # "specialization": what fine-tuning is for (the frontier's x axis); "generalization": what
    # it may cost (its y axis); "": neither
    role: str = ""
    closed_answers: bool = False  # the answers come from a fixed set (MMLU's letters): count them


class Task(Protocol):
    """A benchmark: one module under harness/tasks/, registered in harness/tasks/__init__.py."""

    name: str  # the registry key, the pytest marker and the experiment table
    description: str  # one line, for the marker's help
    settings_model: type[TaskSettings]
    variant_model: type[VariantOptions]
    report: Report

    def load(self, settings: TaskSettings, *, seed: int) -> TaskData:
        """The selected items (raises ValueError naming the file or key at fault)."""

    def record_fields(self, item) -> dict:
        """The item's fields of its result row: ``group`` at least (e.g. hardness)."""

    def predict(
        self, run: RunContext, data: TaskData, variant, settings: TaskSettings, options: VariantOptions
    ) -> Predictions:
        """Every scorable item's prediction for ``variant``, from the engine (cached)."""

    def metric(self, settings: TaskSettings):
        """The task's DeepEval metric, made once per session."""

    def case(self, item, prediction, variant, settings: TaskSettings, data: TaskData, metric) -> CaseSpec:
        """The DeepEval test case of one item, scored by ``metric``; ``prediction`` is None when
        the item has none (then ``skip_reason`` says why)."""

    def write_outputs(self, run_dir: Path, variant, data: TaskData, predictions: Predictions) -> None:
        """Files of the run folder besides the report (may do nothing)."""

    def failure_kind(self, reason: str) -> str:
        """What kind of wrong answer a metric's reason describes ("no SQL", "wrong rows", ...)."""


def shots_of(settings: TaskSettings, options: VariantOptions | None) -> int:
    """The shots a variant gets on a task: its own, else the task's."""
    return settings.shots if options is None or options.shots is None else options.shots


def seeded_sample(items: Sequence, limit: int, seed: int) -> list:
    """A seeded sample of ``limit`` items in their original order (all of them for 0 or more
    than there are). The same (items, limit, seed) gives the same sample for every variant."""
    if not limit or limit >= len(items):
        return list(items)
    chosen = random.Random(seed).sample(range(len(items)), limit)
    return [items[i] for i in sorted(chosen)]


def stratified_sample(items: Sequence, limit: int, seed: int, stratum) -> list:
    """A seeded sample of ``limit`` items spread over strata in proportion to their sizes
    (largest remainders), in the items' original order. Strata with equal remainders (equal
    sizes, say, with fewer items asked than strata) are served in a seeded random order, so a
    small limit spreads over the strata rather than taking the alphabetically first ones."""
    if not limit or limit >= len(items):
        return list(items)
    groups: dict[Any, list[int]] = {}
    for i, item in enumerate(items):
        groups.setdefault(stratum(item), []).append(i)
    quotas = {k: limit * len(v) / len(items) for k, v in groups.items()}
    counts = {k: int(q) for k, q in quotas.items()}
    # a string seed is hashed by random.seed with SHA-512: the same order in every process
    tie_order = sorted(groups, key=str)
    random.Random(f"strata:{seed}").shuffle(tie_order)
    rank = {k: i for i, k in enumerate(tie_order)}
    by_remainder = sorted(groups, key=lambda k: (-(quotas[k] - counts[k]), rank[k]))
    for k in by_remainder[: limit - sum(counts.values())]:
        counts[k] += 1
    rng = random.Random(seed)
    chosen = [i for k in sorted(groups, key=str) for i in rng.sample(groups[k], counts[k])]
    return [items[i] for i in sorted(chosen)]


def check_threshold(threshold: float) -> None:
    """A metric's pass threshold must be a number in [0, 1]."""
    if not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be a number in [0, 1], got {threshold!r}")


def require_expected(metric, test_case: LLMTestCase) -> str:
    """The gold answer of ``test_case``. Missing, it is a bug in the benchmark, not a wrong
    prediction: raise (the case is then an error, not a wrong answer)."""
    if not isinstance(test_case, LLMTestCase):
        metric.error = f"{metric.__name__} scores LLMTestCase objects, got {type(test_case).__name__}"
        raise ValueError(metric.error)
    if test_case.expected_output is None or not str(test_case.expected_output).strip():
        metric.error = f"'expected_output' (the gold answer) is empty for the '{metric.__name__}' metric"
        raise MissingTestCaseParamsError(metric.error)
    return str(test_case.expected_output).strip()
