"""A tiny learning-forgetting frontier, end to end on the CPU: `harness bench` trains a sweep of
three learning rates with two checkpoints each (one rate diverges), benchmarks the four adapters
that exist and the base model, and writes the frontier table and figure; a rerun after a run's
output is lost, or after kill -9 during training or during the benchmarks, trains and evaluates
only what is missing."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.tiny_data import build_mmlu_dir, build_spider_dir, harness_options

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def frontier(tmp_path_factory, tiny_model_dir):
    tmp = tmp_path_factory.mktemp("frontier")
    return tmp, write_frontier(tmp, tiny_model_dir, rates="[1e-4, 1e-3, 1e4]", max_steps=4)


def write_frontier(tmp: Path, model: Path, *, rates: str, max_steps: int) -> Path:
    """A sweep over ``rates`` with checkpoints at half and all of ``max_steps``, and an
    experiment that benchmarks it beside the base model; returns the experiment file."""
    spider, mmlu = build_spider_dir(tmp / "spider"), build_mmlu_dir(tmp / "mmlu")
    train = tmp / "sweep.toml"
    train.write_text(f"""
name = "sweep"
model = "{model}"
output = "{tmp / "adapters"}"

[data]
spider_dir = "{spider}"
template = "schema"

[train]
max_steps = {max_steps}
per_device_batch_size = 2
gradient_accumulation_steps = 1
max_grad_norm = 0.0

[hardware]
device = "cpu"
cpu_quantization = "fp32"

[checkpoints]
at = [0.5, 1.0]

[sweep]
learning_rate = {rates}
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
model = "{model}"

[[sweeps]]
train_config = "{train}"
""")
    return exp


def bench_command(tmp: Path, exp: Path, run_id: str) -> list[str]:
    return [sys.executable, "-m", "harness.cli", "bench", *harness_options(tmp, exp, run_id)]


def bench_env(tmp: Path) -> dict:
    return {**os.environ, "HARNESS_CACHE_DIR": str(tmp / "hcache")}


def bench(tmp: Path, exp: Path, run_id: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        bench_command(tmp, exp, run_id),
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=bench_env(tmp),
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
    # a tiny random model gains nothing significant: no point is called best, and the report says why
    assert f["best"] is None and f["why_none"] and f["drawn"]
    measures = {(c["variant"], c["benchmark"], c["measure"]) for c in results["continuous"]}
    assert ("lr=1e-3@1ep", "mmlu", "gold_prob") in measures and (
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


def kill_when(tmp: Path, exp: Path, run_id: str, ready, what: str) -> None:
    """Start `harness bench` and kill -9 its whole process group (training and pytest included)
    as soon as ``ready()`` holds."""
    log = (tmp / f"{run_id}.log").open("w")
    proc = subprocess.Popen(
        bench_command(tmp, exp, run_id),
        cwd=ROOT,
        env=bench_env(tmp),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 600
        while not ready():
            assert proc.poll() is None, (
                f"the run ended before {what}: " + (tmp / f"{run_id}.log").read_text()[-3000:]
            )
            assert time.monotonic() < deadline, f"no {what} within 600 s"
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        log.close()


def test_kill_9_during_a_sweep_then_rerun(tmp_path, tiny_model_dir):
    """kill -9 while a sweep point has a checkpoint but no final adapter, then again while the
    benchmarks run: the next run trains and evaluates only what is missing, and nothing half
    written is ever benchmarked."""
    exp = write_frontier(tmp_path, tiny_model_dir, rates="[1e-4, 1e-3]", max_steps=16)
    adapters = tmp_path / "adapters"
    second = "learning_rate=0.001"

    def half_trained() -> bool:
        return any(adapters.glob(f".{second}.staging-*/checkpoints/0.5/adapter_config.json"))

    kill_when(tmp_path, exp, "first", half_trained, "checkpoint of the second sweep point")
    assert (adapters / "learning_rate=0.0001" / "adapter_config.json").is_file()
    assert not (adapters / second).exists()  # its checkpoint exists only inside the staging folder

    phases = tmp_path / "reports" / "second" / "phases"
    kill_when(tmp_path, exp, "second", lambda: any(phases.glob("*.json")), "finished benchmark phase")
    log = (tmp_path / "second.log").read_text()
    assert "learning_rate=0.0001" in log and "skip" in log.lower()  # the first point is not retrained
    assert not list(adapters.glob(".*staging*"))  # the killed run's staging folder was cleared
    done_before = {p.name for p in phases.glob("*.json")}
    published = {a: a.stat().st_mtime_ns for a in adapters.glob("*/adapter_config.json")}
    assert len(published) == 2

    done = bench(tmp_path, exp, "third")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    results = json.loads((tmp_path / "reports" / "third" / "results.json").read_text())
    assert {c["variant"] for c in results["cases"]} == {
        "base",
        "lr=1e-4@0.5ep",
        "lr=1e-4@1ep",
        "lr=1e-3@0.5ep",
        "lr=1e-3@1ep",
    }
    third = tmp_path / "reports" / "third" / "phases"
    assert all(json.loads((third / name).read_text())["computed"] == 0 for name in done_before)
    assert {a: a.stat().st_mtime_ns for a in published} == published  # nothing trained again
