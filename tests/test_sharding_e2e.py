"""The benchmarks under ``pytest -n 2`` on a tiny model and tiny data: each xdist worker computes
only its shard of every prediction phase, and the merged report equals a single-process run's
on the same predictions (the serial run reads the cache the two workers filled).

Slow: two pytest sessions, one with two workers, take about 60 s on 2 busy cores (39 s + 21 s
measured), so ``make test`` leaves it out; ``make test-slow`` or ``pytest tests/test_sharding_e2e.py``
runs it."""

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.tiny_data import harness_options, write_tiny_experiment

ROOT = Path(__file__).resolve().parents[1]


def _experiment(tmp: Path, model: Path) -> Path:
    return write_tiny_experiment(tmp, model, spider_batch_size=1, per_subject=3)


def _run(tmp: Path, run_id: str, *extra: str) -> subprocess.CompletedProcess:
    options = harness_options(tmp, tmp / "exp.toml", run_id)
    args = [sys.executable, "-m", "pytest", "benchmarks/", *extra, *options]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
    env.update(HARNESS_CACHE_DIR=str(tmp / "hcache"), OMP_NUM_THREADS="1")
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)


def _comparable(run_dir: Path) -> dict:
    """results.json without the manifest (timings, phases, host) and with the cases in a fixed order."""
    res = json.loads((run_dir / "results.json").read_text())
    res.pop("manifest")
    res["cases"] = sorted(res["cases"], key=lambda c: (c["variant"], c["task"], c["item_id"]))
    return res


@pytest.mark.slow
def test_two_workers_share_the_predictions_and_report_like_one(tmp_path, tiny_model_dir):
    _experiment(tmp_path, tiny_model_dir)
    t0 = time.perf_counter()
    parallel = _run(tmp_path, "parallel", "-n", "2")
    t1 = time.perf_counter()
    assert parallel.returncode == 0, parallel.stdout[-3000:] + parallel.stderr[-3000:]
    serial = _run(tmp_path, "serial")
    t2 = time.perf_counter()
    assert serial.returncode == 0, serial.stdout[-3000:] + serial.stderr[-3000:]
    print(f"pytest -n 2: {t1 - t0:.1f} s; serial rerun from the cache: {t2 - t1:.1f} s")

    # Every record was computed once, by one of the two shards, and each shard computed a part.
    # (token_counts/ holds prompt lengths for fitting MMLU shots, counted whole by each worker.)
    files = sorted(f for f in (tmp_path / "cache").glob("*/*.jsonl") if f.parent.name != "token_counts")
    records = [(f.name, json.loads(line)) for f in files for line in f.read_text().splitlines()]
    assert len({(f, r["key"]) for f, r in records}) == len(records), "no record is computed twice"
    by_shard = Counter(r["computed_by"] for _, r in records)
    print(f"records computed per shard: {dict(by_shard)}")
    assert set(by_shard) == {"shard 1/2", "shard 2/2"}
    # Spider: 3 scorable items x 2 prompts (0 and 1 shot), one cache;
    # MMLU: 6 questions in each of 2 caches (loglik, generate).
    assert len(files) == 3 and len(records) == 3 * 2 + 6 * 2

    # The serial run computed nothing and reports exactly what the two workers reported.
    phases = [json.loads(p.read_text()) for p in (tmp_path / "reports" / "serial" / "phases").glob("*.json")]
    assert len(phases) == 4 and all(p["computed"] == 0 for p in phases)
    # The parallel run kept each worker's record of each phase, and together they computed everything.
    shards = [
        json.loads(p.read_text())
        for p in (tmp_path / "reports" / "parallel" / "phases").glob("*.gw[01].json")
    ]
    assert len(shards) == 8 and {p["worker"] for p in shards} == {"gw0", "gw1"}
    assert sum(p["computed"] for p in shards) == len(records)
    par, ser = _comparable(tmp_path / "reports" / "parallel"), _comparable(tmp_path / "reports" / "serial")
    assert len(par["cases"]) == 2 * 4 + 2 * 6
    assert par == ser
    for name in ("base.spider.jsonl", "base-1shot.spider.sql"):
        assert (tmp_path / "reports" / "parallel" / "predictions" / name).read_text() == (
            tmp_path / "reports" / "serial" / "predictions" / name
        ).read_text()
