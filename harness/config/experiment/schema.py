"""The experiment file's schema: frozen pydantic models of its variants, sweeps and task tables,
built from the task registry (a new task brings its table and variant options with it), and
the file's JSON Schema (printed by ``harness schema``, generated, not kept in the repository).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, PrivateAttr, create_model, model_validator

from harness.configfile import ConfigError, Problems, Strict, unknown
from harness.models.backends import BACKENDS, DEFAULT_BACKEND
from harness.models.loading import AUTO, DEFAULT_MODEL, LOAD_MODES, is_local_adapter
from harness.tasks import DEFAULT_TASKS, TASKS

_VARIANT_NAME = re.compile(r"^[A-Za-z@][A-Za-z0-9_.=@+,-]*$")
if TYPE_CHECKING:  # Literals of the registered names, built at import time: mypy sees a str
    TaskName = str
    VariantLoadMode = str
else:
    TaskName = Literal[tuple(TASKS)]
    VariantLoadMode = Literal[(*LOAD_MODES, AUTO)]

# Keys of the variant table before tasks were registered: each now lives in the task's own table.
_RENAMED = {
    "spider_shots": "spider = {shots = N}",
    "mmlu_shots": "mmlu = {shots = N}",
    "mmlu_scoring": 'mmlu = {scoring = "generate"}',
    "benchmarks": "tasks = [...]",
}


class Origin(Strict):
    """Where a sweep's variant comes from: set by the loader, not written in a file."""

    sweep: str  # the sweep's name ([[sweeps]] name, or its training config's stem)
    point: str  # the training run's sweep label, "learning_rate=0.0002"; "" without a sweep
    values: tuple[tuple[str, str], ...] = ()  # the swept (key, value) pairs, as text
    fraction: float = 1.0  # of the run's planned steps
    epochs_at: float = 1.0
    run_output: str = ""  # the run's output folder (its final adapter)
    config_fingerprint: str = ""


class _VariantBase(Strict):
    """One model variant under test: a base model, optionally an adapter, a load mode, and
    its own options per task (``spider = {shots = 3}``)."""

    name: str
    model: str = DEFAULT_MODEL
    revision: str = ""  # a hub model's branch, tag or commit; empty: main
    load: VariantLoadMode = AUTO  # auto: bf16 on a CUDA device that supports it, else fp32
    adapter: str = ""  # a PEFT adapter folder or hub id; empty: the base model
    adapter_revision: str = ""  # a hub adapter's branch, tag or commit
    train_config: str = ""  # training config that produces ``adapter`` when it is absent
    tasks: tuple[TaskName, ...] = ()  # empty: every task of the experiment
    backend: str = DEFAULT_BACKEND  # what computes the answers (harness.models.backends)
    trust_remote_code: bool = False  # let the model's repository run its own code
    attn_implementation: str = ""  # transformers' attn_implementation; empty: its default
    device_map: str = ""  # "auto": spread the model over the GPUs; empty: on one device
    origin: Origin | None = None  # set by the loader for a sweep's variants
    # The baseline scored a second time another way (another batch size, ``mmlu = {batch_size =
    # 1}``, or load mode): a null variant. Its "changes" are the run's noise floor, reported beside
    # the real ones; a continuous change below them is flagged as within noise.
    noise_floor: bool = False

    @model_validator(mode="before")
    @classmethod
    def _renamed_keys(cls, raw: Any) -> Any:
        if isinstance(raw, dict):
            old = [k for k in raw if k in _RENAMED]
            if old:
                raise Problems(f"{k}: renamed; write {_RENAMED[k]}" for k in old)
        return raw

    @property
    def markers(self) -> tuple[str, ...]:
        """The pytest markers that select this variant: its name where pytest's -m can spell it
        (letters, digits, _ . + - :), else the name with ``=`` -> ``_``, ``@`` -> ``_at_`` and
        ``,`` -> ``+`` (``lr_2e-4_at_0.5ep``); a sweep's variants also carry the sweep's name,
        their run's (``lr_2e-4``) and their checkpoint's (``at_0.5ep``)."""
        names = [marker_name(self.name)]
        if self.origin is not None:
            names.append(marker_name(self.origin.sweep))
            head, _, tail = self.name.rpartition("@")
            if head:
                names.append(marker_name(head))
            names.append(marker_name("@" + tail))
        return tuple(dict.fromkeys(n for n in names if n))

    def options(self, task: str):
        """This variant's options for ``task`` (None: the task's defaults)."""
        return getattr(self, task, None)


# A variant's keys that decide what computes its numbers (everything but its name, tasks and options).
_MODEL_KEYS = {
    "model",
    "revision",
    "load",
    "adapter",
    "adapter_revision",
    "backend",
    "trust_remote_code",
    "attn_implementation",
    "device_map",
}


def marker_name(name: str) -> str:
    """``name`` as a pytest marker that ``-m`` expressions can name."""
    name = name.replace("=", "_").replace("@", "_at_").replace(",", "+")
    name = re.sub(r"[^A-Za-z0-9_.+:-]", "_", name).strip("_")
    return name if name and (name[0].isalpha() or name[0] == "_") else f"v_{name}"


def _with_task_options(name: str, base: type[Strict]) -> type[Strict]:
    """``base`` with one optional field per registered task: a variant's options for it
    (``spider = {shots = 3}``)."""
    fields: dict[str, Any] = {
        task_name: (task.variant_model | None, None) for task_name, task in TASKS.items()
    }
    return create_model(name, __base__=base, **fields)


if TYPE_CHECKING:  # the tasks' option fields are added from the registry at import time
    VariantConfig = _VariantBase
else:
    VariantConfig = _with_task_options("VariantConfig", _VariantBase)


class _SweepBase(Strict):
    """A training config whose sweep points and checkpoints all become variants:

        [[sweeps]]
        train_config = "training/configs/frontier.toml"   # with [sweep] and [checkpoints]
        load = "bf16"
        spider = {shots = 0}

    gives one variant per (sweep point, checkpoint), named after its values and the training
    it had (``lr=2e-4@0.5ep``), with its adapter and the training config that produces it.
    """

    train_config: str
    name: str = ""  # prefix of the variants' names; empty: none
    model: str = ""  # empty: the training config's model
    load: VariantLoadMode = "fp32"
    tasks: tuple[TaskName, ...] = ()


if TYPE_CHECKING:
    SweepConfig = _SweepBase
else:
    SweepConfig = _with_task_options("SweepConfig", _SweepBase)


class _ExperimentBase(Strict):
    name: str = "experiment"
    seed: int = 0
    baseline: str = ""  # the variant others are compared with; empty: the first
    cache_dir: str = ".cache/predictions"
    report_dir: str = "reports"
    gates: str = ""  # a gates TOML file; empty: no gates
    tasks: tuple[TaskName, ...] = DEFAULT_TASKS
    # The best trade-off's non-inferiority margin: the generalization accuracy loss (percentage
    # points) that the lower end of a point's 95% interval may not reach.
    margin_points: Annotated[float, Field(ge=0, le=100)] = 1.0
    # Where this experiment departs from a protocol it reproduces (a paper's): listed in the report.
    departures: tuple[str, ...] = ()
    sweeps: tuple[SweepConfig, ...] = ()  # expanded into variants by the loader
    variants: Annotated[tuple[VariantConfig, ...], Field(min_length=1)] = ()
    source: str = ""  # the file it was loaded from (set by the loader, not a key of the file)
    _declared: tuple[str, ...] = PrivateAttr(default=())  # every variant of the file (before --variant)
    _model_left_alone: tuple[str, ...] = PrivateAttr(default=())  # variants --model did not change

    @property
    def model_left_alone(self) -> tuple[str, ...]:
        """The variants with an adapter, which a --model override leaves on their own base."""
        return self._model_left_alone

    @property
    def declared_variants(self) -> tuple[str, ...]:
        """Every variant the file declares, also those --variant left out (a gate may name them)."""
        return self._declared or tuple(v.name for v in self.variants)

    @model_validator(mode="after")
    def _check(self):
        problems = []
        seen: set[str] = set()
        for i, v in enumerate(self.variants):
            key = f"variants[{i}]"
            if not _VARIANT_NAME.match(v.name):
                problems.append(
                    f"{key}.name: {v.name!r} must start with a letter and hold only letters, digits "
                    "and - _ . = @ +"
                )
            if v.name in seen:
                problems.append(f"{key}.name: {v.name!r} is declared twice")
            seen.add(v.name)
            for t in v.tasks:
                if t not in self.tasks:
                    problems.append(
                        f"{key}.tasks: {t!r} is not one of the experiment's tasks ({', '.join(self.tasks)})"
                    )
            if v.noise_floor and v.adapter:
                problems.append(
                    f"{key}.noise_floor: a null variant re-scores the baseline: it has no adapter"
                )
            if v.train_config and not Path(v.train_config).is_file():
                problems.append(f"{key}.train_config: no such file {v.train_config!r}")
            local = is_local_adapter(v.adapter, v.adapter_revision or None)
            if (
                v.adapter
                and local
                and not v.train_config
                and not (Path(v.adapter) / "adapter_config.json").is_file()
            ):
                problems.append(
                    f"{key}.adapter: no adapter_config.json in {v.adapter!r} and no train_config to "
                    "produce it (a hub adapter is an id 'org/name')"
                )
            if v.backend not in BACKENDS:
                problems.append(f"{key}.backend: " + unknown("backend", v.backend, BACKENDS))
        if self.baseline and self.baseline not in seen:
            problems.append("baseline: " + unknown("variant", self.baseline, sorted(seen)))
        if problems:
            raise Problems(problems)
        return self

    def variant(self, name: str):
        for v in self.variants:
            if v.name == name:
                return v
        raise ConfigError(f"{self.source}: " + unknown("variant", name, [v.name for v in self.variants]))

    @property
    def noise_floor_variants(self) -> tuple[str, ...]:
        return tuple(v.name for v in self.variants if v.noise_floor)

    @property
    def baseline_variant(self) -> str:
        return self.baseline or (self.variants[0].name if self.variants else "")

    def settings(self, task: str):
        """The ``[<task>]`` table."""
        return getattr(self, task)

    def same_measurements(self) -> dict[tuple[str, str], str]:
        """(variant, task) -> an earlier variant that makes the same measurement on that task: the
        same model, load mode, adapter and options for it (MMLU of a 3-shot Spider variant, whose
        shots apply to Spider only). Comparing the two would show a difference of exactly zero."""
        first: dict[tuple, str] = {}
        out: dict[tuple[str, str], str] = {}
        for v in self.variants:
            for task in self.tasks_of(v):
                options = v.options(task)
                model = v.model_dump(include=_MODEL_KEYS)
                key = (task, json.dumps(model, sort_keys=True), options.model_dump_json() if options else "")
                if key in first:
                    out[(v.name, task)] = first[key]
                else:
                    first[key] = v.name
        return out

    def tasks_of(self, variant) -> tuple[str, ...]:
        """The tasks ``variant`` runs, in the experiment's order."""
        return tuple(t for t in self.tasks if not variant.tasks or t in variant.tasks)


if TYPE_CHECKING:  # the tasks' tables are added from the registry at import time
    ExperimentConfig = _ExperimentBase
else:
    ExperimentConfig = create_model(
        "ExperimentConfig",
        __base__=_ExperimentBase,
        **{name: (task.settings_model, task.settings_model()) for name, task in TASKS.items()},
    )


_TABLES = ("sweeps", "variants", *TASKS)  # the file's tables; the other keys go in [experiment]


def json_schema() -> dict:
    """The experiment file's JSON Schema, keys as a file writes them: the top-level keys in an
    ``[experiment]`` table (or bare, above the first table, as the loader also accepts), then
    ``[[sweeps]]``, ``[[variants]]`` and a table per task; ``source`` is the loader's."""
    schema = ExperimentConfig.model_json_schema()
    props = schema["properties"]
    props.pop("source")
    head = {k: v for k, v in props.items() if k not in _TABLES}
    props["experiment"] = {
        "title": "Experiment",
        "description": "name, seed, baseline, cache_dir, report_dir, gates and tasks",
        "type": "object",
        "properties": head,
        "additionalProperties": False,
    }
    return schema
