"""The benchmarks end to end on a tiny model and tiny data: collection, generation, caching,
scoring, skips, results and exit status, under pytest and under `deepeval test run`."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tiny_data import write_tiny_experiment

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_model_dir):
    tmp = tmp_path_factory.mktemp("e2e")
    exp = write_tiny_experiment(tmp, tiny_model_dir, spider_batch_size=2, per_subject=2)
    return tmp, exp


def run(cmd, tmp, run_id):
    args = [*cmd, "benchmarks/", "--experiment", str(tmp / "exp.toml"), "--cache-dir", str(tmp / "cache"),
            "--report-dir", str(tmp / "reports"), "--run-id", run_id, "-p", "no:cacheprovider"]
    env = {**os.environ, "HARNESS_CACHE_DIR": str(tmp / "hcache")}
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)


def results(tmp, run_id):
    return json.loads((tmp / "reports" / run_id / "results.json").read_text())


def test_pytest_run_scores_every_case(setup):
    tmp, _ = setup
    done = run([sys.executable, "-m", "pytest"], tmp, "first")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    res = results(tmp, "first")
    cases = res["cases"]
    spider = [c for c in cases if c["benchmark"] == "spider"]
    mmlu = [c for c in cases if c["benchmark"] == "mmlu"]
    assert len(spider) == 2 * 4 and len(mmlu) == 2 * 4
    skipped = [c for c in spider if c["outcome"] == "skipped"]
    assert len(skipped) == 2 and all("absent_db" in c["reason"] for c in skipped)
    assert all(c["outcome"] in ("passed", "failed") for c in spider + mmlu if c not in skipped)
    assert all(c["reason"] for c in spider + mmlu if c["outcome"] == "failed")
    run_dir = tmp / "reports" / "first"
    assert (run_dir / "predictions" / "base.spider.jsonl").is_file()
    sql_lines = (run_dir / "predictions" / "base-1shot.spider.sql").read_text().splitlines()
    assert len(sql_lines) == 4
    phases = {p.name: json.loads(p.read_text()) for p in (run_dir / "phases").glob("*.json")}
    assert phases["spider-base.json"]["computed"] == 3 and phases["mmlu-base.json"]["computed"] == 4


def test_rerun_reads_the_cache_and_deepeval_gives_the_same_accuracy(setup):
    tmp, _ = setup
    deepeval = Path(sys.executable).with_name("deepeval")
    done = run([str(deepeval), "test", "run"], tmp, "second")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    phases = [json.loads(p.read_text()) for p in (tmp / "reports" / "second" / "phases").glob("*.json")]
    assert phases and all(p["computed"] == 0 for p in phases)
    first = {(c["variant"], c["benchmark"], c["item_id"]): c["outcome"] for c in results(tmp, "first")["cases"]}
    second = {(c["variant"], c["benchmark"], c["item_id"]): c["outcome"] for c in results(tmp, "second")["cases"]}
    assert first == second


def test_unknown_variant_fails_before_any_generation(setup):
    tmp, _ = setup
    done = run([sys.executable, "-m", "pytest", "--variant", "bse"], tmp, "third")
    assert done.returncode != 0
    assert "unknown variant 'bse'; did you mean 'base'" in done.stdout + done.stderr
    assert not (tmp / "reports" / "third" / "phases").exists()
