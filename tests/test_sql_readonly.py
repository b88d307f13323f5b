"""execute_readonly against hostile SQL: nothing may change, nothing may hang.

Every statement runs on a tiny database built here and on a copy of a real Spider database
(when the Spider folder is present). After each one the database file must be byte-identical
(sha256), the folder must hold no new file, and the outcome must arrive within timeout + 1 s.
"""

import hashlib
import shutil
import sqlite3
import time
from pathlib import Path

import pytest

from harness.data.spider import SpiderDataError, database_path, find_spider_dir
from harness.sql import execute_readonly

TIMEOUT_S = 0.5

# (id, SQL with {t} = a table of the database and {dir} = its folder, accepted outcome kinds)
HOSTILE = [
    ("drop", "DROP TABLE {t}", {"forbidden"}),
    ("delete", "DELETE FROM {t}", {"forbidden"}),
    ("update", "UPDATE {t} SET rowid = rowid + 1", {"forbidden"}),
    ("insert", "INSERT INTO {t} SELECT * FROM {t}", {"forbidden"}),
    ("replace", "REPLACE INTO {t} SELECT * FROM {t}", {"forbidden"}),
    ("create table", "CREATE TABLE evil(x)", {"forbidden"}),
    ("create temp table", "CREATE TEMP TABLE evil AS SELECT 1", {"forbidden"}),
    ("create index", "CREATE INDEX evil ON {t}(rowid)", {"forbidden"}),
    ("alter", "ALTER TABLE {t} RENAME TO gone", {"forbidden"}),
    ("attach new file", "ATTACH DATABASE '{dir}/new.sqlite' AS evil", {"forbidden"}),
    ("detach", "DETACH DATABASE main", {"forbidden"}),
    ("vacuum", "VACUUM", {"forbidden"}),
    ("vacuum into", "VACUUM INTO '{dir}/copy.sqlite'", {"forbidden"}),
    ("pragma journal wal", "PRAGMA journal_mode = WAL", {"forbidden"}),
    ("pragma user_version", "PRAGMA user_version = 7", {"forbidden"}),
    ("pragma writable_schema", "PRAGMA writable_schema = ON", {"forbidden"}),
    ("pragma function", "SELECT * FROM pragma_table_info('{t}')", {"forbidden"}),
    ("begin exclusive", "BEGIN EXCLUSIVE", {"forbidden"}),
    ("reindex", "REINDEX", {"forbidden"}),
    ("analyze", "ANALYZE", {"forbidden"}),
    ("load_extension", "SELECT load_extension('{dir}/evil')", {"forbidden"}),
    ("writefile", "SELECT writefile('{dir}/out.txt', 'x')", {"forbidden", "error"}),
    ("two statements", "SELECT 1; DROP TABLE {t}", {"forbidden"}),
    ("two statements after comment", "SELECT 1 /* ; */; DELETE FROM {t} -- bye", {"forbidden"}),
    ("select then insert", "SELECT * FROM {t}; INSERT INTO {t} SELECT * FROM {t}", {"forbidden"}),
    ("cte delete", "WITH x AS (SELECT 1) DELETE FROM {t}", {"forbidden"}),
    ("cte insert", "WITH x AS (SELECT 1) INSERT INTO {t} SELECT * FROM {t}", {"forbidden"}),
    ("recursive forever", "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r", {"timeout"}),
    (
        "recursive rows",
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT n FROM r",
        {"too_many_rows", "timeout"},
    ),
    (
        "cross join count",
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 1000) "
        "SELECT count(*) FROM r a, r b, r c",
        {"timeout"},
    ),
    (
        "cross join rows",
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 1000) SELECT * FROM r a, r b",
        {"too_many_rows", "timeout"},
    ),
    ("huge blob", "SELECT randomblob(2000000000)", {"error"}),
    ("huge zeroblob", "SELECT zeroblob(2000000000)", {"error"}),
    (
        "doubling string",
        "WITH RECURSIVE r(s) AS (SELECT 'ab' UNION ALL SELECT s || s FROM r) SELECT length(s) FROM r",
        {"error", "timeout"},
    ),
    ("wide blobs", "SELECT randomblob(1000000), randomblob(1000000) FROM {t} a, {t} b, {t} c", {"too_many_rows", "timeout", "error"}),
    # One SQLite step that runs for seconds without calling the progress handler.
    ("long single step", "SELECT printf('%.*c', 300000000, 'x')", {"timeout"}),
]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _build_tiny_db(folder: Path) -> Path:
    folder.mkdir()
    db = folder / "tiny.sqlite"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, age INTEGER)")
    conn.executemany("INSERT INTO t VALUES (?, ?, ?)", [(i, f"n{i}", 20 + i % 30) for i in range(100)])
    # Bytes that are not UTF-8, as some Spider databases have.
    conn.execute("INSERT INTO t VALUES (1000, CAST(X'FF41' AS TEXT), 1)")
    conn.commit()
    conn.close()
    return db


@pytest.fixture(scope="module", params=["tiny", "spider_copy"])
def target(request, tmp_path_factory):
    """(database file, a table in it), in a folder of its own."""
    folder = tmp_path_factory.mktemp(request.param) / "db"
    if request.param == "tiny":
        return _build_tiny_db(folder), "t"
    try:
        source = database_path(find_spider_dir(), "concert_singer")
    except SpiderDataError as e:
        pytest.skip(f"no Spider folder, so no real database to copy: {e}")
    if not source.is_file():
        pytest.skip(f"{source} is absent")
    folder.mkdir()
    return Path(shutil.copy2(source, folder / source.name)), "singer"


@pytest.mark.parametrize("sql, kinds", [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE])
def test_hostile_sql_changes_nothing_and_returns_in_time(target, sql, kinds):
    db, table = target
    before_hash, before_files = _sha256(db), sorted(p.name for p in db.parent.iterdir())
    statement = sql.format(t=table, dir=db.parent)

    start = time.perf_counter()
    outcome = execute_readonly(db, statement, timeout_s=TIMEOUT_S)
    took = time.perf_counter() - start

    assert not outcome.ok and outcome.rows == []
    assert outcome.kind in kinds, f"{statement!r} gave {outcome.kind}: {outcome.error}"
    assert outcome.error
    assert took <= TIMEOUT_S + 1.0, f"{statement!r} took {took:.2f} s"
    assert _sha256(db) == before_hash
    assert sorted(p.name for p in db.parent.iterdir()) == before_files


def test_hostile_suite_is_large_enough():
    assert len(HOSTILE) >= 20


def test_select_still_works(target):
    db, table = target
    outcome = execute_readonly(db, f"SELECT count(*) FROM {table};", timeout_s=TIMEOUT_S)
    assert outcome.ok and outcome.kind == "ok" and outcome.error is None
    assert outcome.rows[0][0] > 0


def test_invalid_utf8_is_replaced_not_fatal(tmp_path):
    db = _build_tiny_db(tmp_path / "db")
    outcome = execute_readonly(db, "SELECT name FROM t WHERE id = 1000")
    assert outcome.ok
    assert outcome.rows == [("\ufffdA",)]


def test_row_cap_is_exact(tmp_path):
    db = _build_tiny_db(tmp_path / "db")
    assert execute_readonly(db, "SELECT id FROM t WHERE id < 5", max_rows=5).ok
    capped = execute_readonly(db, "SELECT id FROM t WHERE id < 6", max_rows=5)
    assert capped.kind == "too_many_rows" and "5 rows" in capped.error


@pytest.mark.parametrize("missing", ["wta_1/wta_1.sqlite", "no_folder/x.sqlite"])
def test_missing_database_is_an_error_and_creates_nothing(tmp_path, missing):
    db = tmp_path / missing
    if missing.startswith("wta_1"):
        db.parent.mkdir()  # the folder exists but the file does not: connect() would create it
    outcome = execute_readonly(db, "SELECT 1")
    assert outcome.kind == "error" and str(db) in outcome.error
    assert not db.exists()


@pytest.mark.parametrize(
    "sql, kind",
    [
        ("", "error"),
        ("   -- only a comment", "error"),
        ("SELECT * FROM nosuch", "error"),
        ("SELECT name FROM", "error"),
        ("SELECT 'a\x00b'", "error"),
        ("SELECT '\ud800'", "error"),
        ("SELECT * FROM t WHERE id = ?", "error"),
        ("'SELECT 1'", "forbidden"),
    ],
)
def test_bad_sql_never_raises(tmp_path, sql, kind):
    db = _build_tiny_db(tmp_path / "db")
    outcome = execute_readonly(db, sql)
    assert not outcome.ok and outcome.kind == kind and outcome.error


def test_trailing_semicolon_and_comment_are_one_statement(tmp_path):
    db = _build_tiny_db(tmp_path / "db")
    assert execute_readonly(db, "SELECT count(*) FROM t; -- done").rows == [(101,)]
