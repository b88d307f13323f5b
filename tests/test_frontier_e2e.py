"""A tiny learning-forgetting frontier, end to end on the CPU: `harness bench` trains a sweep of
three learning rates with two checkpoints each (one rate diverges), benchmarks the four adapters
that exist and the base model, and writes the frontier table and figure; a rerun after a run's
output is lost (a kill before it was published) trains and evaluates only what is missing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tiny_data import build_mmlu_dir, build_spider_dir

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def frontier(tmp_path_factory, tiny_model_dir):
    tmp = tmp_path_factory.mktemp("frontier")
    spider, mmlu = build_spider_dir(tmp / "spider"), build_mmlu_dir(tmp / "mmlu")
    train = tmp / "sweep.toml"
    train.write_text(f"""
name = "sweep"
model = "{tiny_model_dir}"
output = "{tmp / "adapters"}"

[data]
spider_dir = "{spider}"
template = "schema"

[train]
max_steps = 4
per_device_batch_size = 2
gradient_accumulation_steps = 1
max_grad_norm = 0.0

[hardware]
device = "cpu"
cpu_quantization = "fp32"

[checkpoints]
at = [0.5, 1.0]

[sweep]
learning_rate = [1e-4, 1e-3, 1e4]
""")
    exp = tmp / "exp.toml"
    exp.write_text(f"""
[experiment]
name = "tiny-frontier"
baseline = "base"
gates = ""

[spider]
data_dir = "{spider}"
max_new_tokens = 8
batch_size = 4

[mmlu]
data_dir = "{mmlu}"
selection = "per_subject"
per_subject = 3
subjects = ["abstract_algebra", "philosophy"]
shots = 0
batch_size = 4

[[variants]]
name = "base"
model = "{tiny_model_dir}"

[[sweeps]]
train_config = "{train}"
""")
    return tmp, exp


def bench(tmp: Path, exp: Path, run_id: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HARNESS_CACHE_DIR": str(tmp / "hcache")}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "harness.cli",
            "bench",
            "--experiment",
            str(exp),
            "--cache-dir",
            str(tmp / "cache"),
            "--report-dir",
            str(tmp / "reports"),
            "--run-id",
            run_id,
            "-p",
            "no:cacheprovider",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )


def test_a_sweep_becomes_a_frontier(frontier):
    tmp, exp = frontier
    done = bench(tmp, exp, "first")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    out = done.stdout + done.stderr
    at = out.find("\x1b[")
    assert at < 0, repr(out[max(0, at - 300) : at + 100])  # not a terminal: no colour or cursor codes
    run = tmp / "reports" / "first"
    results = json.loads((run / "results.json").read_text())
    variants = {c["variant"] for c in results["cases"]}
    assert variants == {"base", "lr=1e-4@0.5ep", "lr=1e-4@1ep", "lr=1e-3@0.5ep", "lr=1e-3@1ep"}
    f = results["frontier"]
    assert {p["variant"] for p in f["points"]} == variants - {"base"}
    diverged = f["not_benchmarked"]
    assert {d["variant"] for d in diverged} == {"lr=1e4@0.5ep", "lr=1e4@1ep"}
    assert all(d["status"] == "diverged" and d["reason"] for d in diverged)
    assert f["best"] in variants and any(p["on_front"] for p in f["points"])
    measures = {(c["variant"], c["benchmark"], c["measure"]) for c in results["continuous"]}
    assert ("lr=1e-3@1ep", "mmlu", "gold_logprob") in measures and (
        "lr=1e-3@1ep",
        "spider",
        "kl_to_base",
    ) in measures
    md = (run / "report.md").read_text()
    assert "## The learning-forgetting frontier" in md and "**diverged**" in md and "(frontier.png)" in md
    assert (run / "frontier.png").read_bytes()[:4] == b"\x89PNG"
    command = json.loads((run / "command.json").read_text())
    assert [t["exit"] for t in command["training"]] == [1]  # a point diverged: reported, not fatal
    assert (
        tmp / "adapters" / "learning_rate=0.001" / "checkpoints" / "0.5" / "adapter_config.json"
    ).is_file()


def test_a_rerun_trains_and_evaluates_only_what_is_missing(frontier):
    tmp, exp = frontier
    lost = tmp / "adapters" / "learning_rate=0.001"
    assert lost.is_dir()
    shutil.rmtree(lost)  # as if killed before publishing: nothing of that run is where the benchmarks look
    done = bench(tmp, exp, "second")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    out = done.stdout + done.stderr
    assert "learning_rate=0.0001" in out and "skip" in out.lower()
    phases = {
        p.name: json.loads(p.read_text()) for p in (tmp / "reports" / "second" / "phases").glob("*.json")
    }
    assert phases["spider-base.json"]["computed"] == 0 and phases["mmlu-lr=1e-4@1ep.json"]["computed"] == 0
    assert phases["mmlu-lr=1e-3@1ep.json"]["computed"] > 0  # retrained: a new adapter, new predictions
    assert (lost / "adapter_config.json").is_file()
