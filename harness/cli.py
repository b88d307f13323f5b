"""The harness command: bench, train and score-spider.

It sits above the harness library and the training package: training runs as its own process
(python -m training), as it does under torchrun, so nothing here imports it.
"""

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

DESCRIPTION = """\
Measure what fine-tuning buys (Spider execution accuracy) and what it costs (MMLU accuracy).

commands:
  data           fetch the evaluation data (Spider, MMLU) and check a data folder
  bench          train the adapters the experiment needs and lacks, run the benchmarks, write the report
  train          train adapters from a training config (python -m training)
  score-spider   score a file of Spider dev predictions, one SQL query per line

examples:
  harness data fetch                               # Spider and MMLU into ./data ($HARNESS_DATA_DIR)
  harness data check                               # is the data there, complete, the known release?
  harness bench                                    # the default experiment (make bench)
  harness bench -m "spider and base" --limit 20    # 20 Spider items, the base variant only
  harness bench --experiment experiments/paper_full.toml -n 8    # the whole study on a GPU
  harness train --config training/configs/default.toml --max-steps 5
  harness score-spider reports/<run-id>/predictions/ft.spider.sql
"""

DATA_DESCRIPTION = """\
Get the evaluation data and check it. Sources (harness/data/sources.py): Spider 1.0's official
release (spider_data.zip, CC BY-SA 4.0, sha256 checked) and MMLU's original data.tar (MIT; its
171 CSV files checked one by one). Data folder: $HARNESS_DATA_DIR, default ./data.

The harness looks for a dataset in: --spider-dir / --mmlu-dir (or a config's data_dir),
$HARNESS_SPIDER_DIR / $HARNESS_MMLU_DIR, $HARNESS_DATA_DIR/<name>, ./data/<name>, ../shared/data/<name>.
"""

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

    env = dict(os.environ)
    for name, folder in (("spider", options.spider_dir), ("mmlu", options.mmlu_dir)):
        if folder:
            env[SOURCES[name].dir_env] = str(Path(folder).resolve())
    return env


def _remove_if_empty(run_dir: Path) -> None:
    """A run that failed before its first case leaves no report folder (only the command record)."""
    if run_dir.is_dir() and {p.name for p in run_dir.iterdir()} <= {COMMAND_RECORD}:
        shutil.rmtree(run_dir, ignore_errors=True)


def _cmd_bench(args: argparse.Namespace, extra: list[str]) -> int:
    """Check everything, train every adapter the selected variants need and lack, then run the
    benchmarks."""
    from harness.data.sources import DATA_DIR_ENV
    from harness.plugins.bench_preflight import PreflightError, preflight

    started = time.time()
    if args.data_dir:
        os.environ[DATA_DIR_ENV] = str(Path(args.data_dir).resolve())
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
    if is_locked(run_dir):
        print(f"harness: error: {run_dir}: another run is writing into this folder now", file=sys.stderr)
        return 2
    if holds_a_run(run_dir):
        print(f"harness: error: {run_dir} already holds a run; give another --run-id", file=sys.stderr)
        return 2
    training: list[dict] = []
    rc = _train_missing(exp, plan.variants, training, _training_env(options))
    if rc:
        return rc
    # The report tells the whole command's time and the training it ran (harness/plugins/results.py).
    write_json(run_dir / COMMAND_RECORD, {"started": started, "argv": sys.argv, "training": training})
    cmd = ["test", "run", "benchmarks/", "--experiment", args.experiment]
    for name in args.variant:
        cmd += ["--variant", name]
    if args.mark:
        cmd += ["-m", args.mark]
    if _option(extra, "--color") is None:
        # deepeval passes pytest --color=yes by default: escape codes in a log file or CI output.
        cmd += ["--color", "auto"]
    cmd += extra
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
    try:
        return subprocess.call(deepeval + cmd, env=apply_deepeval_env(dict(os.environ)))
    finally:
        _remove_if_empty(run_dir)


def _cmd_score_spider(args: argparse.Namespace, extra: list[str]) -> int:
    from harness.tasks.score_spider import run

    return run(args)


def _print_findings(findings) -> None:
    for finding in findings:
        print(f"harness data: {finding.line()}", file=sys.stderr)


def _cmd_data_fetch(args: argparse.Namespace, extra: list[str]) -> int:
    from harness.data.fetch import FetchError, fetch
    from harness.data.sources import SOURCES, data_root

    root = data_root(args.data_dir)
    rc = 0
    for name in args.only or list(SOURCES):
        try:
            folder, findings = fetch(
                name,
                root,
                url=getattr(args, f"{name}_url"),
                sha256=getattr(args, f"{name}_sha256"),
                force=args.force,
            )
        except FetchError as e:
            print(f"harness data: error: {e}", file=sys.stderr)
            _print_findings(e.findings)
            rc = 1
            continue
        _print_findings(findings)
        print(f"harness data: {name} -> {folder}")
    if rc == 0:
        again = f"harness data check {root}" if args.data_dir else "harness data check"
        print(f"harness data: done; `{again}` checks it again")
    return rc


def _datasets_in(folder: Path) -> dict[str, Path]:
    """The datasets a folder given to `harness data check` holds: itself, or its subfolders."""
    from harness.data.sources import SOURCES

    for name, source in SOURCES.items():
        if (folder / source.marker).exists():
            return {name: folder}
    return {name: folder / name for name in SOURCES}


def _cmd_data_check(args: argparse.Namespace, extra: list[str]) -> int:
    from harness.data.check import Finding, check, is_known_release, summary_line
    from harness.data.sources import DataNotFound, locate

    if args.folder:
        folders = _datasets_in(Path(args.folder))
    else:
        folders = {}
        for name, explicit in (("spider", args.spider_dir), ("mmlu", args.mmlu_dir)):
            try:
                folders[name] = locate(name, explicit, option=f"--{name}-dir")
            except DataNotFound as e:
                _print_findings([Finding("error", name, str(e))])
                folders[name] = None
    errors = 0
    for name, folder in folders.items():
        if folder is None:
            errors += 1
            continue
        release = False if args.layout_only else is_known_release(folder)
        findings = check(name, folder, release=release)
        _print_findings(findings)
        errors += sum(f.level == "error" for f in findings)
        print(f"harness data: {summary_line(name, folder, findings, release)}")
    return 1 if errors else 0


def _cmd_train(args: argparse.Namespace, extra: list[str]) -> int:
    return subprocess.call([sys.executable, "-m", "training", *extra])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="harness", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{data,bench,train,score-spider}")

    data = sub.add_parser(
        "data",
        help="fetch the evaluation data and check a data folder",
        description=DATA_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    data_sub = data.add_subparsers(dest="data_command", required=True, metavar="{fetch,check}")
    fetch = data_sub.add_parser(
        "fetch",
        help="download Spider and MMLU, verify, unpack, check, put in place",
        description="Download each dataset's official archive (or the URL given), verify its sha256, "
        "unpack and check it in a scratch folder, then move it to <data dir>/<name>: a failure "
        "leaves the data folder as it was.",
    )
    fetch.add_argument(
        "--data-dir", default=None, help="where to put them (default: $HARNESS_DATA_DIR, else ./data)"
    )
    fetch.add_argument(
        "--only", action="append", choices=("spider", "mmlu"), help="only this dataset (repeatable)"
    )
    fetch.add_argument(
        "--force", action="store_true", help="fetch again a dataset already there (replaced atomically)"
    )
    for name in ("spider", "mmlu"):
        fetch.add_argument(
            f"--{name}-url",
            default=None,
            help=f"a mirror of the {name} archive (also $HARNESS_{name.upper()}_URL)",
        )
        fetch.add_argument(
            f"--{name}-sha256",
            default=None,
            help=f"the sha256 the {name} archive must have "
            f"(also $HARNESS_{name.upper()}_SHA256; 'none': no check)",
        )
    fetch.set_defaults(func=_cmd_data_fetch)
    check = data_sub.add_parser(
        "check",
        help="check a data folder: layout, counts, checksums, missing databases",
        description="Check the data the harness would use (or FOLDER: a data folder holding spider/ and "
        "mmlu/, or one dataset's folder). One line per problem; exit status 1 if any, 0 when only "
        "warnings (Spider's wta_1 database, known to be missing from some copies).",
    )
    check.add_argument(
        "folder", nargs="?", default=None, help="a data folder (default: where the harness looks)"
    )
    check.add_argument("--spider-dir", default=None, help="the Spider folder to check")
    check.add_argument("--mmlu-dir", default=None, help="the MMLU folder to check")
    check.add_argument(
        "--layout-only",
        action="store_true",
        help="check that the files are there and readable, not that they are the official release",
    )
    check.set_defaults(func=_cmd_data_check)

    bench = sub.add_parser(
        "bench",
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
        default=None,
        help="the data folder (holding spider/ and mmlu/) for every step; sets $HARNESS_DATA_DIR",
    )
    bench.add_argument(
        "-m",
        "--mark",
        default=None,
        help="pytest marker expression: a task (spider, mmlu) and/or a variant, e.g. 'mmlu and base'",
    )
    bench.set_defaults(func=_cmd_bench)

    train = sub.add_parser(
        "train", help="train adapters from a training config (python -m training)", add_help=False
    )
    train.set_defaults(func=_cmd_train)

    score = sub.add_parser(
        "score-spider",
        help="score an official-format predictions file on Spider dev",
        description="Score a file of Spider dev predictions (one SQL query per line, in "
        "dev.json order), item by item, with the harness's execution match.",
    )
    score.add_argument(
        "predictions",
        help="one SQL query per line, aligned with dev.json, or a run's predictions/<variant>.spider.sql "
        "(its items are read from the <variant>.spider.ids.json beside it)",
    )
    score.add_argument(
        "--spider-dir",
        default=None,
        help="Spider folder (default: $HARNESS_SPIDER_DIR or ../shared/data/spider)",
    )
    score.add_argument(
        "--ids",
        default=None,
        help="which items the lines answer: a run's .ids.json, or one dev index per line "
        "(default: the .ids.json beside the predictions, else all of dev)",
    )
    score.add_argument(
        "--out",
        default=None,
        help="TSV file to write: index, db_id, hardness, correct, reason "
        "(default: <predictions name>.scores.tsv beside the predictions)",
    )
    score.add_argument("--timeout", type=float, default=5.0, help="seconds per query (default 5)")
    score.add_argument(
        "--official",
        action="store_true",
        help="reproduce the official test-suite evaluator's comparison exactly (its rewrites of "
        "'value', YEAR(CURDATE()), '> =', DISTINCT and the first statement; DISTINCT stripped unless "
        "--distinct keep, its --keep_distinct), for published numbers",
    )
    score.add_argument(
        "--distinct",
        choices=("keep", "strip"),
        default=None,
        help="keep DISTINCT in both queries (the default, as the benchmarks do: a query that forgets "
        "DISTINCT answers another question), or strip it from both, as the official evaluator does",
    )
    score.add_argument(
        "--show-rows",
        action="store_true",
        help="quote the differing rows in the reasons (default: counts only, since the TSV may be "
        "shared and the rows are the database's data)",
    )
    score.set_defaults(func=_cmd_score_spider)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command == "score-spider":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return args.func(args, extra)
    except (ValueError, RuntimeError, OSError) as e:  # config, data and model errors carry their own message
        print(f"harness: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
