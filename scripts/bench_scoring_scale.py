"""How long `deepeval test run` takes to score thousands of cases whose predictions are cached.

Fills a fresh prediction cache for two variants with stand-in predictions (Spider: the
published DAIL-SQL and Graphix-T5 predictions for the whole dev split; MMLU: a letter picked from
each prompt, for the whole test split), so that the run measures collection, lookup, scoring and
reporting only, then times `deepeval test run benchmarks/ -m <benchmark>` over it.

    .venv/bin/python scripts/bench_scoring_scale.py spider   # 2 x 1034 Spider cases
    .venv/bin/python scripts/bench_scoring_scale.py mmlu     # 2 x 14,042 MMLU cases
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness.config.experiment import load_experiment
from harness.engine.core import Engine
from harness.engine.loglik import ChoiceScores
from harness.models.pool import ModelPool
from harness.tasks import TASKS
from harness.tasks.base import RunContext, shots_of
from harness.tasks.spider import generation_prompts
from harness.tasks.spider_data import find_spider_dir
from harness.tasks.sql_prompts import get_spider_template

EXPERIMENT = """
[experiment]
name = "scale"
baseline = "a"
gates = ""
[spider]
limit = 0
[mmlu]
selection = "full"
shots = 4
[[variants]]
name = "a"
model = "smollm2-135m-instruct"
[[variants]]
name = "b"
model = "smollm2-135m-instruct"
spider = { shots = 1 }
mmlu = { shots = 0 }
"""


class CannedBackend:
    """Answers without a model: Spider from published predictions, MMLU a letter from the prompt."""

    def __init__(self, sql_of_prompt: dict[str, str] | None = None):
        self.sql_of_prompt = sql_of_prompt or {}

    def generate(self, variant, prompts, settings, tick=None):
        return [self.sql_of_prompt[p] for p in prompts]

    def score_choices(self, variant, requests, choices, settings, tick=None):
        return [
            ChoiceScores(tuple(-float((i + hash(prefix + suffix)) % 4) for i in range(4)), (1,) * 4, 0, 0)
            for prefix, suffix in requests
        ]


def fill(task: str, exp, cache_root: Path) -> None:
    """Cache stand-in predictions for every variant, through the task's own predict()."""
    pool = ModelPool()
    spec, settings = TASKS[task], exp.settings(task)
    data = spec.load(settings, seed=exp.seed)
    backend = CannedBackend()
    if task == "spider":
        refs = find_spider_dir() / "reference_predictions"
        by_index = {
            "a": (refs / "dail_sql_gpt4.sql").read_text().splitlines(),
            "b": (refs / "graphix_t5.sql").read_text().splitlines(),
        }
    for v in exp.variants:
        if task == "spider":
            prompts = generation_prompts(
                data.items,
                data.context,
                get_spider_template(settings.template),
                shots_of(settings, v.options(task)),
                exp.seed,
                pool.tokenizer(v.model),
            )
            item_of = {i.item_id: i for i in data.items}
            backend.sql_of_prompt.update({p: by_index[v.name][item_of[i].index] for i, p in prompts.items()})
        spec.predict(
            RunContext(Engine(pool, cache_root, backend=backend), exp.seed),
            data,
            v,
            settings,
            v.options(task),
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("benchmark", choices=("spider", "mmlu"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "exp.toml").write_text(EXPERIMENT)
        exp = load_experiment(tmp / "exp.toml")
        start = time.perf_counter()
        fill(args.benchmark, exp, tmp / "cache")
        print(f"filled the cache in {time.perf_counter() - start:.1f} s", flush=True)
        deepeval = Path(sys.executable).with_name("deepeval")
        cmd = [
            str(deepeval),
            "test",
            "run",
            "benchmarks/",
            "-m",
            args.benchmark,
            "--experiment",
            str(tmp / "exp.toml"),
            "--cache-dir",
            str(tmp / "cache"),
            "--report-dir",
            str(tmp / "reports"),
            "--run-id",
            "scale",
            "-q",
            "--tb=no",
            "-p",
            "no:cacheprovider",
        ]
        start = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - start
        tail = [ln for ln in done.stdout.splitlines() if ln.strip()][-14:]
        print("\n".join(tail))
        print(
            f"`deepeval test run benchmarks/ -m {args.benchmark}` over 2 variants: "
            f"{wall:.1f} s wall, exit {done.returncode}"
        )


if __name__ == "__main__":
    main()
