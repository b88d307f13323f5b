"""Reading an experiment file: the ``[experiment]`` table, the command-line overrides written
into the raw TOML (so they are validated like the file), ``--variant``, and each ``[[sweeps]]``
table expanded into the variants of its training config's planned adapters.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from harness import configfile
from harness.config.experiment.schema import ExperimentConfig
from harness.config.training import training_plan
from harness.configfile import ConfigError, unknown
from harness.tasks import DEFAULT_TASKS, TASKS


@dataclasses.dataclass(frozen=True)
class Overrides:
    """Command-line options that win over the file (``None`` or empty: the file's value).

    ``limits`` and ``shots`` map a task name to a number; the key ``"*"`` means every task.
    ``settings`` maps (task, key) to a value of the task's table (``--set``, ``--data-dir``).
    ``variants`` keeps only those variants.
    ``model`` applies to the variants without an adapter only: an adapter belongs to the base it
    was trained on (the loader records the variants it left alone).
    """

    variants: tuple[str, ...] = ()
    model: str | None = None
    load: str | None = None
    limits: dict = dataclasses.field(default_factory=dict)
    shots: dict = dataclasses.field(default_factory=dict)
    batch_sizes: dict = dataclasses.field(default_factory=dict)  # task (or "*") -> a number or "auto"
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
