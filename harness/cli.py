"""The ``harness`` command: ``bench`` (train what is missing, run the benchmarks, report),
``train`` (one training config) and ``score-spider`` (score an external predictions file)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

# deepeval reads these when first imported; see conftest.py for why.
_DEEPEVAL_ENV = {
    "DEEPEVAL_FILE_SYSTEM": "READ_ONLY",
    "DEEPEVAL_TELEMETRY_OPT_OUT": "1",
    "DEEPEVAL_DISABLE_DOTENV": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


def _cmd_bench(args: argparse.Namespace, extra: list[str]) -> int:
    """Train every adapter the experiment needs and lacks, then run the benchmarks."""
    from harness.config import load_experiment
    from harness.models import check_adapter_usable

    exp = load_experiment(args.experiment, variants=args.variant or None)
    trained: set[str] = set()
    for v in exp.variants:
        if not v.adapter or (Path(v.adapter) / "adapter_config.json").is_file() or v.adapter in trained:
            continue
        print(f"harness: adapter {v.adapter!r} of variant {v.name!r} is absent; training it with {v.train_config}", flush=True)
        rc = subprocess.call([sys.executable, "-m", "training", "--config", v.train_config, "--output", v.adapter])
        if rc != 0:
            print(f"harness: training {v.train_config} failed (exit {rc}); not benchmarking a broken adapter", file=sys.stderr)
            return rc
        trained.add(v.adapter)
    for v in exp.variants:
        if v.adapter:
            check_adapter_usable(v.adapter)
    cmd = ["test", "run", "benchmarks/", "--experiment", args.experiment]
    for name in args.variant:
        cmd += ["--variant", name]
    if args.mark:
        cmd += ["-m", args.mark]
    cmd += extra
    print("harness: deepeval " + " ".join(cmd), flush=True)
    # deepeval's own CLI, run by this interpreter: no console script needs to be on PATH (a
    # `pip install --target` or a bare GPU image has none) and no other Python is picked up.
    deepeval = [sys.executable, "-c", "from deepeval.cli.main import app; app()"]
    return subprocess.call(deepeval + cmd, env={**os.environ, **_DEEPEVAL_ENV})


def _cmd_score_spider(args: argparse.Namespace, extra: list[str]) -> int:
    from harness.data.spider import find_spider_dir
    from harness.score_spider import format_summary, score_spider_file

    summary = score_spider_file(
        Path(args.predictions), find_spider_dir(args.spider_dir), Path(args.out),
        timeout_s=args.timeout, keep_distinct=args.distinct == "keep",
    )
    print(format_summary(summary))
    return 0


def _cmd_train(args: argparse.Namespace, extra: list[str]) -> int:
    import training

    return training.main(["--config", args.config, *extra])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="harness", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    bench = sub.add_parser("bench", help="train missing adapters, run every benchmark, write the report")
    bench.add_argument("--experiment", default="experiments/default.toml")
    bench.add_argument("--variant", action="append", default=[], help="only this variant (repeatable)")
    bench.add_argument("-m", "--mark", default=None, help="pytest marker expression, e.g. spider or 'mmlu and base'")
    bench.set_defaults(func=_cmd_bench)

    score = sub.add_parser("score-spider", help="score an official-format predictions file on Spider dev")
    score.add_argument("predictions", help="one SQL per line, aligned with dev.json")
    score.add_argument("--spider-dir", default=None)
    score.add_argument("--out", required=True, help="TSV with index, db_id, correct, reason")
    score.add_argument("--timeout", type=float, default=5.0, help="seconds per query")
    # "strip" reproduces the official test-suite evaluator (its default removes DISTINCT from
    # both queries), so published numbers come out the same; the benchmarks keep DISTINCT,
    # which judges the answer to the question (see tests/test_reference_agreement.py).
    score.add_argument("--distinct", choices=("strip", "keep"), default="strip",
                       help="strip DISTINCT as the official evaluator does (default), or keep it as the benchmarks do")
    score.set_defaults(func=_cmd_score_spider)

    train = sub.add_parser("train", help="train adapters from a training config (see training/)")
    train.add_argument("--config", required=True)
    train.set_defaults(func=_cmd_train)
    return parser


def main(argv: list[str] | None = None) -> int:
    args, extra = build_parser().parse_known_args(argv)
    if extra and args.command == "score-spider":
        build_parser().error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return args.func(args, extra)
    except (ValueError, RuntimeError) as e:  # config, data and model errors carry their own message
        print(f"harness: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
