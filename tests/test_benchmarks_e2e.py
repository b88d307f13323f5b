"""The benchmarks end to end on a tiny model and tiny data: collection, generation, caching,
scoring, skips, results and exit status, under pytest and under `deepeval test run`."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tiny_data import harness_options, write_tiny_experiment

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_model_dir):
    tmp = tmp_path_factory.mktemp("e2e")
    exp = write_tiny_experiment(tmp, tiny_model_dir, spider_batch_size=2, per_subject=2)
    return tmp, exp


def run(cmd, tmp, run_id):
    args = [*cmd, "benchmarks/", *harness_options(tmp, tmp / "exp.toml", run_id)]
    env = {**os.environ, "HARNESS_CACHE_DIR": str(tmp / "hcache")}
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)


def results(tmp, run_id):
    return json.loads((tmp / "reports" / run_id / "results.json").read_text())


def assert_the_harness_speaks_last(done, run_id):
    """Whatever the entry point: the last lines are the harness's summary, and none of
    deepeval's end of run (its table, pooled pass rate, advert), warnings or colour codes."""
    out = done.stdout + done.stderr
    for noise in ("Pass Rate", "\u2502", "deepeval view", "Confident AI", "read only", "warnings", "\x1b["):
        assert noise not in out, f"{noise!r} in the output:\n{out[-3000:]}"
    assert "was skipped. Reason" not in out and "Running teardown" not in out
    lines = done.stdout.rstrip().splitlines()
    start = max(i for i, line in enumerate(lines) if "harness: accuracy per variant and task" in line)
    tail = lines[start:]
    assert tail[-1].startswith("harness: the run passes"), tail
    assert tail[-2].startswith("harness: report in ") and run_id in tail[-2]
    skip_line = "harness: skipped 2 spider case(s): database 'absent_db' absent"
    assert any(line.startswith(skip_line) for line in tail)
    assert all(not line.startswith(("benchmarks/", "=")) or "harness" in line for line in tail), tail
    # a wrong answer has its own letter, and no progress bar shares a line with the letters
    letters = [line for line in lines if set(line.split(" ")[-1]) <= set("w.s") and "w" in line]
    assert letters and all("|" not in line for line in letters), lines[:30]


def test_pytest_run_scores_every_case(setup):
    tmp, _ = setup
    done = run([sys.executable, "-m", "pytest"], tmp, "first")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert_the_harness_speaks_last(done, "first")
    res = results(tmp, "first")
    cases = res["cases"]
    spider = [c for c in cases if c["task"] == "spider"]
    mmlu = [c for c in cases if c["task"] == "mmlu"]
    assert len(spider) == 2 * 4 and len(mmlu) == 2 * 4
    skipped = [c for c in spider if c["outcome"] == "skipped"]
    assert len(skipped) == 2 and all("absent_db" in c["reason"] for c in skipped)
    assert all(c["outcome"] in ("passed", "wrong") for c in spider + mmlu if c not in skipped)
    assert all(c["reason"] for c in spider + mmlu if c["outcome"] == "wrong")
    run_dir = tmp / "reports" / "first"
    assert (run_dir / "predictions" / "base.spider.jsonl").is_file()
    sql_lines = (run_dir / "predictions" / "base-1shot.spider.sql").read_text().splitlines()
    assert len(sql_lines) == 4
    phases = {p.name: json.loads(p.read_text()) for p in (run_dir / "phases").glob("*.json")}
    assert phases["spider-base.json"]["computed"] == 3 and phases["mmlu-base.json"]["computed"] == 4
    # what the model saw and said, per item (lm-eval's --log_samples)
    samples = [
        json.loads(line) for line in (run_dir / "samples" / "spider-base.jsonl").read_text().splitlines()
    ]
    assert len(samples) == 3 and all(
        s["prompt"] and s["gold"] and s["outcome"] in ("passed", "wrong") for s in samples
    )
    assert {c["item_id"] for c in spider if c["variant"] == "base" and c["outcome"] != "skipped"} == {
        s["item_id"] for s in samples
    }


def test_rerun_reads_the_cache_and_deepeval_gives_the_same_accuracy(setup):
    tmp, _ = setup
    deepeval = Path(sys.executable).with_name("deepeval")
    done = run([str(deepeval), "test", "run"], tmp, "second")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert_the_harness_speaks_last(done, "second")
    assert "slowest 10 durations" not in done.stdout
    phases = [json.loads(p.read_text()) for p in (tmp / "reports" / "second" / "phases").glob("*.json")]
    assert phases and all(p["computed"] == 0 for p in phases)
    first = {(c["variant"], c["task"], c["item_id"]): c["outcome"] for c in results(tmp, "first")["cases"]}
    second = {(c["variant"], c["task"], c["item_id"]): c["outcome"] for c in results(tmp, "second")["cases"]}
    assert first == second


def test_harness_bench_speaks_last_and_deepeval_table_is_an_option(setup):
    """`harness bench` (uncached: progress bars run between the letters) ends with the harness's
    summary; --deepeval-table brings deepeval's own end of run back."""
    tmp, _ = setup
    bench = [sys.executable, "-m", "harness.cli", "bench"]
    args = [*harness_options(tmp, tmp / "exp.toml", "bench"), "--cache-dir", str(tmp / "fresh-cache")]
    env = {**os.environ, "HARNESS_CACHE_DIR": str(tmp / "hcache")}
    done = subprocess.run([*bench, *args], cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert_the_harness_speaks_last(done, "bench")

    args = [*harness_options(tmp, tmp / "exp.toml", "table"), "--deepeval-table"]
    done = subprocess.run([*bench, *args], cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Pass Rate" in done.stdout and "was skipped" in done.stdout


def test_the_same_cases_without_the_speedups(setup):
    """No number depends on the speed-ups plugin: switched off, the cached run gives the same cases."""
    tmp, _ = setup
    done = run([sys.executable, "-m", "pytest", "-p", "no:harness.plugins.speedups"], tmp, "plain")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    key = lambda c: (c["variant"], c["task"], c["item_id"])
    first = {key(c): (c["outcome"], c["reason"], c["prediction"]) for c in results(tmp, "first")["cases"]}
    plain = {key(c): (c["outcome"], c["reason"], c["prediction"]) for c in results(tmp, "plain")["cases"]}
    assert first == plain


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["--load", "fp16"], 4, "--load fp16: not one of fp32, bf16, int8, nf4, auto; did you mean 'bf16'?"),
        (
            ["--spider-dir", "/nowhere"],
            4,
            "no spider data (tables.json not found) at /nowhere (the given folder)",
        ),
        (["--limit", "spidr=3"], 4, "--limit spidr=3: unknown task 'spidr'"),
        (["--limit", "mmlu=five"], 4, "--limit mmlu=five: expected a whole number, got 'five'"),
        (["--shots", "-1"], 4, "--shots -1: expected a number >= 0, got -1"),
    ],
)
def test_a_bad_option_is_one_usage_error(setup, args, code, message):
    tmp, _ = setup
    done = run([sys.executable, "-m", "pytest", *args], tmp, "usage")
    assert done.returncode == code, done.stdout[-2000:] + done.stderr[-2000:]
    assert message in done.stderr and "Traceback" not in done.stdout + done.stderr


def test_a_missing_adapter_stops_the_run_before_any_case(setup, tiny_model_dir):
    tmp, _ = setup
    exp = tmp / "with_ft.toml"
    exp.write_text(
        (tmp / "exp.toml").read_text()
        + f"""
[[variants]]
name = "ft"
model = "{tiny_model_dir}"
adapter = "{tmp / "no-adapter"}"
train_config = "training/configs/default.toml"
"""
    )
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "benchmarks/", *harness_options(tmp, exp)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 2, done.stdout[-2000:]
    out = done.stdout + done.stderr
    assert f"variant 'ft': adapter '{tmp / 'no-adapter'}'" in out
    assert f"harness train --config training/configs/default.toml --output {tmp / 'no-adapter'}" in out
    assert out.count("Traceback") == 0


def test_unknown_variant_fails_before_any_generation(setup):
    tmp, _ = setup
    done = run([sys.executable, "-m", "pytest", "--variant", "bse"], tmp, "third")
    assert done.returncode != 0
    assert "unknown variant 'bse'; did you mean 'base'" in done.stdout + done.stderr
    assert not (tmp / "reports" / "third" / "phases").exists()


def test_a_model_that_cannot_load_stops_the_run_before_any_case(setup, tmp_path):
    tmp, _ = setup
    missing = tmp_path / "no-such-model.gguf"
    done = run([sys.executable, "-m", "pytest", "--model", str(missing)], tmp, "nomodel")
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    out = done.stdout + done.stderr
    assert f"model '{missing}' cannot be loaded" in out
    assert "Traceback" not in out
    assert not (tmp / "reports" / "nomodel" / "phases").exists()
