"""The experiment config: one TOML file declares the variants, the tasks and their sizes.

    [experiment]                      # name, seed, baseline, gates, cache_dir, report_dir, tasks
    name = "default"
    tasks = ["spider", "mmlu"]        # which registered tasks run (harness/tasks/__init__.py)

    [spider]                          # one table per task: its settings (harness/tasks/<task>.py)
    limit = 50

    [[variants]]                      # the model variants under test
    name = "ft-3shot"
    model = "smollm2-135m-instruct"   # the default, an HF id, a local folder or a .gguf file
    revision = ""                     # a hub model's branch, tag or commit (recorded as the commit)
    load = "fp32"                     # fp32, bf16, int8, nf4, or auto (bf16 on a CUDA GPU that has it)
    adapter = "adapters/default"      # a PEFT adapter: a folder or a hub id (optional)
    adapter_revision = ""             # a hub adapter's branch, tag or commit
    train_config = "training/configs/default.toml"   # trains the adapter when it is absent
    spider = {shots = 3}              # the variant's own options per task
    backend = "hf"                    # what computes its answers (harness.models.backends)
    trust_remote_code = false         # run the model repository's own code (off unless asked)
    attn_implementation = ""          # "sdpa", "eager", "flash_attention_2", ...; empty: transformers'
    device_map = ""                   # "auto": spread a model larger than one GPU; empty: one device

Loaded into frozen pydantic models by the one config loader (harness/configfile.py): every
problem is reported at once, naming the file and the dotted key, with a did-you-mean. The models
are built from the task registry, so a new task brings its table and variant options with it.
``harness schema`` prints this schema as JSON Schema (generated, not kept in the repository).
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, PrivateAttr, create_model, model_validator

from harness import configfile
from harness.config.training import training_plan
from harness.configfile import ConfigError, Problems, Strict, unknown
from harness.data.sources import DataNotFound, locate
from harness.models.backends import BACKENDS, DEFAULT_BACKEND
from harness.models.loading import (
    AUTO,
    DEFAULT_MODEL,
    LOAD_MODES,
    ModelLoadError,
    check_adapter_base,
    is_local_adapter,
)
from harness.tasks import DEFAULT_TASKS, TASKS

__all__ = ["ConfigError", "ExperimentConfig", "VariantConfig", "Overrides", "load_experiment"]

_VARIANT_NAME = re.compile(r"^[A-Za-z@][A-Za-z0-9_.=@+,-]*$")
TaskName = Literal[tuple(TASKS)]  # type: ignore[valid-type]
LoadMode = Literal[LOAD_MODES]  # type: ignore[valid-type]
VariantLoadMode = Literal[(*LOAD_MODES, AUTO)]  # type: ignore[valid-type]

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


VariantConfig = create_model(
    "VariantConfig",
    __base__=_VariantBase,
    **{name: (task.variant_model | None, None) for name, task in TASKS.items()},
)


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


SweepConfig = create_model(
    "SweepConfig",
    __base__=_SweepBase,
    **{name: (task.variant_model | None, None) for name, task in TASKS.items()},
)


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
    sweeps: tuple[SweepConfig, ...] = ()  # type: ignore[valid-type]  # expanded into variants by the loader
    variants: Annotated[tuple[VariantConfig, ...], Field(min_length=1)] = ()  # type: ignore[valid-type]
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


ExperimentConfig = create_model(
    "ExperimentConfig",
    __base__=_ExperimentBase,
    **{name: (task.settings_model, task.settings_model()) for name, task in TASKS.items()},
)


@dataclasses.dataclass(frozen=True)
class Overrides:
    """Command-line options that win over the file (``None`` or empty: the file's value).

    ``limits`` and ``shots`` map a task name to a number; the key ``"*"`` means every task.
    ``data_dirs`` maps a task to its ``data_dir``. ``variants`` keeps only those variants.
    ``model`` applies to the variants without an adapter only: an adapter belongs to the base it
    was trained on (the loader records the variants it left alone).
    """

    variants: tuple[str, ...] = ()
    model: str | None = None
    load: str | None = None
    limits: dict = dataclasses.field(default_factory=dict)
    shots: dict = dataclasses.field(default_factory=dict)
    batch_sizes: dict = dataclasses.field(default_factory=dict)  # task (or "*") -> a number or "auto"
    data_dirs: dict = dataclasses.field(default_factory=dict)
    settings: dict = dataclasses.field(default_factory=dict)  # {(task, key): value}


def _apply(raw: dict, ov: Overrides) -> dict:
    """The raw TOML with the overrides written into it, so they are validated like the file."""
    raw = {k: (dict(v) if isinstance(v, dict) else v) for k, v in raw.items()}
    tasks = raw.get("tasks", DEFAULT_TASKS)

    def table(task: str) -> dict:
        raw[task] = dict(raw.get(task) or {})
        return raw[task]

    for key, value in ov.limits.items():
        for task in tasks if key == "*" else [key]:
            table(task)["limit"] = value
    for key, value in ov.batch_sizes.items():
        for task in tasks if key == "*" else [key]:
            table(task)["batch_size"] = value
    for task, value in ov.data_dirs.items():
        table(task)["data_dir"] = value
    for (task, key), value in ov.settings.items():
        table(task)[key] = value
    variants = [dict(v) if isinstance(v, dict) else v for v in raw.get("variants", [])]
    for v in variants:
        if not isinstance(v, dict):
            continue
        if ov.model and not v.get("adapter"):
            v["model"] = ov.model
        if ov.load:
            v["load"] = ov.load
        for key, value in ov.shots.items():
            for task in tasks if key == "*" else [key]:
                v[task] = {**(v.get(task) or {}), "shots": value}
    if variants:
        raw["variants"] = variants
    return raw


def load_experiment(path: str | Path, overrides: Overrides | None = None):
    """Load, override and validate an experiment config (:class:`ExperimentConfig`).

    Relative paths in the config (adapters, training configs, data) are relative to the
    directory the harness runs in (the repository root), like every other path a user types.
    """
    ov = overrides or Overrides()
    raw = configfile.read_toml(path, "experiment config")
    # The [experiment] table holds the top-level keys (name, seed, baseline, ...); it reads
    # better in a file than bare keys above the first table.
    head = raw.pop("experiment", {})
    if isinstance(head, dict):
        clash = sorted(set(head) & set(raw))
        if clash:
            raise ConfigError(
                f"{path}: invalid experiment config:\n  experiment: {', '.join(clash)} given both "
                "in [experiment] and at top level"
            )
        raw = {**head, **raw}
    else:
        raw["experiment"] = head
    if "source" in raw:
        raise ConfigError(f"{path}: invalid experiment config:\n  source: unknown key (set by the loader)")
    raw = _expand_sweeps(raw, path)
    for task, _value in ov.limits.items():
        if task != "*" and task not in TASKS:
            raise ConfigError(f"--limit {task}=...: " + unknown("task", task, TASKS))
    for option, tasks in (("--shots", ov.shots), ("--batch-size", ov.batch_sizes)):
        for task in tasks:
            if task != "*" and task not in TASKS:
                raise ConfigError(f"{option} {task}=...: " + unknown("task", task, TASKS))
    cfg = configfile.validate(ExperimentConfig, _apply(raw, ov), source=str(path), kind="experiment config")
    cfg = cfg.model_copy(update={"source": str(path)})
    left_alone = tuple(v.name for v in cfg.variants if ov.model and v.adapter) if ov.model else ()
    if ov.variants:
        names = [v.name for v in cfg.variants]
        for n in ov.variants:
            if n not in names:
                raise ConfigError(f"{path} (--variant): " + unknown("variant", n, names))
        chosen = tuple(v for v in cfg.variants if v.name in ov.variants)
        # A baseline left out by --variant falls back to the first chosen variant.
        baseline = cfg.baseline if cfg.baseline in ov.variants else ""
        cfg = cfg.model_copy(update={"variants": chosen, "baseline": baseline})
        cfg._declared = tuple(names)
        left_alone = tuple(n for n in left_alone if n in ov.variants)
    cfg._model_left_alone = left_alone
    return cfg


def _expand_sweeps(raw: dict, path) -> dict:
    """Each ``[[sweeps]]`` table's planned adapters (harness.config.training.training_plan) as
    ``[[variants]]`` tables, after the file's own variants; the sweep tables stay, for the record."""
    sweeps = raw.get("sweeps")
    if not isinstance(sweeps, list) or not sweeps:
        return raw
    variants = list(raw.get("variants") or [])
    problems = []
    for i, sweep in enumerate(sweeps):
        if not isinstance(sweep, dict) or not isinstance(sweep.get("train_config"), str):
            continue  # the schema check names it
        try:
            plan = training_plan(sweep["train_config"])
        except (ConfigError, OSError) as e:
            problems.append(f"sweeps[{i}].train_config: {e}")
            continue
        name = sweep.get("name") or Path(sweep["train_config"]).stem
        options = {k: v for k, v in sweep.items() if k in TASKS or k in ("load", "tasks")}
        for planned in plan:
            variants.append(
                {
                    "name": (sweep.get("name") or "") + planned.short_name,
                    "model": sweep.get("model") or planned.model,
                    "adapter": planned.adapter_dir,
                    "train_config": sweep["train_config"],
                    "origin": {
                        "sweep": name,
                        "point": planned.point_label,
                        "values": tuple((k, str(v)) for k, v in planned.values),
                        "fraction": float(planned.fraction),
                        "epochs_at": float(planned.epochs_at),
                        "run_output": planned.run_output,
                        "config_fingerprint": planned.config_fingerprint,
                    },
                    **options,
                }
            )
    if problems:
        raise ConfigError(f"{path}: invalid experiment config:\n  " + "\n  ".join(problems))
    return {**raw, "variants": variants}


def required_data(exp) -> dict[str, str | None]:
    """The datasets the experiment's tasks read from disk, each with its configured folder."""
    needs: dict[str, str | None] = {}
    if "spider" in exp.tasks:
        needs["spider"] = exp.settings("spider").data_dir or None
    if "mmlu" in exp.tasks and exp.settings("mmlu").source != "hub":
        needs["mmlu"] = exp.settings("mmlu").data_dir or None
    return needs


def check_data(exp) -> None:
    """ConfigError, one line per dataset the experiment needs and the harness cannot find (where
    it looked, and the command that fetches it), before any model is converted or trained."""
    problems = []
    for name, explicit in required_data(exp).items():
        try:
            locate(name, explicit, option=f"--{name}-dir")
        except DataNotFound as e:
            problems.append(str(e))
    if problems:
        raise ConfigError("\n".join(problems))


def check_adapters(exp) -> None:
    """ConfigError, one line per variant whose adapter (a folder already there) was trained on
    another base model than the variant's: refused before any case, naming both."""
    problems = []
    for v in exp.variants:
        if (
            v.adapter
            and is_local_adapter(v.adapter, v.adapter_revision or None)
            and (Path(v.adapter) / "adapter_config.json").is_file()
        ):
            try:
                check_adapter_base(v.name, v.model, v.adapter, v.adapter)
            except ModelLoadError as e:
                problems.append(str(e))
    if problems:
        raise ConfigError("\n".join(problems))


def model_note(exp) -> str:
    """What a --model override did not change, and why (empty when it changed every variant)."""
    if not exp.model_left_alone:
        return ""
    return (
        f"--model applies to the variants without an adapter; left alone, on the base their adapter "
        f"was trained on: {', '.join(exp.model_left_alone)}"
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


if __name__ == "__main__":  # python -m harness.config.experiment: the same as `harness schema`
    print(json.dumps(json_schema(), indent=1))
