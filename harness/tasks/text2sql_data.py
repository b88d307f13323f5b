"""A user's own text-to-SQL set (harness/tasks/text2sql.py), read as untrusted input: the
JSONL file of questions, its databases and their schemas, each checked before any model work,
every problem one error naming the file and item; the gold queries run once at load, and each
prompt must fit the model's context."""

from __future__ import annotations

import json
import sqlite3
import stat
from dataclasses import dataclass
from pathlib import Path

from harness.sql import execute_readonly, is_plain_name
from harness.sql.opening import connect_readonly
from harness.tasks.base import (
    TaskDataError,
)
from harness.tasks.sql_prompts import Column, Schema, Table


class Text2SQLDataError(TaskDataError):
    """The questions file or a database is unusable; the message names the file and line."""


# A questions file is text a person wrote; far beyond this it is a mistake (or /dev/zero).
MAX_QUESTIONS_BYTES = 64 << 20
# A question is a sentence or a paragraph; a longer one is refused before it is tokenized.
MAX_QUESTION_CHARS = 20_000


@dataclass(frozen=True)
class SQLItem:
    index: int  # 0-based line of the item among the file's non-blank lines
    item_id: str
    db_id: str
    db_path: Path
    question: str
    gold_sql: str
    group: str
    where: str = ""  # "<file>:<line>", for messages about the item


def _regular_file(path: Path, what: str, where: str, limit: int | None = None) -> None:
    """Refuse, in one line, anything but a regular file (of at most ``limit`` bytes)."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise Text2SQLDataError(f"{where}: {what} not found: {path}") from None
    except OSError as e:
        raise Text2SQLDataError(f"{where}: {what} {path} cannot be read ({e.strerror})") from None
    if stat.S_ISDIR(info.st_mode):
        raise Text2SQLDataError(f"{where}: {what} {path} is a folder, not a file")
    if not stat.S_ISREG(info.st_mode):
        raise Text2SQLDataError(f"{where}: {what} {path} is not a regular file (a pipe or a device?)")
    if limit is not None and info.st_size > limit:
        raise Text2SQLDataError(
            f"{where}: {what} {path} is {info.st_size:,} bytes, more than the {limit >> 20} MiB allowed"
        )


def _database_of(row: dict, where: str, folder: Path, databases: Path) -> tuple[str, Path]:
    """The item's (db_id, database file), the file resolved and inside ``databases``."""
    base = databases.resolve()
    if row.get("db_path"):
        given = row["db_path"]
        if not isinstance(given, str) or "\x00" in given:
            raise Text2SQLDataError(f"{where}: 'db_path' must be a relative path, got {given!r}")
        relative = Path(given)
        if relative.is_absolute() or ".." in relative.parts:
            raise Text2SQLDataError(
                f"{where}: 'db_path' {given!r} must be relative to the questions file's folder, "
                f"without '..' (databases stay inside {base})"
            )
        path = folder / relative
        db_id = row.get("db_id") or relative.stem
        _check_label(db_id, "db_id", where)
    else:
        db_id = row.get("db_id")
        if not isinstance(db_id, str) or not is_plain_name(db_id):
            raise Text2SQLDataError(f"{where}: 'db_id' must be a plain database name, got {db_id!r}")
        _check_label(db_id, "db_id", where)
        flat, nested = databases / f"{db_id}.sqlite", databases / db_id / f"{db_id}.sqlite"
        path = nested if nested.is_file() and not flat.is_file() else flat
    if not path.exists():
        raise Text2SQLDataError(f"{where}: unknown database {db_id!r}: no SQLite file at {path}")
    resolved = path.resolve()
    if not resolved.is_relative_to(base):
        raise Text2SQLDataError(
            f"{where}: database {db_id!r} resolves to {resolved}, outside the databases folder {base} "
            "(a symbolic link?)"
        )
    _regular_file(resolved, f"database {db_id!r}", where)
    return str(db_id), resolved


MAX_LABEL_CHARS = 200


def _is_text(value: str) -> bool:
    """Whether ``value`` can be written as UTF-8 (JSON's "\\ud800" escape decodes to a lone
    surrogate, which no file, prompt or report can hold)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_label(value, key: str, where: str) -> None:
    """An id, group or db_id names the item in case ids, reports and TSV files: a string (or,
    for ``id``, a whole number) of at most ``MAX_LABEL_CHARS`` characters, none of them a
    control character (a tab or a newline would break a line of a report)."""
    if value is None or value == "":
        return
    if isinstance(value, int) and not isinstance(value, bool) and key == "id":
        value = str(value)
    if not isinstance(value, str):
        raise Text2SQLDataError(f"{where}: {key!r} must be a string, got {type(value).__name__}")
    if len(value) > MAX_LABEL_CHARS:
        raise Text2SQLDataError(f"{where}: {key!r} of {len(value):,} characters (at most {MAX_LABEL_CHARS})")
    if any(ch.isspace() and ch != " " or not ch.isprintable() for ch in value):
        raise Text2SQLDataError(f"{where}: {key!r} {value[:60]!r} holds a control character or a line break")


def _lines(text: str):
    """(line number, line) of ``text``, split on the line ends JSONL allows ("\\n", "\\r\\n")
    only: U+2028 or U+0085 inside a JSON string is a character of it, not a line break."""
    for number, line in enumerate(text.split("\n"), 1):
        yield number, line.removesuffix("\r")


def load_items(path: Path, databases: Path | None = None) -> list[SQLItem]:
    """Every item of the JSONL file ``path``, in file order; every problem is an error naming
    the file and line: not UTF-8, not JSON, a missing field, an unknown database, no items."""
    path = Path(path)
    databases = Path(databases) if databases else path.parent
    _regular_file(path, "questions file", "text2sql.path", MAX_QUESTIONS_BYTES)
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_QUESTIONS_BYTES + 1)
    except OSError as e:
        raise Text2SQLDataError(f"text2sql.path: {path} cannot be read ({e.strerror})") from None
    if len(raw) > MAX_QUESTIONS_BYTES:
        raise Text2SQLDataError(f"text2sql.path: {path} is over {MAX_QUESTIONS_BYTES >> 20} MiB")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise Text2SQLDataError(f"{path}:{line}: not UTF-8 text (byte {e.start} of the file)") from None
    items: list[SQLItem] = []
    seen: dict[str, int] = {}
    for number, line in _lines(text):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise Text2SQLDataError(f"{where}: not valid JSON ({e.msg})") from None
        except RecursionError:
            raise Text2SQLDataError(f"{where}: not valid JSON here (nested too deeply)") from None
        if not isinstance(row, dict):
            raise Text2SQLDataError(f"{where}: expected a JSON object, got {type(row).__name__}")
        for key, value in row.items():
            if isinstance(value, str) and not _is_text(value):
                raise Text2SQLDataError(
                    f"{where}: {key!r} holds a lone surrogate (\\ud800-\\udfff), not text"
                )
        missing = [k for k in ("question", "query") if not isinstance(row.get(k), str) or not row[k].strip()]
        if not row.get("db_id") and not row.get("db_path"):
            missing.append("db_id (or db_path)")
        if missing:
            raise Text2SQLDataError(f"{where}: missing {', '.join(missing)}")
        if len(row["question"]) > MAX_QUESTION_CHARS:
            raise Text2SQLDataError(
                f"{where}: question of {len(row['question']):,} characters "
                f"(at most {MAX_QUESTION_CHARS:,}; a question is a sentence or a paragraph)"
            )
        db_id, db_path = _database_of(row, where, path.parent, databases)
        for key in ("id", "group"):
            _check_label(row.get(key), key, where)
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
                where,
            )
        )
    if not items:
        raise Text2SQLDataError(f"{path}: holds no items (one JSON object per line)")
    return items


def read_schema(db_id: str, db_path: Path) -> Schema:
    """The tables, columns and foreign keys of a SQLite file, read-only, creating nothing
    beside it (:func:`harness.sql.opening.connect_readonly`)."""
    try:
        conn = connect_readonly(db_path.resolve())
    except (sqlite3.Error, OSError, ValueError) as e:
        raise Text2SQLDataError(f"{db_path}: not a readable SQLite database ({e})") from None
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
    gold_errors: dict[str, str]  # item id -> why its gold query cannot be the reference (a data error)


def check_gold_queries(items, timeout_s: float) -> dict[str, str]:
    """Item id -> a one-line data error, for each item whose gold query does not run (fails,
    times out, is too big, or is refused as not one read-only SELECT) on its database."""
    errors = {}
    for item in items:
        outcome = execute_readonly(item.db_path, item.gold_sql, timeout_s=timeout_s)
        if not outcome.ok:
            errors[item.item_id] = (
                f"{item.where}: item {item.item_id!r}: its gold query is a data error "
                f"({outcome.kind}: {outcome.error})"
            )
    return errors


def check_prompt_lengths(
    items, prompts: dict[str, str], tokenizer, context: int, max_new_tokens: int
) -> None:
    """Refuse, before any model work, a prompt that with ``max_new_tokens`` does not fit the
    model's ``context``: one error naming the first such item (and how many more)."""
    too_long = []
    for item in items:
        if item.item_id not in prompts:
            continue
        n = len(tokenizer(prompts[item.item_id], add_special_tokens=False)["input_ids"])
        if n + max_new_tokens > context:
            too_long.append((item, n))
    if too_long:
        item, n = too_long[0]
        more = f" ({len(too_long) - 1} more items too)" if len(too_long) > 1 else ""
        raise Text2SQLDataError(
            f"{item.where}: item {item.item_id!r}: its prompt is {n:,} tokens, and with max_new_tokens "
            f"= {max_new_tokens} it does not fit the model's context of {context:,} tokens{more}; "
            "shorten the question, or use a smaller database (the schema is in the prompt)"
        )
