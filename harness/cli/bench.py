"""``harness bench``: check everything, train the adapters the selected variants need and lack,
then run the benchmarks (``deepeval test run benchmarks/``) and write the report."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from harness.deepeval_env import apply_deepeval_env
from harness.files import write_json
from harness.records.run_folder import COMMAND_RECORD, check_run_id, holds_a_run, is_locked, new_run_id

NAME = "bench"

BENCH_EPILOG = """\
Every other argument goes to pytest (through deepeval test run), for example:
  -n 8                  pytest-xdist workers (on a GPU: they share it; on several GPUs, one each)
  --limit 20            20 items of every task (--limit mmlu=100 for one task)
  --shots spider=3      few-shot examples for every variant on a task
  --load bf16           load mode of every variant (fp32, bf16, int8, nf4)
  --model org/name      the model of every variant without an adapter (HF id, folder or .gguf);
                        the variants with one stay on the base it was trained on, and are named
  --batch-size 32       prompts per batch of every task (--batch-size mmlu=64 for one task)
  --run-id NAME         the report folder's name under reports/
  --gates none          check no gates
  --data-dir spider=D   the folder of one task's data (--spider-dir D, --mmlu-dir D: the same)
  --set mmlu.selection=full   any key of a task's experiment table, for this run
See `pytest benchmarks/ --help` (section "fine-tuning trade-off harness") for all of them.
"""


def _train(config: str, *extra: str, env: dict | None = None) -> tuple[int, float]:
    start = time.perf_counter()
    rc = subprocess.call([sys.executable, "-m", "training", "--config", config, *extra], env=env)
    return rc, time.perf_counter() - start


def _train_missing(exp, variants, record: list, env: dict | None = None) -> int:
    """Train what ``variants`` need and lack; 0 when all is there (or trained). A sweep's
    training config runs once with --missing-only: its points that diverge are reported and not
    benchmarked, the others are; a plain variant's failed training stops the command."""
    from harness.models.loading import check_adapter_base, check_adapter_usable, is_local_adapter

    done: set[str] = set()
    for v in variants:
        if not v.adapter or not v.train_config:
            continue
        if v.origin is not None:
            if v.train_config in done:
                continue
            print(
                f"harness: training what is missing of {v.train_config} (sweep {v.origin.sweep!r})",
                flush=True,
            )
            rc, seconds = _train(v.train_config, "--missing-only", env=env)
            record.append({"config": v.train_config, "seconds": round(seconds, 1), "exit": rc})
            done.add(v.train_config)
            if rc not in (0, 1):  # 1: a point failed or diverged; the report lists it
                return rc
            continue
        if (Path(v.adapter) / "adapter_config.json").is_file() or v.adapter in done:
            continue
        print(
            f"harness: adapter {v.adapter!r} of variant {v.name!r} is absent; "
            f"training it with {v.train_config}",
            flush=True,
        )
        rc, seconds = _train(v.train_config, "--output", v.adapter, env=env)
        record.append({"config": v.train_config, "seconds": round(seconds, 1), "exit": rc})
        if rc != 0:
            print(
                f"harness: training {v.train_config} failed (exit {rc}); not benchmarking a broken adapter",
                file=sys.stderr,
            )
            return rc
        done.add(v.adapter)
    for v in variants:
        if v.adapter and v.origin is None and is_local_adapter(v.adapter, v.adapter_revision or None):
            check_adapter_usable(v.adapter)
            check_adapter_base(v.name, v.model, v.adapter, v.adapter)
    return 0


def _option(extra: list[str], name: str) -> str | None:
    """The value of pytest option ``name`` among the arguments passed through, if given."""
    for i, arg in enumerate(extra):
        if arg == name and i + 1 < len(extra):
            return extra[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def _training_env(options) -> dict:
    """The environment of the training runs: the data folders the benchmarks were given, so
    training reads the same Spider (by variable: a training config's own ``data.spider_dir``, when
    it names one, still wins, and its fingerprint does not change with where the data lies)."""
    from harness.data.sources import SOURCES
    from harness.plugins.task_options import data_dirs_of, task_settings_of

    env = dict(os.environ)
    for task, folder in data_dirs_of(task_settings_of(options)).items():
        if task in SOURCES:
            env[SOURCES[task].dir_env] = str(Path(folder).resolve())
    return env


def _remove_if_empty(run_dir: Path) -> None:
    """A run that failed before its first case leaves no report folder (only the command record)."""
    if run_dir.is_dir() and {p.name for p in run_dir.iterdir()} <= {COMMAND_RECORD}:
        shutil.rmtree(run_dir, ignore_errors=True)


def _data_dirs(args: argparse.Namespace) -> list[str]:
    """``--data-dir`` given to ``harness bench``: a folder holding every dataset sets
    ``$HARNESS_DATA_DIR`` for every step; ``TASK=PATH`` goes on to pytest (one task's folder).
    Returns the pytest arguments."""
    from harness.data.sources import DATA_DIR_ENV
    from harness.plugins.task_options import looks_like_task_path

    passed: list[str] = []
    for value in args.data_dir:
        if looks_like_task_path(value):
            passed += ["--data-dir", value]
        else:
            os.environ[DATA_DIR_ENV] = str(Path(value).resolve())
    return passed


def _deepeval_command(args: argparse.Namespace, extra: list[str]) -> list[str]:
    """``deepeval test run benchmarks/`` with the options of this command."""
    cmd = ["test", "run", "benchmarks/", "--experiment", args.experiment]
    for name in args.variant:
        cmd += ["--variant", name]
    if args.mark:
        cmd += ["-m", args.mark]
    if _option(extra, "--color") is None:
        # deepeval passes pytest --color=yes by default: escape codes in a log file or CI output.
        cmd += ["--color", "auto"]
    return cmd + extra


def _run_deepeval(cmd: list[str]) -> int:
    print("harness: deepeval " + " ".join(cmd), flush=True)
    # deepeval's own CLI, run by this interpreter: no console script needs to be on PATH (a
    # `pip install --target` or a bare GPU image has none) and no other Python is picked up; its
    # one line printed on import goes with the rest of deepeval's environment.
    deepeval = [
        sys.executable,
        "-c",
        "from harness.deepeval_env import import_deepeval; import_deepeval(); "
        "from deepeval.cli.main import app; app()",
    ]
    return subprocess.call(deepeval + cmd, env=apply_deepeval_env(dict(os.environ)))


def _run_folder_problem(run_dir: Path) -> str:
    if is_locked(run_dir):
        return f"{run_dir}: another run is writing into this folder now"
    if holds_a_run(run_dir):
        return f"{run_dir} already holds a run; give another --run-id"
    return ""


def run(args: argparse.Namespace, extra: list[str]) -> int:
    """Check everything, train every adapter the selected variants need and lack, then run the
    benchmarks."""
    from harness.plugins.bench_preflight import PreflightError, preflight

    started = time.time()
    extra = [*_data_dirs(args), *extra]
    try:
        plan = preflight(extra, experiment=args.experiment, variants=args.variant, mark=args.mark)
    except PreflightError as e:
        for line in str(e).splitlines():
            print(f"harness: error: {line}", file=sys.stderr)
        return 4  # pytest's status for a usage error
    exp, options = plan.experiment, plan.options
    run_id = options.run_id
    if run_id is None:
        run_id = new_run_id()
        extra = [*extra, "--run-id", run_id]
    run_dir = Path(options.report_dir or exp.report_dir) / check_run_id(run_id)
    problem = _run_folder_problem(run_dir)
    if problem:
        print(f"harness: error: {problem}", file=sys.stderr)
        return 2
    training: list[dict] = []
    rc = _train_missing(exp, plan.variants, training, _training_env(options))
    if rc:
        return rc
    # The report tells the whole command's time and the training it ran (harness/plugins/collector.py).
    write_json(run_dir / COMMAND_RECORD, {"started": started, "argv": sys.argv, "training": training})
    try:
        return _run_deepeval(_deepeval_command(args, extra))
    finally:
        _remove_if_empty(run_dir)


def add_parser(sub) -> None:
    bench = sub.add_parser(
        NAME,
        help="train missing adapters, run every benchmark, write the report",
        description="Train the adapters the selected variants need and lack, then run "
        "`deepeval test run benchmarks/` and write reports/<run-id>/.",
        epilog=BENCH_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bench.add_argument(
        "--experiment",
        default="experiments/default.toml",
        help="experiment config (default: experiments/default.toml)",
    )
    bench.add_argument("--variant", action="append", default=[], help="only this variant (repeatable)")
    bench.add_argument(
        "--data-dir",
        action="append",
        default=[],
        metavar="DIR|TASK=PATH",
        help="the data folder (holding spider/ and mmlu/) for every step, which sets $HARNESS_DATA_DIR; "
        "or TASK=PATH, one task's folder (repeatable)",
    )
    bench.add_argument(
        "-m",
        "--mark",
        default=None,
        help="pytest marker expression: a task (spider, mmlu) and/or a variant, e.g. 'mmlu and base'",
    )
    bench.set_defaults(func=run, passes_arguments_on=True)
