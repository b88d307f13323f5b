"""Data-parallel predictions (harness/engine/sharding.py): the plan, the claims, the GPU of a worker,
and two real processes sharing one cache.

What is pinned: every distinct prompt is in exactly one batch, dealt by position; two workers
each compute exactly their own shard, once, and both return every record, equal to a serial
``cached_compute``; a worker that never comes has its shard taken after the patience; records
already cached are never recomputed; worker ``gwK`` gets the K-th visible GPU.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.engine.sharding import Shard, pin_worker, plan_batches, sharded_compute, visible_gpus, worker_gpu
from harness.records.cache import PredictionCache, cached_compute, prompt_key

PROMPTS = [f"prompt {i:02d} " + "x" * (i * 7 % 5) for i in range(11)]


def upper(batch: list[str], tick=None) -> list[dict]:
    return [{"raw": p.upper()} for p in batch]


def _cache(root: Path) -> PredictionCache:
    return PredictionCache(root, "spider", {"model": "fake", "generation": {"max_new_tokens": 1}})


# --- the plan ---------------------------------------------------------------------------------


def test_plan_deals_every_distinct_prompt_once_by_position():
    prompts = PROMPTS + PROMPTS[:3]  # repeated prompts are one record
    plan = plan_batches(prompts, 3, batch_size=2, sort_key=len)
    assert [b.number for b in plan] == list(range(len(plan)))
    keys = [k for b in plan for k in b.keys]
    assert sorted(keys) == sorted({prompt_key(p) for p in PROMPTS})
    position = {prompt_key(p): i for i, p in enumerate(PROMPTS)}
    for b in plan:
        assert len(b.keys) <= 2 and all(position[k] % 3 == b.owner for k in b.keys)
        assert [prompt_key(p) for p in b.prompts] == list(b.keys)
    for owner in range(3):
        lengths = [len(p) for b in plan if b.owner == owner for p in b.prompts]
        assert lengths == sorted(lengths), "each shard is sorted by sort_key, as cached_compute sorts"
    # Every worker makes the same plan: another process, with another hash seed, too.
    script = (
        "import json, sys; from harness.engine.sharding import plan_batches; "
        "plan = plan_batches(json.loads(sys.argv[1]), 3, batch_size=2, sort_key=len); "
        "print(json.dumps([[b.number, b.owner, list(b.keys)] for b in plan]))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps(prompts)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert json.loads(done.stdout) == [[b.number, b.owner, list(b.keys)] for b in plan]


def test_shard_of_an_xdist_worker():
    assert Shard.of_worker("gw3", 4) == Shard(3, 4) and Shard(3, 4).label == "4/4"
    with pytest.raises(ValueError, match="not an xdist worker id"):
        Shard.of_worker("main", 2)
    with pytest.raises(ValueError):
        Shard(2, 2)


# --- GPUs -------------------------------------------------------------------------------------


def test_each_worker_gets_its_own_gpu():
    assert visible_gpus({}, lambda: 4) == ["0", "1", "2", "3"]
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "2,5"}, lambda: 8) == ["2", "5"]
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": ""}, lambda: 8) == []
    assert visible_gpus({}, lambda: 0) == []
    gpus = ["2", "5"]
    assert [worker_gpu(Shard(i, 3), gpus) for i in range(3)] == [
        "2",
        "5",
        "2",
    ]  # more workers than GPUs: shared
    assert worker_gpu(Shard(0, 2), []) is None

    env = {"CUDA_VISIBLE_DEVICES": "2,5", "NCCL_NVLS_ENABLE": "0"}
    pin_worker("5", env)
    assert env == {
        "CUDA_VISIBLE_DEVICES": "5",
        "NCCL_NVLS_ENABLE": "0",
        "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1",
        "NVSHMEM_DISABLE_NVLS": "1",
    }
    cpu_env = {}
    pin_worker(None, cpu_env)
    assert "CUDA_VISIBLE_DEVICES" not in cpu_env


# --- processes sharing a cache -------------------------------------------------------------------


def _worker(root: str, index: int, count: int, out: str, patience_s: float) -> None:
    """One worker: a slow fake model (50 ms a batch), reporting what it computed."""

    def slow_upper(batch, tick=None):
        time.sleep(0.05)
        return upper(batch)

    records, stats = sharded_compute(
        _cache(Path(root)),
        PROMPTS,
        slow_upper,
        shard=Shard(index, count),
        batch_size=2,
        sort_key=len,
        patience_s=patience_s,
    )
    Path(out).write_text(
        json.dumps(
            {
                "records": records,
                "computed": stats.computed,
                "cached": stats.cached,
                "computed_prompts": stats.computed_prompts,
            }
        )
    )


def _run_workers(tmp_path: Path, indices: list[int], count: int, patience_s: float) -> list[dict]:
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(
            target=_worker, args=(str(tmp_path / "cache"), i, count, str(tmp_path / f"w{i}.json"), patience_s)
        )
        for i in indices
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    return [json.loads((tmp_path / f"w{i}.json").read_text()) for i in indices]


def test_two_workers_each_compute_their_shard_and_both_get_everything(tmp_path):
    w0, w1 = _run_workers(tmp_path, [0, 1], 2, patience_s=60.0)

    assert sorted(w0["computed_prompts"]) == sorted(PROMPTS[0::2])
    assert sorted(w1["computed_prompts"]) == sorted(PROMPTS[1::2])
    assert (w0["computed"], w0["cached"], w1["computed"], w1["cached"]) == (6, 5, 5, 6)
    serial, _ = cached_compute(_cache(tmp_path / "serial"), PROMPTS, upper, batch_size=2, sort_key=len)
    strip = lambda recs: [{k: v for k, v in r.items() if k != "computed_by"} for r in recs]
    assert strip(w0["records"]) == strip(w1["records"]) == serial
    assert {r["computed_by"] for r in w0["records"]} == {"shard 1/2", "shard 2/2"}
    lines = [json.loads(x) for x in _cache(tmp_path / "cache").path.read_text().splitlines()]
    assert sorted(r["key"] for r in lines) == sorted(prompt_key(p) for p in PROMPTS), (
        "each record computed once"
    )


def test_a_worker_that_never_comes_has_its_shard_taken_after_the_patience(tmp_path):
    (w0,) = _run_workers(tmp_path, [0], 2, patience_s=0.5)
    assert w0["computed"] == len(PROMPTS) and sorted(w0["computed_prompts"]) == sorted(PROMPTS)
    assert [r["raw"] for r in w0["records"]] == [p.upper() for p in PROMPTS]
    # A late owner finds its shard done and computes nothing.
    (w1,) = _run_workers(tmp_path, [1], 2, patience_s=0.5)
    assert w1["computed"] == 0 and w1["records"] == w0["records"]


def test_cached_records_are_not_recomputed(tmp_path):
    cache = _cache(tmp_path / "cache")
    cached_compute(cache, PROMPTS[:4], upper, batch_size=2)
    calls = []

    def counting(batch, tick=None):
        calls.append(list(batch))
        return upper(batch)

    records, stats = sharded_compute(
        cache, PROMPTS, counting, shard=Shard(0, 2), batch_size=2, patience_s=0.0
    )
    assert sorted(p for c in calls for p in c) == sorted(PROMPTS[4:])
    assert (stats.computed, stats.cached) == (7, 4)
    assert [r["raw"] for r in records] == [p.upper() for p in PROMPTS]
