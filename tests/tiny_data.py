"""Tiny Spider and MMLU folders in the official layouts, built in milliseconds for tests."""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path

TABLES = [
    {
        "db_id": "concert",
        "table_names_original": ["singer"],
        "table_names": ["singer"],
        "column_names_original": [[-1, "*"], [0, "id"], [0, "name"], [0, "age"]],
        "column_names": [[-1, "*"], [0, "id"], [0, "name"], [0, "age"]],
        "column_types": ["text", "number", "text", "number"],
        "primary_keys": [1],
        "foreign_keys": [],
    },
    {
        "db_id": "absent_db",
        "table_names_original": ["t"],
        "table_names": ["t"],
        "column_names_original": [[-1, "*"], [0, "x"]],
        "column_names": [[-1, "*"], [0, "x"]],
        "column_types": ["text", "number"],
        "primary_keys": [],
        "foreign_keys": [],
    },
]

DEV = [
    {"db_id": "concert", "question": "How many singers are there?", "query": "SELECT count(*) FROM singer"},
    {"db_id": "concert", "question": "List the names of all singers.", "query": "SELECT name FROM singer"},
    {"db_id": "concert", "question": "What is the oldest age?", "query": "SELECT max(age) FROM singer"},
    {"db_id": "absent_db", "question": "How many x?", "query": "SELECT count(*) FROM t"},
]

TRAIN = [
    {"db_id": "concert", "question": "Show all ages.", "query": "SELECT age FROM singer"},
    {
        "db_id": "concert",
        "question": "Names of singers older than 30?",
        "query": "SELECT name FROM singer WHERE age > 30",
    },
    {"db_id": "concert", "question": "Average age?", "query": "SELECT avg(age) FROM singer"},
]


def build_spider_dir(root: Path) -> Path:
    root = Path(root)
    (root / "database" / "concert").mkdir(parents=True, exist_ok=True)
    (root / "tables.json").write_text(json.dumps(TABLES))
    (root / "dev.json").write_text(json.dumps(DEV))
    (root / "train_spider.json").write_text(json.dumps(TRAIN))
    db = sqlite3.connect(root / "database" / "concert" / "concert.sqlite")
    db.execute("CREATE TABLE singer (id INTEGER PRIMARY KEY, name TEXT, age INTEGER)")
    db.executemany("INSERT INTO singer VALUES (?, ?, ?)", [(1, "Ann", 41), (2, "Bo", 29), (3, "Cy", 35)])
    db.commit()
    db.close()
    return root


MMLU_ROWS = {
    "abstract_algebra": [
        ["What is 2 + 2?", "3", "4", "5", "6", "B"],
        ["What is 1 + 0?", "1", "0", "2", "3", "A"],
        ["What is 3 * 3?", "6", "8", "9", "12", "C"],
    ],
    "philosophy": [
        ["Who wrote the Republic?", "Kant", "Hume", "Locke", "Plato", "D"],
        ["Who wrote the Ethics?", "Spinoza", "Hegel", "Marx", "Rawls", "A"],
        ["Who said 'cogito'?", "Hume", "Descartes", "Mill", "Kant", "B"],
    ],
}


def build_mmlu_dir(root: Path) -> Path:
    root = Path(root)
    for split in ("dev", "val", "test"):
        (root / split).mkdir(parents=True, exist_ok=True)
        for subject, rows in MMLU_ROWS.items():
            with open(root / split / f"{subject}_{split}.csv", "w", newline="") as f:
                csv.writer(f).writerows(rows)
    return root


def write_tiny_experiment(tmp: Path, model: Path | str, *, spider_batch_size: int, per_subject: int) -> Path:
    """An experiment over tiny Spider and MMLU folders built under ``tmp``: variants ``base``
    (zero-shot, loglik) and ``base-1shot`` (1 Spider shot, MMLU by generation) of ``model``."""
    spider, mmlu = build_spider_dir(tmp / "spider"), build_mmlu_dir(tmp / "mmlu")
    exp = tmp / "exp.toml"
    exp.write_text(
        f"""
[experiment]
name = "tiny"
baseline = "base"
gates = ""

[spider]
data_dir = "{spider}"
max_new_tokens = 16
batch_size = {spider_batch_size}

[mmlu]
data_dir = "{mmlu}"
selection = "per_subject"
per_subject = {per_subject}
subjects = ["abstract_algebra", "philosophy"]
shots = 1

[[variants]]
name = "base"
model = "{model}"

[[variants]]
name = "base-1shot"
model = "{model}"
spider = {{ shots = 1 }}
mmlu = {{ scoring = "generate" }}
"""
    )
    return exp


def harness_options(tmp: Path, experiment: Path, run_id: str | None = None) -> list[str]:
    """What an end-to-end test passes to pytest or ``harness bench``: its experiment, its cache
    and report folders under ``tmp``, a run id if given, and no pytest cache in the repository."""
    options = ["--experiment", str(experiment), "--cache-dir", str(tmp / "cache")]
    options += ["--report-dir", str(tmp / "reports")]
    if run_id is not None:
        options += ["--run-id", run_id]
    return [*options, "-p", "no:cacheprovider"]
