"""Your own text-to-SQL set, measured like Spider: a JSONL file of questions and your SQLite files.

Each line of the file is one item::

    {"question": "How many singers are there?", "query": "SELECT count(*) FROM singer", "db_id": "concert"}

``db_id`` names ``<databases>/<db_id>.sqlite`` (or ``<databases>/<db_id>/<db_id>.sqlite``, the
Spider layout); instead, ``db_path`` may give the file, relative to the JSONL file's folder. An
optional ``id`` names the item in reports, an optional ``group`` groups items in the report
(default: the database). The prompt is Spider's (same templates, the schema read from the
SQLite file itself), so an adapter fine-tuned on Spider is asked in the format it learned;
generation, SQL extraction, the read-only sandbox and the metric are Spider's too.

In the experiment::

    [experiment]
    tasks = ["spider", "mmlu", "text2sql"]

    [text2sql]
    path = "examples/text2sql/questions.jsonl"
    databases = "examples/text2sql/databases"
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

from pydantic import Field, model_validator

from harness.configfile import Problems
from harness.results import CaseSpec
from harness.sql import is_plain_name
from harness.tasks.base import (
    Positive,
    Predictions,
    Report,
    RunContext,
    TaskData,
    TaskSettings,
    VariantOptions,
    seeded_sample,
)
from harness.tasks.spider import (
    Column,
    ExecutionAccuracy,
    Schema,
    SpiderPrediction,
    Table,
    TemplateName,
    get_spider_template,
    predict_sql,
    spider_prompt,
    sql_case,
    sql_failure_kind,
    write_sql_predictions,
)


class Text2SQLDataError(ValueError):
    """The questions file or a database is unusable; the message names the file and line."""


@dataclass(frozen=True)
class SQLItem:
    index: int  # 0-based line of the item among the file's non-blank lines
    item_id: str
    db_id: str
    db_path: Path
    question: str
    gold_sql: str
    group: str


class Text2SQLSettings(TaskSettings):
    """The ``[text2sql]`` table of an experiment."""

    path: str = ""  # the JSONL file of items (required when the task runs)
    databases: str = ""  # the folder of <db_id>.sqlite files; empty: the JSONL file's folder
    template: TemplateName = "schema"
    timeout_s: Annotated[float, Field(gt=0)] = 5.0
    max_new_tokens: Positive = 128
    batch_size: Positive = 8

    @model_validator(mode="after")
    def _check(self):
        problems = []
        if self.shots:
            problems.append("shots: the text2sql task prompts zero-shot; set shots = 0")
        if problems:
            raise Problems(problems)
        return self


class Text2SQLOptions(VariantOptions):
    """A variant's ``text2sql = {...}`` table (nothing to set yet but ``shots = 0``)."""


def _database_of(row: dict, where: str, folder: Path, databases: Path) -> tuple[str, Path]:
    if row.get("db_path"):
        path = Path(row["db_path"])
        path = path if path.is_absolute() else folder / path
        db_id = row.get("db_id") or path.stem
    else:
        db_id = row.get("db_id")
        if not isinstance(db_id, str) or not is_plain_name(db_id):
            raise Text2SQLDataError(f"{where}: 'db_id' must be a plain database name, got {db_id!r}")
        flat, nested = databases / f"{db_id}.sqlite", databases / db_id / f"{db_id}.sqlite"
        path = nested if nested.is_file() and not flat.is_file() else flat
    if not path.is_file():
        raise Text2SQLDataError(f"{where}: unknown database {db_id!r}: no SQLite file at {path}")
    return str(db_id), path


def load_items(path: Path, databases: Path | None = None) -> list[SQLItem]:
    """Every item of the JSONL file ``path``, in file order; every problem is an error naming
    the file and line: not UTF-8, not JSON, a missing field, an unknown database, no items."""
    path = Path(path)
    databases = Path(databases) if databases else path.parent
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise Text2SQLDataError(f"{path}: questions file not found (text2sql.path)") from None
    except IsADirectoryError:
        raise Text2SQLDataError(f"{path}: is a folder; text2sql.path names a JSONL file") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise Text2SQLDataError(f"{path}:{line}: not UTF-8 text (byte {e.start} of the file)") from None
    items: list[SQLItem] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise Text2SQLDataError(f"{where}: not valid JSON ({e.msg})") from None
        if not isinstance(row, dict):
            raise Text2SQLDataError(f"{where}: expected a JSON object, got {type(row).__name__}")
        missing = [k for k in ("question", "query") if not isinstance(row.get(k), str) or not row[k].strip()]
        if not row.get("db_id") and not row.get("db_path"):
            missing.append("db_id (or db_path)")
        if missing:
            raise Text2SQLDataError(f"{where}: missing {', '.join(missing)}")
        db_id, db_path = _database_of(row, where, path.parent, databases)
        item_id = str(row.get("id") or f"item-{len(items):04d}")
        if item_id in seen:
            raise Text2SQLDataError(f"{where}: id {item_id!r} already used on line {seen[item_id]}")
        seen[item_id] = number
        items.append(
            SQLItem(
                len(items),
                item_id,
                db_id,
                db_path,
                row["question"].strip(),
                row["query"].strip(),
                str(row.get("group") or db_id),
            )
        )
    if not items:
        raise Text2SQLDataError(f"{path}: holds no items (one JSON object per line)")
    return items


def read_schema(db_id: str, db_path: Path) -> Schema:
    """The tables, columns and foreign keys of a SQLite file, read-only."""
    conn = sqlite3.connect(f"file:{quote(str(db_path.resolve()))}?mode=ro", uri=True)
    try:
        names = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite_%' ORDER BY rowid"
            )
        ]
        tables, fks = [], []
        for name in names:
            quoted = '"' + name.replace('"', '""') + '"'
            cols = conn.execute(f"PRAGMA table_info({quoted})").fetchall()
            tables.append(Table(name, tuple(Column(c[1], (c[2] or "").lower()) for c in cols)))
            for fk in conn.execute(f"PRAGMA foreign_key_list({quoted})").fetchall():
                fks.append((f"{name}.{fk[3]}", f"{fk[2]}.{fk[4]}"))
    except sqlite3.DatabaseError as e:
        raise Text2SQLDataError(f"{db_path}: not a readable SQLite database ({e})") from None
    finally:
        conn.close()
    return Schema(db_id, tuple(tables), (), tuple(fks))


@dataclass(frozen=True)
class Text2SQLContext:
    schemas: dict[tuple[str, Path], Schema]  # by (db_id, database file): the prompt names the db_id


class Text2SQLTask:
    name = "text2sql"
    description = "a case of your own text-to-SQL set (benchmarks/test_text2sql.py)"
    settings_model = Text2SQLSettings
    variant_model = Text2SQLOptions
    report = Report(
        title="Text-to-SQL execution accuracy (your set)", group_label="group", role="specialization"
    )

    def load(self, settings: Text2SQLSettings, *, seed: int) -> TaskData:
        if not settings.path:
            raise Text2SQLDataError("text2sql.path: required (the JSONL file of your questions)")
        items = load_items(Path(settings.path), Path(settings.databases) if settings.databases else None)
        selected = seeded_sample(items, settings.limit, seed)
        databases = dict.fromkeys((it.db_id, it.db_path) for it in selected)
        schemas = {key: read_schema(*key) for key in databases}
        return TaskData(tuple(selected), Text2SQLContext(schemas))

    def record_fields(self, item: SQLItem) -> dict:
        return {"group": item.group}

    def predict(
        self,
        run: RunContext,
        data: TaskData,
        variant,
        settings: Text2SQLSettings,
        options: Text2SQLOptions | None,
    ) -> Predictions:
        template = get_spider_template(settings.template)
        tokenizer = run.engine.tokenizer(variant)
        prompts = {
            it.item_id: spider_prompt(
                it, template, schema=data.context.schemas[it.db_id, it.db_path], tokenizer=tokenizer
            )
            for it in data.items
        }
        return predict_sql(
            run,
            prompts,
            variant,
            namespace=self.name,
            max_new_tokens=settings.max_new_tokens,
            batch_size=settings.batch_size,
            info={"template": template.name, "template_version": template.version, "shots": 0},
        )

    def metric(self, settings: Text2SQLSettings) -> ExecutionAccuracy:
        return ExecutionAccuracy(timeout_s=settings.timeout_s)

    def case(
        self,
        item: SQLItem,
        prediction: SpiderPrediction | None,
        variant,
        settings: Text2SQLSettings,
        data: TaskData,
        metric: ExecutionAccuracy,
    ) -> CaseSpec:
        return sql_case(
            item.question,
            item.gold_sql,
            item.db_path,
            prediction,
            variant,
            f"{variant.name}/{item.item_id}",
            metric,
            {"db_id": item.db_id, "group": item.group},
        )

    def failure_kind(self, reason: str) -> str:
        return sql_failure_kind(reason)

    def write_outputs(self, run_dir: Path, variant, data: TaskData, predictions: Predictions) -> None:
        write_sql_predictions(
            run_dir / "predictions" / f"{variant.name}.{self.name}",
            variant,
            data.items,
            predictions,
            lambda item, pred: {
                "db_id": item.db_id,
                "question": item.question,
                "original_query": item.gold_sql,
            },
        )


TASK = Text2SQLTask()
