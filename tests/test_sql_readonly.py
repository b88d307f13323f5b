"""execute_readonly: each defence by itself, then the behaviour callers rely on.

Every defence has a test that fails when that defence alone is taken out of the sandbox
(harness/sql/sandbox*.py).
The defences overlap (the authorizer also blocks writes that mode=ro blocks), so those tests
call the worker's own code in this process (``_execute_in_process``) or its parts
(``_open_readonly``, ``_harden``) with the other defences out of the way. The hostile suite
(tests/test_sql_hostile.py) runs everything together through the worker process.
"""

import sqlite3
import time
from pathlib import Path

import pytest

import harness.sql.sandbox_pool as pool
import harness.sql.sandbox_query as sql
import harness.sql.sandbox_worker as worker_process
from harness.files import file_sha256
from harness.sql import (
    MAX_SQL_BYTES,
    database_file,
    execute_readonly,
    execution_match,
    extract,
    lexing,
    match,
    official,
)
from tests.sandbox_helpers import build_tiny_db, tree_cpu_s

TIMEOUT_S = 0.5


@pytest.fixture()
def db(tmp_path) -> Path:
    return build_tiny_db(tmp_path / "db" / "tiny.sqlite", non_utf8_row=True)


def _open_read_write(path: Path, immutable: bool = False) -> sqlite3.Connection:
    """What _open_readonly would be without mode=ro."""
    return sqlite3.connect(path, isolation_level=None, check_same_thread=False)


def _allow_everything(*args) -> int:
    return sqlite3.SQLITE_OK


# --- mode=ro ---------------------------------------------------------------------------------


def test_read_only_connection_refuses_writes(db):
    before = file_sha256(db)
    conn = sql._open_readonly(db)
    try:
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            conn.execute("DELETE FROM t")
    finally:
        conn.close()
    assert file_sha256(db) == before


def test_read_only_connection_never_creates_a_missing_file(tmp_path):
    missing = tmp_path / "wta_1" / "wta_1.sqlite"
    missing.parent.mkdir()
    with pytest.raises(sqlite3.OperationalError):
        sql._open_readonly(missing)
    assert not missing.exists()


def test_mode_ro_alone_stops_a_write_the_statement_check_lets_through(db, monkeypatch):
    monkeypatch.setattr(sql, "_authorize", _allow_everything)
    before = file_sha256(db)
    kind, error, _ = sql._execute_in_process(db, "WITH x AS (SELECT 1) DELETE FROM t")
    assert kind == "forbidden" and "readonly" in error
    assert file_sha256(db) == before


# --- the authorizer ----------------------------------------------------------------------------


def test_authorizer_alone_stops_a_write(db, monkeypatch):
    monkeypatch.setattr(sql, "_open_readonly", _open_read_write)
    before = file_sha256(db)
    kind, error, _ = sql._execute_in_process(db, "WITH x AS (SELECT 1) DELETE FROM t")
    assert kind == "forbidden" and "not authorized" in error
    assert file_sha256(db) == before


def test_authorizer_denies_pragma_functions_and_extension_loading(db):
    for statement in ("SELECT * FROM pragma_table_info('t')", "SELECT load_extension('/nonexistent')"):
        kind, error, _ = sql._execute_in_process(db, statement)
        assert kind == "forbidden" and "not authorized" in error, statement
    # SQLite's default already refuses load_extension, so the call above alone cannot tell
    # whether the authorizer denied it: ask the authorizer itself.
    for function in ("load_extension", "fts3_tokenizer"):
        assert sql._authorize(sqlite3.SQLITE_FUNCTION, None, function, None, None) == sqlite3.SQLITE_DENY


# --- the statement check -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "statement, words",
    [
        ("EXPLAIN SELECT * FROM t", "only SELECT queries may run; this one starts with EXPLAIN"),
        ("EXPLAIN QUERY PLAN SELECT * FROM t", "this one starts with EXPLAIN"),
        ("SELECT 1; SELECT 2", "more than one statement"),
    ],
)
def test_statement_check_refuses_what_the_other_defences_allow(db, statement, words):
    # EXPLAIN reads nothing that the authorizer or mode=ro would stop.
    kind, error, _ = sql._execute_in_process(db, statement)
    assert kind == "forbidden" and words in error


# --- the time limit ----------------------------------------------------------------------------

COUNT_TO_30M = (
    "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 30000000) "
    "SELECT count(*) FROM r"
)


def test_progress_handler_stops_a_long_query_at_the_deadline(db):
    # Without the handler this query runs for seconds and returns "ok".
    start = time.perf_counter()
    kind, _, _ = sql._execute_in_process(db, COUNT_TO_30M, timeout_s=0.3)
    assert kind == "timeout"
    assert time.perf_counter() - start < 1.0


def test_stuck_worker_is_killed_and_nothing_runs_after_the_verdict(db):
    # One SQLite step that takes many seconds: the progress handler never gets to run.
    bomb = "SELECT length(printf('%.*c', 2147483647, 'x'))"
    assert execute_readonly(db, "SELECT 1").ok  # a worker is started before we measure
    start = time.perf_counter()
    outcome = execute_readonly(db, bomb, timeout_s=TIMEOUT_S)
    took = time.perf_counter() - start
    assert outcome.kind == "timeout" and "stopped" in outcome.error
    assert took <= TIMEOUT_S + 1.0
    cpu = tree_cpu_s()
    time.sleep(1.0)
    assert tree_cpu_s() - cpu < 0.1, "CPU was spent after the verdict"
    assert execute_readonly(db, "SELECT 2").rows == [(2,)]  # a fresh worker takes over


def test_text_work_happens_in_the_worker_under_the_time_limit(db, monkeypatch):
    # The caller's process must not touch the text beyond measuring it: were it to collapse
    # or check the statement itself, these would stall it.
    def stall(*args, **kwargs):
        time.sleep(30)

    stalled = ("_collapse", "_tokens", "_statement_problem", "_join_operators", "strip_distinct", "_prepare")
    for name in stalled:
        # Each module binds the names it uses: patch every module where the name is looked up.
        users = [module for module in (lexing, official, sql, extract, match) if hasattr(module, name)]
        assert users, name
        for module in users:
            monkeypatch.setattr(module, name, stall)
    start = time.perf_counter()
    verdict = execution_match(db, "SELECT count(*) FROM t", "SELECT 1" + "-1" * 30_000, keep_distinct=False)
    assert not verdict.ok and "Expression tree is too large" in verdict.reason
    assert time.perf_counter() - start < 5.0


def test_orphaned_worker_stops_itself(db):
    # A worker whose caller never collects the answer (the caller died) ends by itself.
    worker = pool._Worker()
    try:
        job = sql._Job(str(db), "SELECT length(printf('%.*c', 2147483647, 'x'))", timeout_s=0.2)
        worker.send(job)
        worker.proc.wait(timeout=0.2 + worker_process._ORPHAN_S + 2.0)
        assert worker.proc.returncode == 3
    finally:
        worker.kill()


# --- the size cap on the text ------------------------------------------------------------------


def test_text_over_the_size_cap_is_refused_at_once_with_its_size(db):
    start = time.perf_counter()
    outcome = execute_readonly(db, "SELECT 1" + "-1" * 1_000_000, timeout_s=TIMEOUT_S)
    assert outcome.kind == "forbidden"
    assert "2,000,008 characters" in outcome.error and "64 KiB" in outcome.error
    assert time.perf_counter() - start < 0.5


def test_size_cap_counts_utf8_bytes(db):
    emoji = "SELECT '" + "\U0001f600" * (MAX_SQL_BYTES // 4) + "'"  # under the cap in characters
    outcome = execute_readonly(db, emoji)
    assert outcome.kind == "forbidden" and "bytes" in outcome.error
    assert execute_readonly(db, "SELECT '" + "x" * (MAX_SQL_BYTES - 20) + "'").ok


# --- the length limit, the row cap, the memory cap -------------------------------------------


@pytest.mark.parametrize(
    "value", ["randomblob(5000000)", "zeroblob(5000000)", "replace(hex(zeroblob(600000)), '0', 'ab')"]
)
def test_length_limit_caps_each_value(db, value):
    kind, error, _ = sql._execute_in_process(db, f"SELECT length({value})", max_value_bytes=1 << 20)
    assert kind == "error" and "too big" in error and "1048576 bytes" in error


def test_length_limit_cuts_printf_short(db):
    # printf gives up at the limit and returns NULL, not an error.
    bomb = "SELECT length(printf('%.*c', 5000000, 'x'))"
    assert sql._execute_in_process(db, bomb, max_value_bytes=1 << 20) == ("ok", None, [(None,)])


def test_row_cap_is_exact(db):
    assert execute_readonly(db, "SELECT id FROM t WHERE id < 5", max_rows=5).ok
    capped = execute_readonly(db, "SELECT id FROM t WHERE id < 6", max_rows=5)
    assert capped.kind == "too_many_rows" and "5 rows" in capped.error


ROWS_2000 = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 2000) "


@pytest.mark.parametrize(
    "select, characters",
    [
        # 2,000 rows of 500 four-byte characters: 1,000,000 characters, 4 MB as Python holds them.
        ("SELECT printf('%.*c', 500, char(128512)) FROM r", 1_000_000),
        # 2,000 rows of 200 floats: no characters at all, about 13 MB in Python.
        ("SELECT " + ", ".join(["n * 1.5"] * 200) + " FROM r", 0),
    ],
    ids=["four-byte characters", "numbers"],
)
def test_memory_cap_counts_what_python_holds(db, select, characters):
    cap = 2 << 20  # more than the characters, less than what they cost
    assert characters < cap
    kind, error, _ = sql._execute_in_process(db, ROWS_2000 + select, max_result_bytes=cap)
    assert kind == "too_many_rows" and "2 MiB of memory" in error
    through_worker = execute_readonly(db, ROWS_2000 + select, max_result_bytes=cap)
    assert through_worker.kind == "too_many_rows"
    assert execute_readonly(db, ROWS_2000 + select, max_result_bytes=64 << 20).ok


def test_rows_in_transit_count_against_the_memory_cap(db):
    # One 8 MB row fits a 12 MB cap as objects, but not together with its frame in transit.
    row = "SELECT " + ", ".join(["printf('%.*c', 1000000, 'x')"] * 8)
    assert sql._execute_in_process(db, row, max_result_bytes=12 << 20)[0] == "ok"
    assert execute_readonly(db, row, max_result_bytes=12 << 20).kind == "too_many_rows"
    assert execute_readonly(db, row, max_result_bytes=24 << 20).ok


def test_worker_sqlite_heap_is_capped_and_kept_off_disk(db):
    # Sorting 1.5 million small blobs (300 MB) needs more than the worker's SQLite heap: out of
    # memory. With temporary files allowed, SQLite would write them all to one and succeed.
    big_sort = (
        "SELECT count(*) FROM (WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r "
        "WHERE n < 1500000) SELECT randomblob(200) AS b FROM r ORDER BY b)"
    )
    outcome = execute_readonly(db, big_sort, timeout_s=30)
    assert outcome.kind == "error" and "out of memory" in outcome.error


# --- extension loading, attached databases ---------------------------------------------------


@pytest.mark.skipif(
    not hasattr(sqlite3.Connection, "enable_load_extension"),
    reason="this Python's sqlite3 cannot load extensions at all, so there is nothing to switch off",
)
def test_harden_switches_extension_loading_off(db):
    conn = sql._open_readonly(db)
    try:
        conn.enable_load_extension(True)
        sql._harden(conn, 1 << 20)
        with pytest.raises(sqlite3.OperationalError, match="not authorized"):
            conn.execute("SELECT load_extension('/nonexistent/evil')")
    finally:
        conn.close()


def test_harden_allows_no_attached_database(db, tmp_path):
    copy = tmp_path / "copy.sqlite"
    conn = sql._open_readonly(db)
    try:
        sql._harden(conn, 1 << 20)
        with pytest.raises(sqlite3.OperationalError, match="too many attached databases"):
            conn.execute(f"ATTACH DATABASE '{db}' AS other")
        # VACUUM INTO works on a read-only database; its output file is attached first.
        with pytest.raises(sqlite3.OperationalError, match="too many attached databases"):
            conn.execute(f"VACUUM INTO '{copy}'")
    finally:
        conn.close()
    assert not copy.exists()


# --- behaviour callers rely on -----------------------------------------------------------------


def test_select_works_and_reuses_the_worker(db):
    first = execute_readonly(db, "SELECT count(*) FROM t;")
    assert first.ok and first.kind == "ok" and first.error is None and first.rows == [(101,)]
    worker = pool._IDLE[-1]
    start = time.perf_counter()
    for _ in range(20):
        assert execute_readonly(db, "SELECT name FROM t WHERE id = 3").rows == [("n3",)]
        assert pool._IDLE[-1] is worker
    assert time.perf_counter() - start < 2.0


def test_invalid_utf8_is_replaced_not_fatal(db):
    outcome = execute_readonly(db, "SELECT name FROM t WHERE id = 1000")
    assert outcome.ok
    assert outcome.rows == [("\ufffdA",)]


def test_values_of_every_type_come_back(db):
    outcome = execute_readonly(db, "SELECT 1, 2.5, 'é', X'00FF', NULL, 9223372036854775807")
    assert outcome.rows == [(1, 2.5, "é", b"\x00\xff", None, 9223372036854775807)]


@pytest.mark.parametrize("missing", ["wta_1/wta_1.sqlite", "no_folder/x.sqlite"])
def test_missing_database_is_an_error_and_creates_nothing(tmp_path, missing):
    path = tmp_path / missing
    if missing.startswith("wta_1"):
        path.parent.mkdir()  # the folder exists but the file does not: connect() would create it
    outcome = execute_readonly(path, "SELECT 1")
    assert outcome.kind == "error" and str(path) in outcome.error
    assert not path.exists()


@pytest.mark.parametrize(
    "statement, kind",
    [
        ("", "error"),
        ("   -- only a comment", "error"),
        ("SELECT * FROM nosuch", "error"),
        ("SELECT name FROM", "error"),
        ("SELECT 'a\x00b'", "error"),
        ("SELECT '\ud800'", "error"),
        ("SELECT * FROM t WHERE id = ?", "error"),
        ("'SELECT 1'", "forbidden"),
        (None, "error"),
    ],
)
def test_bad_sql_never_raises(db, statement, kind):
    outcome = execute_readonly(db, statement)
    assert not outcome.ok and outcome.kind == kind and outcome.error


def test_trailing_semicolon_and_comment_are_one_statement(db):
    assert execute_readonly(db, "SELECT count(*) FROM t; -- done").rows == [(101,)]


# --- database_file -------------------------------------------------------------------------------


def test_database_file_of_a_plain_name(tmp_path):
    (tmp_path / "database" / "concert_singer").mkdir(parents=True)
    path = database_file(tmp_path, "concert_singer")
    assert path == (tmp_path / "database" / "concert_singer" / "concert_singer.sqlite").resolve()
    assert database_file(tmp_path, "wta_1").name == "wta_1.sqlite"  # need not exist


@pytest.mark.parametrize("db_id", ["../x", "a/b", "..", ".", "", "/etc/passwd", "a\\b", "x\x00", "..x"])
def test_database_file_refuses_names_that_are_not_plain(tmp_path, db_id):
    with pytest.raises(ValueError) as err:
        database_file(tmp_path, db_id)
    assert repr(db_id) in str(err.value)


def test_database_file_refuses_a_symlink_out_of_the_folder(tmp_path):
    (tmp_path / "elsewhere" / "x").mkdir(parents=True)
    (tmp_path / "spider" / "database").mkdir(parents=True)
    link = tmp_path / "spider" / "database" / "x"
    link.symlink_to(tmp_path / "elsewhere" / "x", target_is_directory=True)
    with pytest.raises(ValueError, match="'x'.*outside"):
        database_file(tmp_path / "spider", "x")


def test_database_file_follows_a_symlink_that_stays_inside(tmp_path):
    base = tmp_path / "spider" / "database"
    (base / "real").mkdir(parents=True)
    (base / "alias").symlink_to(base / "real", target_is_directory=True)
    assert database_file(tmp_path / "spider", "alias") == (base / "real" / "alias.sqlite").resolve()
