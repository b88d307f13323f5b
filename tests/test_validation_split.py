"""A validation split carved from Spider train (a seeded tenth of its databases) on which a
sweep chooses its point without peeking at dev; training can leave it out; the report says
which split chose and which measured."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.records.results import CaseResult
from harness.report.analysis import analyze
from harness.report.frontier import AdapterFacts
from harness.tasks.spider_data import SpiderItem, split_validation, validation_databases

SPIDER = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "spider"


def _items(n=60, databases=20):
    return [SpiderItem("train", i, f"db{i % databases:02d}", f"question {i}?", "SELECT 1") for i in range(n)]


def test_the_validation_split_is_a_seeded_tenth_of_the_databases():
    items = _items()
    held = validation_databases(items)
    assert len(held) == 2 and held == validation_databases(list(reversed(items)))  # order-free, seeded
    rest, validation = split_validation(items)
    assert {i.db_id for i in validation} == held and not {i.db_id for i in rest} & held
    assert len(rest) + len(validation) == len(items)
    assert all(i.item_id.startswith("validation-") for i in validation)


@pytest.mark.skipif(not (SPIDER / "train_spider.json").is_file(), reason="Spider data absent")
def test_on_spider_the_validation_databases_are_disjoint_from_dev():
    from harness.tasks import TASKS
    from harness.tasks.spider import SpiderSettings
    from harness.tasks.spider_data import load_spider_split

    train, dev = load_spider_split(SPIDER, "train"), load_spider_split(SPIDER, "dev")
    held = validation_databases(train)
    assert held and not held & {i.db_id for i in dev}
    data = TASKS["spider"].load(SpiderSettings(split="validation", limit=5), seed=0)
    assert all(i.db_id in held and i.item_id.startswith("validation-") for i in data.items)
    assert not {s.db_id for s in data.context.train} & held  # the shots come from the rest of train


def test_training_can_leave_the_validation_databases_out(tiny_model_dir, tmp_path, monkeypatch):
    import training._data as data_module
    from harness.models.loading import load_tokenizer, resolve_model
    from tests.tiny_data import build_spider_dir

    spider_dir = build_spider_dir(tmp_path / "spider")
    items = _items()
    monkeypatch.setattr(data_module, "load_spider_split", lambda root, split: items)
    tok = load_tokenizer(resolve_model(str(tiny_model_dir)))
    common = dict(
        spider_dir=str(spider_dir),
        template="paper",
        shots=0,
        max_examples=0,
        max_length=0,
        length_percentile=100,
        overlong="drop",
        seed=0,
    )
    everything = data_module.build_examples(tok, **common)
    held_out = data_module.build_examples(tok, hold_out="validation", **common)
    held = validation_databases(items)
    held_questions = {i.question for i in items if i.db_id in held}
    assert len(everything.prompts) == len(items)
    assert len(held_out.prompts) == len(items) - len(held_questions)
    assert not any(q in p for p in held_out.prompts for q in held_questions)


def _rows(split):
    rows = []
    for variant, right in (("base", 2), ("lr=1@1ep", 12)):
        rows += [
            CaseResult(variant, "spider", f"{split}-{i:04d}", "easy", "passed" if i < right else "failed")
            for i in range(40)
        ]
        rows += [CaseResult(variant, "mmlu", f"anatomy-{i:04d}", "stem", "passed") for i in range(40)]
    return rows


@pytest.mark.parametrize("split, says", [("validation", "confirm the chosen"), ("dev", "optimistic")])
def test_the_report_says_which_split_chose_and_measured(split, says):
    from harness.report.analysis import conclusion

    facts = {"lr=1@1ep": AdapterFacts("lr=1@1ep", "a", "succeeded", point="lr=1", epochs_at=1.0)}
    a = analyze(_rows(split), baseline="base", tasks=("spider", "mmlu"), facts=facts)
    assert a.frontier.split == split and says in a.frontier.selection_note
    assert a.frontier.selection_note in conclusion(a)
    json.dumps(a.frontier.selection_note)
