"""The user's own text-to-SQL task: its file format and errors, the schema it reads from the
SQLite files, its cases, and a benchmark run of it on the tiny model."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from harness.engine.core import Engine
from harness.models.pool import ModelPool
from harness.tasks import TASKS
from harness.tasks.base import RunContext
from harness.tasks.text2sql import Text2SQLSettings
from harness.tasks.text2sql_data import Text2SQLDataError, load_items, read_schema
from tests.tiny_data import harness_options

ROOT = Path(__file__).resolve().parents[1]


def make_db(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE singer (id INTEGER PRIMARY KEY, name TEXT, age INTEGER);"
        "CREATE TABLE song (id INTEGER PRIMARY KEY, singer_id INTEGER REFERENCES singer(id), title TEXT);"
        "INSERT INTO singer VALUES (1, 'Ann', 41), (2, 'Bo', 29);"
        "INSERT INTO song VALUES (1, 1, 'Hey'), (2, 2, 'Yo');"
    )
    conn.close()
    return path


ROWS = [
    {"question": "How many singers?", "query": "SELECT count(*) FROM singer", "db_id": "music"},
    {
        "id": "names",
        "question": "Names?",
        "query": "SELECT name FROM singer",
        "db_id": "music",
        "group": "easy",
    },
    {"question": "Titles?", "query": "SELECT title FROM song", "db_path": "dbs/music.sqlite"},
]


@pytest.fixture
def dataset(tmp_path) -> Path:
    make_db(tmp_path / "dbs" / "music.sqlite")
    path = tmp_path / "q.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS) + "\n")  # a blank line is allowed
    return path


def test_items_load_with_ids_groups_and_databases(dataset):
    items = load_items(dataset, dataset.parent / "dbs")
    assert [i.item_id for i in items] == ["item-0000", "names", "item-0002"]
    assert [i.group for i in items] == ["music", "easy", "music"]
    assert {i.db_path.resolve() for i in items} == {(dataset.parent / "dbs" / "music.sqlite").resolve()}


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"question": "q", "db_id": "music"}', "q.jsonl:1: missing query"),
        ('{"question": "q", "query": "SELECT 1"}', "q.jsonl:1: missing db_id (or db_path)"),
        ('{"question": "q", "query": "SELECT 1", "db_id": "nope"}', "q.jsonl:1: unknown database 'nope'"),
        (
            '{"question": "q", "query": "SELECT 1", "db_id": "../music"}',
            "q.jsonl:1: 'db_id' must be a plain database name",
        ),
        ('{"question": "q", "query": "SELECT 1", "db_id": "music"', "q.jsonl:1: not valid JSON"),
        ('["q", "SELECT 1"]', "q.jsonl:1: expected a JSON object, got list"),
        ("", "q.jsonl: holds no items"),
    ],
)
def test_bad_files_name_the_file_and_line(tmp_path, line, message):
    make_db(tmp_path / "music.sqlite")
    path = tmp_path / "q.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(Text2SQLDataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_items(path)


def test_non_utf8_and_missing_files_are_named(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_bytes(b'{"question": "caf\xe9", "query": "SELECT 1", "db_id": "x"}\n')
    with pytest.raises(Text2SQLDataError, match=r"q.jsonl:1: not UTF-8 text \(byte 17 of the file\)"):
        load_items(path)
    with pytest.raises(Text2SQLDataError, match="text2sql.path: questions file not found: .*nowhere.jsonl"):
        load_items(tmp_path / "nowhere.jsonl")


def test_a_duplicate_id_is_refused(tmp_path):
    make_db(tmp_path / "music.sqlite")
    row = json.dumps({"id": "a", "question": "q", "query": "SELECT 1", "db_id": "music"})
    (tmp_path / "q.jsonl").write_text(row + "\n" + row + "\n")
    with pytest.raises(Text2SQLDataError, match="q.jsonl:2: id 'a' already used on line 1"):
        load_items(tmp_path / "q.jsonl")


def test_the_schema_comes_from_the_sqlite_file(tmp_path):
    schema = read_schema("music", make_db(tmp_path / "music.sqlite"))
    assert [t.name for t in schema.tables] == ["singer", "song"]
    assert [c.name for c in schema.tables[1].columns] == ["id", "singer_id", "title"]
    assert schema.foreign_keys == (("song.singer_id", "singer.id"),)


def test_items_sharing_a_file_under_two_db_ids_each_get_their_own_schema(tmp_path):
    """The prompt names the db_id, so the schema is per (db_id, file), whatever the hash seed."""
    make_db(tmp_path / "dbs" / "music.sqlite")
    path = tmp_path / "q.jsonl"
    rows = [
        {"question": f"Q{i}?", "query": "SELECT 1", "db_id": name, "db_path": "dbs/music.sqlite"}
        for i, name in enumerate(["a", "b"])
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    data = TASKS["text2sql"].load(Text2SQLSettings(path=str(path)), seed=0)
    assert [data.context.schemas[it.db_id, it.db_path].db_id for it in data.items] == ["a", "b"]


def test_settings_need_a_path_and_take_no_shots(dataset):
    with pytest.raises(ValueError, match="text2sql.path: required"):
        TASKS["text2sql"].load(Text2SQLSettings(), seed=0)
    with pytest.raises(ValueError, match="shots: the text2sql task prompts zero-shot"):
        Text2SQLSettings(path=str(dataset), shots=1)


class Canned:
    """Answers every prompt with a fixed SQL query (no model)."""

    def __init__(self, sql):
        self.sql = sql

    def generate(self, variant, prompts, settings, tick=None):
        return [self.sql + ";\nmore text" for _ in prompts]


class Variant:
    name, model, load, adapter = "base", "", "fp32", ""


def test_predict_and_score_with_the_spider_metric(dataset, tmp_path, tiny_model_dir):
    task = TASKS["text2sql"]
    settings = Text2SQLSettings(path=str(dataset), databases=str(dataset.parent / "dbs"))
    data = task.load(settings, seed=0)
    variant = Variant()
    variant.model = str(tiny_model_dir)
    engine = Engine(ModelPool(), tmp_path / "cache", backend=Canned("SELECT count(*) FROM singer"))
    predictions = task.predict(RunContext(engine, 0), data, variant, settings, None)
    assert predictions.phase.computed == 3 and predictions.phase.info["template"] == "schema"
    metric = task.metric(settings)
    verdicts = []
    for item in data.items:
        spec = task.case(item, predictions.by_item[item.item_id], variant, settings, data, metric)
        assert (
            spec.test_case.name == f"base/{item.item_id}" and spec.prediction == "SELECT count(*) FROM singer"
        )
        verdicts.append(metric.measure(spec.test_case))
    assert verdicts == [1.0, 0.0, 0.0]
    task.write_outputs(tmp_path / "run", variant, data, predictions)
    assert (tmp_path / "run" / "predictions" / "base.text2sql.sql").read_text().splitlines()[0] == (
        "SELECT count(*) FROM singer"
    )


def test_benchmark_run_on_the_tiny_model(dataset, tmp_path, tiny_model_dir):
    """`pytest benchmarks/ -m text2sql` with the task in the experiment: cases, report section."""
    exp = tmp_path / "exp.toml"
    exp.write_text(f"""
[experiment]
name = "own"
tasks = ["text2sql"]
gates = ""

[text2sql]
path = "{dataset}"
databases = "{dataset.parent / "dbs"}"
max_new_tokens = 12
batch_size = 3

[[variants]]
name = "base"
model = "{tiny_model_dir}"
""")
    env = {**os.environ, "HARNESS_CACHE_DIR": str(tmp_path / "hcache")}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "benchmarks/", *harness_options(tmp_path, exp, "own")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads((tmp_path / "reports" / "own" / "results.json").read_text())
    assert {c["task"] for c in results["cases"]} == {"text2sql"} and len(results["cases"]) == 3
    assert "by group" in (tmp_path / "reports" / "own" / "report.md").read_text()
