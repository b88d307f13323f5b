"""experiments/paper.toml follows the paper where the paper says what it did: Spider dev items
0-199, 150 MMLU questions (50 per domain, 4-shot), the Table I recipe for the fine-tuned
variant; and it lists where it departs."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.config.experiment import load_experiment
from harness.config.training import load_config
from harness.tasks import TASKS

SPIDER_DEV = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "spider" / "dev.json"


def test_the_paper_experiment_names_its_recipe_and_departures():
    exp = load_experiment("experiments/paper.toml")
    variants = {v.name: v for v in exp.variants}
    assert variants["ft"].train_config == "training/configs/paper_table1.toml"
    assert variants["ft-3shot"].train_config == "training/configs/paper_table1.toml"
    assert variants["ft-cpu"].train_config == "training/configs/default.toml"  # CPU-sized, named so
    recipe = load_config("training/configs/paper_table1.toml")
    # the paper's Table I and its text: r 16, alpha 16, dropout 0.05, all projections, no bias,
    # nf4 with bf16 compute, 1 epoch, lr 2e-4, batch 64 with 4 accumulation steps
    assert (recipe.lora.r, recipe.lora.lora_alpha, recipe.lora.lora_dropout) == (16, 16, 0.05)
    assert set(recipe.lora.target_modules) == {
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"
    }  # fmt: skip
    assert (recipe.train.learning_rate, recipe.train.epochs) == (2e-4, 1.0)
    assert (recipe.train.per_device_batch_size, recipe.train.gradient_accumulation_steps) == (64, 4)
    assert recipe.hardware.cuda_quantization == "nf4" and recipe.data.template == "paper"
    assert exp.mmlu.selection == "paper" and exp.mmlu.shots == 4
    text = " ".join(exp.departures)
    for departure in ("schema", "Stop rule", "log-likelihood", "8-bit", "ft-cpu"):
        assert departure in text


@pytest.mark.skipif(not SPIDER_DEV.is_file(), reason="Spider data absent")
def test_the_papers_spider_items_are_dev_0_to_199():
    exp = load_experiment("experiments/paper.toml")
    data = TASKS["spider"].load(exp.spider, seed=exp.seed)
    assert [item.item_id for item in data.items] == [f"dev-{i:04d}" for i in range(200)]


def test_first_takes_the_head_of_the_split_and_seeded_a_sample(tmp_path):
    from harness.tasks.spider import SpiderSettings
    from tests.tiny_data import build_spider_dir

    root = build_spider_dir(tmp_path / "spider")
    first = TASKS["spider"].load(SpiderSettings(data_dir=str(root), limit=2, sample="first"), seed=0)
    everything = TASKS["spider"].load(SpiderSettings(data_dir=str(root)), seed=0)
    assert [i.item_id for i in first.items] == [i.item_id for i in everything.items[:2]]


def test_the_cpu_frontier_has_seeds_and_a_null_variant():
    exp = load_experiment("experiments/frontier_cpu.toml")
    names = [v.name for v in exp.variants]
    assert names[:2] == ["base", "base-b1"] and exp.noise_floor_variants == ("base-b1",)
    assert sorted(names[2:]) == sorted(f"lr={lr},seed={s}@1ep" for lr in ("2e-4", "2e-3") for s in range(3))
