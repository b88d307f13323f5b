"""A run's predictions/<variant>.spider.sql round-trips: `harness score-spider` scores the run's
own items (their ids from the sidecar beside it, or --ids) with the benchmarks' rule, and gives
the run's verdicts item by item; its output goes beside the input, never over an input or the
data, and its TSV fields are escaped."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import main as harness_main
from harness.engine.core import Engine
from harness.models.pool import ModelPool
from harness.tasks import TASKS
from harness.tasks.base import RunContext
from harness.tasks.score_spider import default_out, read_ids, score_spider_file
from harness.tasks.spider import SpiderSettings
from harness.tasks.sql_task import subset_files
from tests.tiny_data import build_spider_dir, harness_options, write_tiny_experiment

ROOT = Path(__file__).resolve().parents[1]


def read_tsv(path: Path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


class ByQuestion:
    """Answers each prompt by its question: right for some items, DISTINCT added for another."""

    ANSWERS = {
        "How many singers are there?": "SELECT count(*) FROM singer",
        "List the names of all singers.": "SELECT DISTINCT name FROM singer WHERE age > 30",
        "What is the oldest age?": "SELECT max(age) FROM singer",
    }

    def generate(self, variant, prompts, settings, tick=None):
        out = []
        for prompt in prompts:
            sql = next((s for q, s in self.ANSWERS.items() if q in prompt), "SELECT 1")
            out.append(sql + ";")
        return out


class Variant:
    name, model, load, adapter = "ft", "", "fp32", ""


def test_the_runs_sql_scores_to_the_runs_verdicts_item_by_item(tmp_path, tiny_model_dir):
    spider = build_spider_dir(tmp_path / "spider")
    task = TASKS["spider"]
    settings = SpiderSettings(data_dir=str(spider), limit=3, kl_to_base=False)
    data = task.load(settings, seed=1)
    variant = Variant()
    variant.model = str(tiny_model_dir)
    engine = Engine(ModelPool(), tmp_path / "cache", backend=ByQuestion())
    predictions = task.predict(RunContext(engine, 1), data, variant, settings, None)
    metric = task.metric(settings)
    run_verdicts = {}
    for item in data.items:
        spec = task.case(item, predictions.by_item.get(item.item_id), variant, settings, data, metric)
        run_verdicts[item.index] = "NA" if spec.skip_reason else str(int(metric.measure(spec.test_case)))
    run_dir = tmp_path / "run"
    task.write_outputs(run_dir, variant, data, predictions)
    sql = run_dir / "predictions" / "ft.spider.sql"
    ids, gold = subset_files(sql)
    assert read_ids(ids) == ("dev", [item.index for item in data.items])
    assert gold.read_text().splitlines() == [f"{item.gold_sql}\t{item.db_id}" for item in data.items]

    assert harness_main(["score-spider", str(sql), "--spider-dir", str(spider)]) == 0
    rows = read_tsv(default_out(sql))
    assert default_out(sql) == run_dir / "predictions" / "ft.spider.scores.tsv"
    assert {int(r["index"]): r["correct"] for r in rows} == run_verdicts
    assert set(run_verdicts.values()) >= {"0", "1"}  # the check can tell right from wrong
    assert all(r["hardness"] for r in rows)


def test_ids_can_be_given(tmp_path):
    spider = build_spider_dir(tmp_path / "spider")
    preds = tmp_path / "p.sql"
    preds.write_text("SELECT DISTINCT name FROM singer\n")
    ids = tmp_path / "ids.txt"
    ids.write_text("1\n")
    kept = score_spider_file(preds, spider, tmp_path / "kept.tsv", ids=ids)
    assert (kept.n, kept.correct) == (1, 1)  # item 1 of the dev split, and only it
    with pytest.raises(ValueError, match="item 9 is beyond the dev split's 4 items"):
        ids.write_text("9\n")
        score_spider_file(preds, spider, tmp_path / "x.tsv", ids=ids)


def test_the_cli_default_keeps_distinct_as_the_benchmarks_do(tmp_path, capsys):
    spider = build_spider_dir(tmp_path / "spider")
    dev = json.loads((spider / "dev.json").read_text())
    dev[1]["query"] = "SELECT DISTINCT age > 30 FROM singer"
    (spider / "dev.json").write_text(json.dumps(dev))
    preds = tmp_path / "p.sql"
    preds.write_text("SELECT 1\nSELECT age > 30 FROM singer\nSELECT 1\nSELECT 1\n")
    assert harness_main(["score-spider", str(preds), "--spider-dir", str(spider)]) == 0
    assert read_tsv(default_out(preds))[1]["correct"] == "0"  # DISTINCT forgotten: wrong, as in a run
    out = tmp_path / "s.tsv"
    assert (
        harness_main(
            [
                "score-spider",
                str(preds),
                "--spider-dir",
                str(spider),
                "--distinct",
                "strip",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert read_tsv(out)[1]["correct"] == "1"


@pytest.mark.parametrize("which", ["the predictions", "the ids", "the data"])
def test_out_is_never_an_input_or_the_data(tmp_path, which, capsys):
    spider = build_spider_dir(tmp_path / "spider")
    preds = tmp_path / "p.sql"
    preds.write_text("SELECT 1\n")
    ids = tmp_path / "p.ids.json"
    ids.write_text('{"split": "dev", "ids": [0]}\n')
    out = {"the predictions": preds, "the ids": ids, "the data": spider / "dev.json"}[which]
    before = out.read_bytes()
    rc = harness_main(["score-spider", str(preds), "--spider-dir", str(spider), "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1
    assert "one of the inputs" in err or "inside the Spider data folder" in err
    assert out.read_bytes() == before


def test_tsv_fields_are_escaped(tmp_path):
    spider = build_spider_dir(tmp_path / "spider")
    evil = "concert\tforged\t1\tok\nx"
    (spider / "database" / evil).mkdir()
    (spider / "database" / "concert" / "concert.sqlite").rename(spider / "database" / evil / f"{evil}.sqlite")
    dev = [{"db_id": evil, "question": "q", "query": "SELECT count(*) FROM singer"}]
    (spider / "dev.json").write_text(json.dumps(dev))
    preds = tmp_path / "p.sql"
    preds.write_text("SELECT count(*) FROM singer\n")
    score_spider_file(preds, spider, tmp_path / "v.tsv")
    lines = (tmp_path / "v.tsv").read_text().split("\n")
    assert len(lines) == 3 and all(line.count("\t") == 4 for line in lines[:2])
    assert read_tsv(tmp_path / "v.tsv")[0]["db_id"] == "concert\\tforged\\t1\\tok\\nx"


@pytest.mark.slow
def test_a_tiny_runs_predictions_round_trip(tmp_path, tiny_model_dir):
    """`harness score-spider reports/<run>/predictions/base.spider.sql` agrees with the run."""
    exp = write_tiny_experiment(tmp_path, tiny_model_dir, spider_batch_size=2, per_subject=1)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "benchmarks/",
            "-m",
            "spider",
            "--limit",
            "spider=3",
            *harness_options(tmp_path, exp, "rt"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "HARNESS_CACHE_DIR": str(tmp_path / "hcache")},
        timeout=600,
    )
    assert done.returncode in (0, 1), done.stdout[-3000:] + done.stderr[-3000:]
    run_dir = tmp_path / "reports" / "rt"
    cases = json.loads((run_dir / "results.json").read_text())["cases"]
    for variant in ("base", "base-1shot"):
        sql = run_dir / "predictions" / f"{variant}.spider.sql"
        assert harness_main(["score-spider", str(sql), "--spider-dir", str(tmp_path / "spider")]) == 0
        verdicts = {f"dev-{int(r['index']):04d}": r["correct"] for r in read_tsv(default_out(sql))}
        run = {
            c["item_id"]: {"passed": "1", "skipped": "NA"}.get(c["outcome"], "0")
            for c in cases
            if c["variant"] == variant and c.get("task", c.get("benchmark")) == "spider"
        }
        assert verdicts == run and len(run) == 3


def test_a_validation_runs_ids_name_spider_train_items(tmp_path):
    """spider.split = "validation" scores Spider train items, named by their train index."""
    ids = tmp_path / "ft.spider.ids.json"
    ids.write_text(json.dumps({"split": "validation", "ids": [3, 7]}))
    assert read_ids(ids) == ("train", [3, 7])
