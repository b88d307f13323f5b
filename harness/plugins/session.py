"""The pytest plugin that owns a benchmark run's settings: options, experiment, run folder, workers.

Everything the other layers need from the command line is read here and kept in
``config.stash``: the experiment (loaded with the options' overrides while the benchmark files
are collected, so a bad config stops the run before any model loads), the run id and folder,
the prediction cache, and, under pytest-xdist, each worker's shard and GPU. The results plugin
(harness/plugins/results.py) and the fixtures (fixtures/) read it through the functions below; this
module imports neither.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.config.experiment import (
    ConfigError,
    ExperimentConfig,
    Overrides,
    check_adapters,
    check_data,
    load_experiment,
    model_note,
)
from harness.configfile import suggestion
from harness.engine.sharding import Shard, pin_worker, visible_gpus, worker_gpu
from harness.models.loading import AUTO, LOAD_MODES
from harness.plugins.preflight import check_session
from harness.plugins.task_options import add_task_options, settings_note, task_settings_of
from harness.records.run_folder import new_run_id, run_id_problem
from harness.tasks import TASKS

EXPERIMENT_KEY = pytest.StashKey[ExperimentConfig]()
RUN_ID_KEY = pytest.StashKey[str]()
GPUS_KEY = pytest.StashKey[list]()  # the controller's visible GPUs, dealt out to the xdist workers
GATES_DISABLED = ("", "none", "off")


# -- options, checked as they are parsed --------------------------------------------------------


def whole_number(option: str, text: str) -> int:
    """``text`` as a count >= 0, or a usage error naming ``option``."""
    try:
        value = int(text)
    except ValueError:
        raise pytest.UsageError(f"{option}: expected a whole number, got {text!r}") from None
    if value < 0:
        raise pytest.UsageError(f"{option}: expected a number >= 0, got {value}")
    return value


def _per_task(option: str):
    """``N`` (every task) or ``TASK=N``, as a (task, N) pair; "*" stands for every task."""

    def parse(text: str) -> tuple[str, int]:
        task, sep, number = text.rpartition("=")
        if not sep:
            return "*", whole_number(f"{option} {text}", text)
        if task not in TASKS:
            raise pytest.UsageError(
                f"{option} {text}: unknown task {task!r}{suggestion(task, TASKS)} (tasks: {', '.join(TASKS)})"
            )
        return task, whole_number(f"{option} {text}", number)

    return parse


def _batch_size_per_task(option: str):
    """``N``, ``auto``, ``TASK=N`` or ``TASK=auto``, as a (task, size) pair; "auto" is decided by
    harness.models.pool.ModelPool.batch_size."""

    def batch_size(text: str) -> tuple[str, int | str]:
        task, sep, value = text.rpartition("=")
        if not sep:
            task = "*"
        elif task not in TASKS:
            raise pytest.UsageError(
                f"{option} {text}: unknown task {task!r}{suggestion(task, TASKS)} (tasks: {', '.join(TASKS)})"
            )
        if value == AUTO:
            return task, AUTO
        if not value.isdigit() or int(value) < 1:
            raise pytest.UsageError(f"{option} {text}: expected a number >= 1 or {AUTO}, got {value!r}")
        return task, int(value)

    return batch_size


def _load_mode(text: str) -> str:
    modes = (*LOAD_MODES, AUTO)
    if text not in modes:
        hint = suggestion(text, modes)
        raise pytest.UsageError(f"--load {text}: not one of {', '.join(modes)}{hint}")
    return text


def _run_id(text: str) -> str:
    problem = run_id_problem(text)
    if problem:
        raise pytest.UsageError(problem)
    return text


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness", "fine-tuning trade-off harness (benchmarks/)")
    group.addoption(
        "--experiment",
        default="experiments/default.toml",
        help="experiment config (TOML); default: experiments/default.toml",
    )
    group.addoption("--variant", action="append", default=[], help="run only this variant (repeatable)")
    group.addoption(
        "--model",
        default=None,
        help="model of every variant without an adapter (those with one stay on the base it was "
        "trained on, and are named): HF id, local folder or .gguf file",
    )
    group.addoption(
        "--load",
        default=None,
        type=_load_mode,
        help=f"load mode of every variant: {', '.join(LOAD_MODES)}, or auto (bf16 on a CUDA GPU that has it)",
    )
    group.addoption(
        "--batch-size",
        action="append",
        default=[],
        type=_batch_size_per_task("--batch-size"),
        metavar="[TASK=]N|auto",
        help="prompts per batch of every task, or of one task with TASK=N (repeatable); "
        "auto: 8 on a CPU, the largest batch that fits on a CUDA GPU; overrides the experiment's batch_size",
    )
    group.addoption(
        "--limit",
        action="append",
        default=[],
        type=_per_task("--limit"),
        metavar="[TASK=]N",
        help="run N items of every task (a seeded sample, spread over subjects where the task has "
        "them), or of one task with TASK=N (repeatable: --limit 20 --limit TASK=100); 0: all",
    )
    group.addoption(
        "--shots",
        action="append",
        default=[],
        type=_per_task("--shots"),
        metavar="[TASK=]N",
        help="few-shot examples in every prompt of every variant, or of one task with TASK=N "
        "(like lm-eval's --num_fewshot)",
    )
    add_task_options(group)
    group.addoption("--cache-dir", default=None, help="prediction cache folder (default: from the config)")
    group.addoption(
        "--report-dir", default=None, help="where reports/<run-id>/ go (default: from the config)"
    )
    group.addoption(
        "--run-id",
        default=None,
        type=_run_id,
        help="name of this run's report folder (default: a "
        "timestamp); a folder that already holds a run is refused",
    )
    group.addoption(
        "--gates", default=None, help="gates TOML file (default: from the config; 'none' disables)"
    )
    group.addoption(
        "--log-samples",
        default="auto",
        choices=("auto", "on", "off"),
        help="write samples/<task>-<variant>.jsonl in the run folder: each item's prompt, raw output, "
        "extracted answer, gold answer, verdict and reason (like lm-eval's --log_samples); "
        "auto: on for runs of at most 10,000 cases",
    )


# -- the experiment and the run --------------------------------------------------------------


def overrides_of(config: pytest.Config) -> Overrides:
    get = config.getoption
    settings = task_settings_of(config.option)
    return Overrides(
        variants=tuple(get("variant") or ()),
        model=get("model"),
        load=get("load"),
        limits=dict(get("limit") or ()),
        shots=dict(get("shots") or ()),
        batch_sizes=dict(get("batch_size") or ()),
        settings=settings,  # data_dir included: --data-dir TASK=PATH is --set TASK.data_dir=PATH
    )


def checked_experiment(path: str, overrides: Overrides) -> ExperimentConfig:
    """The experiment at ``path`` with its overrides, its data and its adapters checked (before
    any model work), or ConfigError: the one check behind a pytest session and harness bench."""
    try:
        exp = load_experiment(path, overrides)
    except ConfigError as e:
        raise ConfigError(str(e) + settings_note(str(e), overrides.settings)) from None
    check_data(exp)
    check_adapters(exp)
    return exp


def experiment_of(config: pytest.Config) -> ExperimentConfig:
    """The experiment, loaded on first use: unit-test sessions that collect no benchmark
    never read it; benchmark sessions read it while collecting, before any generation.
    A bad file or option is a usage error: one message, no traceback, exit status 4."""
    if EXPERIMENT_KEY not in config.stash:
        try:
            exp = checked_experiment(config.getoption("experiment"), overrides_of(config))
        except ConfigError as e:
            raise pytest.UsageError(str(e)) from None
        # Each variant is also a marker of its own name: `-m ft` selects the fine-tuned variant.
        for v in exp.variants:
            for marker in v.markers:
                config.addinivalue_line("markers", f"{marker}: cases of variant {v.name}")
        config.stash[EXPERIMENT_KEY] = exp
    return config.stash[EXPERIMENT_KEY]


def selected_variants(exp: ExperimentConfig, mark: str | None) -> list:
    """The variants a marker expression selects a case of (a variant is a marker, as is each task)."""
    if not mark:
        return list(exp.variants)
    try:
        from _pytest.mark.expression import Expression

        expression = Expression.compile(mark)
    except Exception:  # an expression pytest will refuse anyway, or another pytest: all of them
        return list(exp.variants)

    def selects(variant) -> bool:
        # The markers of the variant's cases: its name and, for a sweep's variant, the sweep's,
        # its run's and its checkpoint's, and the task's.
        def has_marker(task: str) -> Callable[..., bool]:
            return lambda name, /, **_: name in (*variant.markers, task)

        return any(expression.evaluate(has_marker(task)) for task in exp.tasks_of(variant))

    return [v for v in exp.variants if selects(v)]


def describe_markers(exp: ExperimentConfig) -> str:
    """The markers that select benchmark cases: the experiment's tasks and its variants."""
    variants = [m for v in exp.variants for m in v.markers]
    return (
        f"the markers are the tasks ({', '.join(exp.tasks)}) and the variants "
        f'({", ".join(dict.fromkeys(variants))}), e.g. -m "{exp.tasks[0]} and {exp.variants[0].markers[0]}"'
    )


def collects_benchmarks(config: pytest.Config) -> bool:
    """Whether this session collects benchmark files (a path under a ``benchmarks`` folder)."""
    for arg in config.args:
        path = Path(arg.split("::")[0]).resolve()
        if "benchmarks" in path.parts:
            return True
    return False


def has_experiment(config: pytest.Config) -> bool:
    return EXPERIMENT_KEY in config.stash


def run_id_of(config: pytest.Config) -> str:
    return config.stash[RUN_ID_KEY]


def run_dir_of(config: pytest.Config) -> Path:
    root = config.getoption("report_dir") or experiment_of(config).report_dir
    return Path(root) / run_id_of(config)


def cache_root_of(config: pytest.Config) -> Path:
    return Path(config.getoption("cache_dir") or experiment_of(config).cache_dir)


def gates_path_of(config: pytest.Config) -> str:
    """The gates file of this run: ``--gates``, else the experiment's; "" when disabled."""
    option = config.getoption("gates", None)
    path = option if option is not None else experiment_of(config).gates
    return "" if path.strip().lower() in GATES_DISABLED else path


def shard_of(config: pytest.Config) -> Shard | None:
    """This xdist worker's share of every prediction phase; None outside xdist."""
    worker = getattr(config, "workerinput", None)
    return Shard.of_worker(worker["workerid"], worker["workercount"]) if worker is not None else None


def is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


# -- hooks: wiring only ----------------------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    worker = getattr(config, "workerinput", None)
    if (
        worker is not None
    ):  # an xdist worker: its GPU, before anything starts CUDA (harness/engine/sharding.py)
        pin_worker(worker.get("harness_gpu"))
    config.stash[RUN_ID_KEY] = (
        (worker or {}).get("harness_run_id") or config.getoption("run_id") or new_run_id()
    )
    for name, task in TASKS.items():
        config.addinivalue_line("markers", f"{name}: {task.description}")


@pytest.hookimpl(tryfirst=True)
def pytest_collection(session: pytest.Session) -> None:
    """A benchmark session reads its experiment before collecting, so a bad file or option is
    one usage error (exit status 4), not a traceback per benchmark file."""
    if collects_benchmarks(session.config):
        config = session.config
        check_session(
            config, experiment_of(config), run_dir_of(config), cache_root_of(config), worker=is_worker(config)
        )


def pytest_report_collectionfinish(config: pytest.Config) -> str | None:
    """The variants a --model override left alone (on the base their adapter was trained on),
    after "collected N items", at every verbosity."""
    if has_experiment(config) and not is_worker(config):
        return model_note(experiment_of(config)) or None
    return None


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list) -> None:
    """After -m has deselected: an expression that leaves no benchmark case is a usage error
    naming the markers that exist (pytest alone would say "no tests ran")."""
    expression = config.getoption("markexpr", "")
    if items or not expression or not has_experiment(config) or is_worker(config):
        return
    if collects_benchmarks(config):
        raise pytest.UsageError(
            f"-m {expression!r} selects no benchmark case; {describe_markers(experiment_of(config))}"
        )


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:
    """xdist: every worker writes into the controller's run folder and gets its own GPU."""
    node.workerinput["harness_run_id"] = node.config.stash[RUN_ID_KEY]
    if GPUS_KEY not in node.config.stash:
        node.config.stash[GPUS_KEY] = visible_gpus(os.environ, _cuda_device_count)
    shard = Shard.of_worker(node.workerinput["workerid"], node.workerinput["workercount"])
    node.workerinput["harness_gpu"] = worker_gpu(shard, node.config.stash[GPUS_KEY])


def _cuda_device_count() -> int:
    import torch  # on the controller only, which never runs a model

    return torch.cuda.device_count()
