"""A tiny frontier trained with three seeds per learning rate and a null variant, end to end on
the CPU with the tiny model: `harness bench` trains every (rate, seed), scores them, and the
report pools each rate's seeds (seed mean, spread, an interval over seeds and items) and shows
the noise floor."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tiny_data import build_mmlu_dir, build_spider_dir, harness_options

ROOT = Path(__file__).resolve().parents[1]


def write_experiment(tmp: Path, model: Path) -> Path:
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
max_steps = 2
per_device_batch_size = 2
gradient_accumulation_steps = 1

[hardware]
device = "cpu"
cpu_quantization = "fp32"

[sweep]
learning_rate = [1e-4, 1e-3]
seeds = [0, 1, 2]
""")
    exp = tmp / "exp.toml"
    exp.write_text(f"""
[experiment]
name = "tiny-seeds"
baseline = "base"
gates = ""

[spider]
data_dir = "{spider}"
max_new_tokens = 8
batch_size = 4
kl_to_base = false

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

[[variants]]
name = "base-b1"
model = "{model}"
noise_floor = true
mmlu = {{ batch_size = 1 }}

[[sweeps]]
train_config = "{train}"
""")
    return exp


@pytest.mark.slow
def test_a_seeded_sweep_reports_seed_means_spreads_and_the_noise_floor(tmp_path, tiny_model_dir):
    exp = write_experiment(tmp_path, tiny_model_dir)
    done = subprocess.run(
        [sys.executable, "-m", "harness.cli", "bench", *harness_options(tmp_path, exp, "seeds")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "HARNESS_CACHE_DIR": str(tmp_path / "hcache")},
        timeout=1500,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    run = tmp_path / "reports" / "seeds"
    results = json.loads((run / "results.json").read_text())
    groups = {g["setting"]: g for g in results["frontier"]["seed_groups"]}
    assert set(groups) == {"lr=1e-4@1ep", "lr=1e-3@1ep"}
    for g in groups.values():
        assert len(g["variants"]) == 3 and len(g["gain"]["per_seed"]) == 3
        assert g["gain"]["ci_low"] <= g["gain"]["mean"] <= g["gain"]["ci_high"]
    assert results["noise_floor"]["null_variants"] == ["base-b1"]
    md = (run / "report.md").read_text()
    assert md.startswith("# Trade-off report") and "## Conclusion" in md and "### Over seeds" in md
    assert "base-b1 (*null*)" in md
    assert "seed mean of 3" in results["conclusion"]
    assert results["conclusion"] in done.stdout  # the terminal prints the conclusion too
