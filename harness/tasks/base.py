"""The contract of a task: the shape every task has, and the settings every task shares.

:class:`Task` is a ``Protocol``, generic in the task's item, context (what loading found beside
the items), prediction, settings and variant options: a task conforms to it without inheriting
from it, and shares code only through the helpers it imports (the metric base, the text-to-SQL
pieces in harness/tasks/sql_*.py). A task module defines its items and loader, its prompt
builder, which request it sends the engine, its DeepEval metric (on
:class:`harness.tasks.metric.PassFailMetric`) and its :class:`Report` declaration, and ends
with ``TASK = <an object of that shape>``; ``harness/tasks/__init__.py`` lists the tasks.

What the report and analysis know of a task they read from its declarations, never from a
field name: :class:`PhaseInfo` (what a phase record says), :attr:`Report.measures` (its
continuous measures), :attr:`Report.subgroup_field` (its finer grouping) and
:meth:`Task.failure_kind` (how a wrong answer is classified).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Generic, Literal, Protocol, TypeVar

from pydantic import BeforeValidator, Field

from harness.configfile import Strict
from harness.engine.core import Engine, ModelSpec, Phase
from harness.models.pool import AUTO_BATCH
from harness.numbers.summary import Measure
from harness.records.results import CaseSpec
from harness.tasks.metric import PassFailMetric

NonNegative = Annotated[int, Field(ge=0)]
Positive = Annotated[int, Field(gt=0)]


def _batch_size(value: object) -> object:
    if value == AUTO_BATCH or (isinstance(value, int) and not isinstance(value, bool) and value > 0):
        return value
    raise ValueError(f"expected a whole number >= 1 or {AUTO_BATCH!r}, got {value!r}")


# Prompts per batch: a number, or "auto": on a CPU the task's default (8); on a CUDA device the
# largest batch that fits, found once per (model, device, task) from a cap
# (harness.models.pool.ModelPool.batch_size, harness.engine.batch_fitting).
BatchSize = Annotated[Positive | Literal["auto"], BeforeValidator(_batch_size)]


class TaskDataError(ValueError):
    """The task's data is unusable (found while predicting, as a prompt too long for the
    model): the whole run stops with this one line, not an error per case."""


class TaskSettings(Strict):
    """The keys every task's table in the experiment file has (``[spider]``, ``[mmlu]``, ...)."""

    limit: NonNegative = 0  # items to run, a seeded sample (stratified where the task has strata); 0: all
    shots: NonNegative = 0  # solved examples in each prompt; a variant may override it

    def prompt_label(self, options: VariantOptions | None = None) -> str:
        """How a variant's prompts are made, in a word beside its shots (a template, a scoring
        mode), for records that name the settings of a run; "" when the task has no such word."""
        return ""


class VariantOptions(Strict):
    """A variant's own table for a task (``spider = {shots = 3}``)."""

    shots: NonNegative | None = None  # None: the task's ``shots``


class Item(Protocol):
    """What the harness needs of a task's item: an id, unique within the task."""

    @property
    def item_id(self) -> str: ...


ItemT = TypeVar("ItemT", bound=Item)
ItemT_co = TypeVar("ItemT_co", bound=Item, covariant=True)
ContextT = TypeVar("ContextT")
PredictionT = TypeVar("PredictionT")
SettingsT = TypeVar("SettingsT", bound=TaskSettings)
OptionsT = TypeVar("OptionsT", bound=VariantOptions)


@dataclass(frozen=True)
class TaskData(Generic[ItemT_co, ContextT]):
    """What a task loaded for a run: the selected items, and whatever else its prompts and
    metric need (schemas, a shot pool, folders), in ``context``."""

    items: tuple[ItemT_co, ...]
    context: ContextT = None  # type: ignore[assignment]  # a task without a context leaves it None


@dataclass(frozen=True)
class PhaseInfo:
    """What a task says of one prediction phase: the fields the report prints per phase (the
    prompt template and its version, the seed, the prompts, the shots, or the kind of request
    for a phase that is no generation) and anything more the task keeps in the phase record."""

    template: str = ""
    template_version: int | str | None = None
    seed: int | None = None
    n_prompts: int | None = None
    shots: int | None = None
    kind: str = ""  # another request than the task's prediction: "kl_to_base"
    more: Mapping[str, object] = field(default_factory=dict)

    def record(self) -> dict[str, object]:
        """The fields of the phase record (``phases/<task>-<variant>.json``): the ones set."""
        declared = {
            "kind": self.kind,
            "template": self.template,
            "template_version": self.template_version,
            "seed": self.seed,
            "n_prompts": self.n_prompts,
            "shots": self.shots,
        }
        return {**{k: v for k, v in declared.items() if v not in (None, "")}, **self.more}

    def into(self, phase: Phase) -> Phase:
        """``phase`` with these fields added to its record."""
        phase.info.update(self.record())
        return phase


@dataclass(frozen=True)
class Predictions(Generic[PredictionT]):
    """A variant's predictions on a task, by item id, and the record of how they were made."""

    by_item: Mapping[str, PredictionT]
    phase: Phase
    more_phases: Mapping[str, Phase] = field(default_factory=dict)  # other requests: "kl" -> its phase


@dataclass(frozen=True)
class RunContext:
    """What a task's ``predict`` may use besides the engine."""

    engine: Engine
    seed: int


class Variant(ModelSpec, Protocol):
    """What a task reads of a variant: what the engine needs of it (its name, model, load mode
    and adapter); harness.config.experiment.VariantConfig has more."""


Role = Literal["specialization", "generalization", ""]


@dataclass(frozen=True)
class Report:
    """How the report shows a task: the label and order of its groups, its finer grouping, its
    continuous measures, and its place on the frontier."""

    title: str  # "Spider execution accuracy"
    group_label: str  # "hardness"
    group_order: Sequence[str] = ()
    subgroup_label: str = ""  # "subject": a second, finer grouping ...
    subgroup_field: str = ""  # ... read from this field of the row's extra fields
    chance: float | None = None  # the accuracy of guessing, drawn on the figure
    # "specialization": what fine-tuning is for (the frontier's x axis); "generalization": what
    # it may cost (its y axis); "": neither
    role: Role = ""
    # The fixed set the answers come from (MMLU's letters), each counted in the report, a choice
    # no variant gives included; () for open answers, which are not counted.
    answer_choices: Sequence[str] = ()
    # The continuous measures the task's rows carry (name -> how to read and compare it), and
    # the one the frontier draws beside the accuracy ("" for none).
    measures: Mapping[str, Measure] = field(default_factory=dict)
    frontier_measure: str = ""

    def __post_init__(self) -> None:
        if self.frontier_measure and self.frontier_measure not in self.measures:
            raise ValueError(f"frontier_measure {self.frontier_measure!r} is not one of the task's measures")
        if bool(self.subgroup_label) != bool(self.subgroup_field):
            raise ValueError("subgroup_label and subgroup_field go together")


class Task(Protocol[ItemT, ContextT, PredictionT, SettingsT, OptionsT]):
    """A benchmark: one module under harness/tasks/, registered in harness/tasks/__init__.py."""

    name: str  # the registry key, the pytest marker and the experiment table
    description: str  # one line, for the marker's help
    settings_model: type[SettingsT]
    variant_model: type[OptionsT]
    report: Report

    def load(self, settings: SettingsT, *, seed: int) -> TaskData[ItemT, ContextT]:
        """The selected items (raises ValueError naming the file or key at fault)."""

    def record_fields(self, item: ItemT) -> dict[str, str]:
        """The item's fields of its result row: ``group`` at least (e.g. hardness)."""

    def predict(
        self,
        run: RunContext,
        data: TaskData[ItemT, ContextT],
        variant: Variant,
        settings: SettingsT,
        options: OptionsT | None,
    ) -> Predictions[PredictionT]:
        """Every scorable item's prediction for ``variant``, from the engine (cached)."""

    def metric(self, settings: SettingsT) -> PassFailMetric:
        """The task's DeepEval metric, made once per session."""

    def case(
        self,
        item: ItemT,
        prediction: PredictionT | None,
        variant: Variant,
        settings: SettingsT,
        data: TaskData[ItemT, ContextT],
        metric: Any,
    ) -> CaseSpec:
        """The DeepEval test case of one item, scored by ``metric``; ``prediction`` is None when
        the item has none (then ``skip_reason`` says why)."""

    def write_outputs(
        self,
        run_dir: Path,
        variant: Variant,
        data: TaskData[ItemT, ContextT],
        predictions: Predictions[PredictionT],
    ) -> None:
        """Files of the run folder besides the report (may do nothing)."""

    def failure_kind(self, reason: str) -> str:
        """What kind of wrong answer a metric's reason describes ("no SQL", "wrong rows", ...)."""


AnyTask = Task[Any, Any, Any, Any, Any]  # the registry's entries: tasks of any item type


def missing_members(task: object) -> list[str]:
    """The members of :class:`Task` that ``task`` lacks: the registry refuses such a task when
    it is imported, rather than a run failing later at the first call it lacks."""
    wanted = [
        *Task.__annotations__,
        *(n for n, v in vars(Task).items() if callable(v) and not n.startswith("_")),
    ]
    return [name for name in wanted if not hasattr(task, name)]


def shots_of(settings: TaskSettings, options: VariantOptions | None) -> int:
    """The shots a variant gets on a task: its own, else the task's."""
    return settings.shots if options is None or options.shots is None else options.shots


T = TypeVar("T")


def seeded_sample(items: Sequence[T], limit: int, seed: int) -> list[T]:
    """A seeded sample of ``limit`` items in their original order (all of them for 0 or more
    than there are). The same (items, limit, seed) gives the same sample for every variant."""
    if not limit or limit >= len(items):
        return list(items)
    chosen = random.Random(seed).sample(range(len(items)), limit)
    return [items[i] for i in sorted(chosen)]


def stratified_sample(items: Sequence[T], limit: int, seed: int, stratum: Callable[[T], Hashable]) -> list[T]:
    """A seeded sample of ``limit`` items spread over strata in proportion to their sizes
    (largest remainders), in the items' original order. Strata with equal remainders (equal
    sizes, say, with fewer items asked than strata) are served in a seeded random order, so a
    small limit spreads over the strata rather than taking the alphabetically first ones."""
    if not limit or limit >= len(items):
        return list(items)
    groups: dict[Hashable, list[int]] = {}
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
