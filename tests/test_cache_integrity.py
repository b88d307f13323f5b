"""Cached records are checked against their hash: a payload changed on disk is skipped with a
warning and computed again, and the warning is shown under `pytest benchmarks/` too."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

from harness.records.cache import PredictionCache, cached_compute, record_sum
from tests.test_task_text2sql import ROWS, make_db
from tests.tiny_data import harness_options

ROOT = Path(__file__).resolve().parents[1]


def _compute(prompts, tick):
    return [{"raw": f"SELECT '{p}'"} for p in prompts]


def test_a_flipped_character_in_a_payload_is_skipped_and_recomputed(tmp_path, caplog):
    cache = PredictionCache(tmp_path, "spider", {"model": "m"}, required=("raw",))
    first, _ = cached_compute(cache, ["a", "b"], _compute, batch_size=2)
    lines = cache.path.read_text(encoding="utf-8").splitlines()
    record = json.loads(lines[0])
    assert record["sum"] == record_sum(record)
    lines[0] = lines[0].replace("SELECT 'a'", "SELECT 'A'")
    cache.path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="harness.records.cache"):
        again, stats = cached_compute(cache, ["a", "b"], _compute, batch_size=2)
    assert stats.computed == 1 and stats.cached == 1
    assert [r["raw"] for r in again] == ["SELECT 'a'", "SELECT 'b'"] == [r["raw"] for r in first]
    assert any(":1: cache line whose content does not match its hash skipped" in m for m in caplog.messages)


def test_a_record_without_a_hash_is_not_trusted(tmp_path, caplog):
    cache = PredictionCache(tmp_path, "spider", {"model": "m"}, required=("raw",))
    cache.path.parent.mkdir(parents=True)
    cache.path.write_text(json.dumps({"key": "k", "raw": "SELECT 1", "fp": cache.key}) + "\n")
    with caplog.at_level(logging.WARNING, logger="harness.records.cache"):
        assert cache.load() == {}
    assert "does not match its hash" in caplog.text


def test_cache_warnings_are_shown_under_pytest_benchmarks(tmp_path, tiny_model_dir):
    make_db(tmp_path / "dbs" / "music.sqlite")
    questions = tmp_path / "q.jsonl"
    questions.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    exp = tmp_path / "exp.toml"
    exp.write_text(f"""
[experiment]
name = "own"
tasks = ["text2sql"]
gates = ""

[text2sql]
path = "{questions}"
databases = "{tmp_path / "dbs"}"
max_new_tokens = 8
batch_size = 3

[[variants]]
name = "base"
model = "{tiny_model_dir}"
""")
    env = {**os.environ, "HARNESS_CACHE_DIR": str(tmp_path / "hcache")}

    def run(run_id):
        return subprocess.run(
            [sys.executable, "-m", "pytest", "benchmarks/", *harness_options(tmp_path, exp, run_id)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
        )

    first = run("one")
    assert first.returncode in (0, 1), first.stdout[-3000:] + first.stderr[-3000:]
    (cache_file,) = (tmp_path / "cache" / "text2sql").glob("*.jsonl")
    lines = cache_file.read_text(encoding="utf-8").splitlines()
    record = json.loads(lines[0])
    record["raw"] = record["raw"] + "x"  # the hash is left as it was
    lines[0] = json.dumps(record, ensure_ascii=False)
    cache_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    second = run("two")
    assert second.returncode in (0, 1), second.stdout[-3000:] + second.stderr[-3000:]
    shown = second.stdout + second.stderr
    assert f"harness: warning: {cache_file}:1: cache line whose content does not match its hash" in shown
    phase = json.loads((tmp_path / "reports" / "two" / "phases" / "text2sql-base.json").read_text())
    assert phase["computed"] == 1
