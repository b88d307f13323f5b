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

from harness.config import load_experiment
from harness.data.spider import find_spider_dir
from harness.generation import PredictionCache, cached_compute

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
spider_shots = 1
mmlu_shots = 0
"""


def fill_spider(exp, cache_root: Path) -> None:
    from fixtures.spider import load_spider_data
    from harness.generation import GenerationSettings
    from harness.model_pool import ModelPool
    from harness.predict import spider_prompts

    pool, data = ModelPool(), load_spider_data(exp)
    refs = find_spider_dir() / "reference_predictions"
    by_index = {"a": (refs / "dail_sql_gpt4.sql").read_text().splitlines(),
                "b": (refs / "graphix_t5.sql").read_text().splitlines()}
    settings = GenerationSettings(max_new_tokens=exp.spider.max_new_tokens, batch_size=exp.spider.batch_size)
    for v in exp.variants:
        prompts = spider_prompts(exp, v, data, pool.tokenizer(v.model))
        sql = {i.item_id: by_index[v.name][i.index] for i in data.items}
        by_prompt = {p: sql[i] for i, p in prompts.items()}
        cache = PredictionCache(cache_root, "spider", {**pool.fingerprint(v), "generation": settings.as_fingerprint()})
        cached_compute(cache, list(by_prompt), lambda batch: [{"raw": by_prompt[p]} for p in batch], batch_size=4096)


def fill_mmlu(exp, cache_root: Path) -> None:
    from fixtures.mmlu import load_mmlu_data
    from harness.model_pool import ModelPool
    from harness import predict

    pool, data = ModelPool(), load_mmlu_data(exp)

    # Stand in for the model: a letter picked from the prompt text (no forward pass).
    def fake(batch):
        return [{"letter": "ABCD"[hash(p) % 4], "logprobs": [0.0, -1.0, -2.0, -3.0]} for p in batch]

    original = predict.cached_compute
    predict.cached_compute = lambda cache, prompts, compute, **kw: original(cache, prompts, fake, **kw)
    try:
        for v in exp.variants:
            predict.predict_mmlu(exp, v, data, pool, cache_root)
    finally:
        predict.cached_compute = original


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("benchmark", choices=("spider", "mmlu"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "exp.toml").write_text(EXPERIMENT)
        exp = load_experiment(tmp / "exp.toml")
        start = time.perf_counter()
        (fill_spider if args.benchmark == "spider" else fill_mmlu)(exp, tmp / "cache")
        print(f"filled the cache in {time.perf_counter() - start:.1f} s", flush=True)
        deepeval = Path(sys.executable).with_name("deepeval")
        cmd = [str(deepeval), "test", "run", "benchmarks/", "-m", args.benchmark, "--experiment", str(tmp / "exp.toml"),
               "--cache-dir", str(tmp / "cache"), "--report-dir", str(tmp / "reports"), "--run-id", "scale", "-q", "--tb=no",
               "-p", "no:cacheprovider"]
        start = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - start
        tail = [ln for ln in done.stdout.splitlines() if ln.strip()][-14:]
        print("\n".join(tail))
        print(f"`deepeval test run benchmarks/ -m {args.benchmark}` over 2 variants: {wall:.1f} s wall, exit {done.returncode}")


if __name__ == "__main__":
    main()
