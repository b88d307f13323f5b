"""The sandbox's worker side (harness.sql.sandbox): everything that touches the SQL text or the
database. The checks on the text, the rewrites, the read-only connection and its limits, and
fetching rows into a sink under the caps on rows and memory. Runs in the worker process
(harness.sql.sandbox_worker), or in this one for tests (:func:`_execute_in_process`); only the
standard library and the stdlib-only modules of this folder.
"""

from __future__ import annotations

import pickle
import re
import socket
import sqlite3
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from harness.sql.compare import gold_orders_rows
from harness.sql.lexing import _collapse, _tokens
from harness.sql.official import (
    _join_operators,
    _official_postprocess,
    _official_remove_distinct,
    _replace_cur_year,
    strip_distinct,
)
from harness.sql.opening import readable_database, readonly_uri
from harness.sql.sandbox_frames import _send_frame

# SQL text longer than this is refused before any work on it. Spider's longest gold query is
# under 1 KiB, so a real query never comes near; a longer "query" is runaway model output.
MAX_SQL_BYTES = 64 << 10

# Only these authorizer actions are allowed: reading tables and columns, calling functions,
# and recursive CTEs. Everything else (writes, ATTACH/DETACH, PRAGMA, transactions, and the
# ATTACH that VACUUM INTO performs) is denied. An allow-list cannot miss a new write action.
_ALLOWED_ACTIONS = frozenset(
    {
        sqlite3.SQLITE_SELECT,
        sqlite3.SQLITE_READ,
        sqlite3.SQLITE_FUNCTION,
        getattr(sqlite3, "SQLITE_RECURSIVE", 33),
    }
)
_DENIED_FUNCTIONS = frozenset({"load_extension", "readfile", "writefile", "edit", "fts3_tokenizer"})
_READ_STATEMENTS = {"SELECT", "WITH", "VALUES"}
_PROGRESS_STEPS = 100  # SQLite VM instructions between two looks at the clock
_MAX_COLUMNS = 256  # with the value cap, bounds the memory of one result row
_MAX_RESULT_BYTES = 256 << 20  # Python memory of one result held by the caller (see _held_size)
# SQLite's own heap in a worker: sorts, temporary tables and the page cache of one query.
_WORKER_SQLITE_HEAP = 256 << 20
# The worker's whole address space (RLIMIT_AS): its SQLite heap, one result row in Python (at
# most 256 columns of the value cap) and that row pickled, the interpreter, with room to spare.
# Whatever gets past the caps above, the worker fails with "out of memory", not the machine.
_WORKER_ADDRESS_SPACE = 1 << 30
_BATCH_BYTES = 1 << 20  # rows travel from the worker in batches of about this much memory
_EMPTY = "empty query: nothing to execute"
# Allocator rounding and headers: what one object costs beyond sys.getsizeof. Objects from
# _MMAP_BYTES up get whole pages of their own.
_PER_OBJECT = 16
_MMAP_BYTES = 128 << 10
_PAGE = 4096


def _authorize(action, arg1, arg2, db_name, trigger) -> int:
    if action not in _ALLOWED_ACTIONS:
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() in _DENIED_FUNCTIONS:
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


def _statement_problem(sql: str) -> str | None:
    """Why ``sql`` may not run (not one read-only statement), or None."""
    # Literals become '' and comments a space, so that only real code is looked at.
    code = "".join(
        sql[a:b] if kind == "code" else (" " if kind == "comment" else "''") for kind, a, b in _tokens(sql)
    )
    end = code.find(";")
    if end >= 0 and code[end:].replace(";", "").strip():
        return "more than one statement; only a single SELECT may run"
    m = re.match(r"[\s(]*([A-Za-z_]+)", code)
    if not m:
        return f"only SELECT queries may run; this one starts with {code.strip()[:20]!r}"
    if m.group(1).upper() not in _READ_STATEMENTS:
        return f"only SELECT queries may run; this one starts with {m.group(1).upper()}"
    return None


def _size_problem(sql: str) -> str | None:
    """Why ``sql`` is too long to look at, or None. Costs O(1) for any longer text."""
    limit = f"the limit is {MAX_SQL_BYTES >> 10} KiB; Spider's longest gold query is under 1 KiB"
    if len(sql) > MAX_SQL_BYTES:
        return f"query text of {len(sql):,} characters is too long ({limit})"
    size = len(sql.encode("utf-8", "surrogatepass"))
    if size > MAX_SQL_BYTES:
        return f"query text of {size:,} bytes is too long ({limit})"
    return None


@dataclass(frozen=True)
class _Job:
    """One query for a worker; travels as a plain dict."""

    path: str
    sql: str
    timeout_s: float
    max_rows: int = 100_000
    max_value_bytes: int = 1 << 20
    max_result_bytes: int = _MAX_RESULT_BYTES
    rewrite: str = "none"  # "none", "harness" or "official": see _prepare
    strip_distinct: bool = False
    prediction: bool = False
    immutable: bool = False  # open with immutable=1 (a WAL-mode file: see harness.sql.opening)


def _prepare(job: _Job) -> tuple[str, bool, tuple[str, str] | None]:
    """(text to run, whether it orders rows, (kind, reason) when it may not run)."""
    sql = job.sql
    if job.rewrite == "official":
        if job.prediction:
            sql = sql.replace("value", "1")  # evaluation.py, on the prediction line only
        sql = _official_postprocess(sql)
        if job.strip_distinct:
            sql = _official_remove_distinct(sql)
    elif job.rewrite == "harness":
        if job.strip_distinct:
            sql = strip_distinct(sql)
        sql = _join_operators(sql)
    orders = gold_orders_rows(sql)
    if job.rewrite == "official":
        sql = _replace_cur_year(sql)  # exec_on_db_ does it after order_matters is decided
    if not _collapse(sql):
        if job.rewrite == "official" and job.sql.strip():
            # Only comments and semicolons: Python's sqlite3 runs that as an empty result (or
            # refuses ";;"), and so does the official evaluator; it is harmless, so let it.
            return sql, orders, None
        return sql, orders, ("error", _EMPTY)
    problem = _statement_problem(sql)
    return sql, orders, (("forbidden", problem) if problem else None)


def _open_readonly(path: Path, immutable: bool = False) -> sqlite3.Connection:
    """A connection that cannot write ``path`` and never creates it, nor anything beside it."""
    # mode=ro rather than immutable=1 where it creates nothing (rollback mode): immutable skips
    # locking and change detection, so it could read a file mid-write. A WAL-mode file comes
    # here as immutable (harness.sql.opening), since mode=ro would make its -wal and -shm.
    return sqlite3.connect(
        readonly_uri(path, immutable), uri=True, isolation_level=None, check_same_thread=False
    )


def _harden(conn: sqlite3.Connection, max_value_bytes: int) -> None:
    """Limits that hold whatever the statement is: no extensions, no attached databases, no
    value over ``max_value_bytes``, at most 256 columns, temporary data in (capped) memory."""
    if hasattr(conn, "enable_load_extension"):  # absent when Python's sqlite3 cannot load any
        conn.enable_load_extension(False)
    conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, max_value_bytes)
    conn.setlimit(sqlite3.SQLITE_LIMIT_COLUMN, _MAX_COLUMNS)
    # VACUUM INTO attaches its output file too, so this also stops it writing a copy.
    conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
    # Sorts and temporary tables of a huge query then fail against the heap limit instead of
    # filling the temporary folder.
    conn.execute("PRAGMA temp_store = MEMORY")


def _set_deadline(conn: sqlite3.Connection, deadline: float) -> None:
    conn.set_progress_handler(lambda: int(time.monotonic() > deadline), _PROGRESS_STEPS)


def _run_job(job: _Job, deadline: float, sink: _Sink) -> tuple[str, str | None, bool]:
    """(kind, error, orders) of ``job``; rows go to ``sink``. Runs in the worker; never raises
    on bad SQL."""
    try:
        sql, orders, problem = _prepare(job)
    except Exception as e:  # the promise is "never raises on bad SQL"
        return "error", f"{type(e).__name__}: {e}", False
    if problem:
        return problem[0], problem[1], orders
    if time.monotonic() > deadline:
        return "timeout", None, orders
    path = Path(job.path)
    try:
        conn = _open_readonly(path, job.immutable)
    except Exception as e:  # reported as the outcome, never raised
        return "error", f"cannot open {path} read-only: {e}", orders
    try:
        _harden(conn, job.max_value_bytes)
        # Spider has text that is not valid UTF-8; decode it instead of failing the query (the
        # official evaluator drops the bytes it cannot decode).
        errors = "ignore" if job.rewrite == "official" else "replace"
        conn.text_factory = lambda b: b.decode("utf-8", errors=errors)
        _set_deadline(conn, deadline)
        # Last, so that our own set-up above (a PRAGMA) is not subject to it.
        conn.set_authorizer(_authorize)
        kind, error = _fetch(conn, sql, deadline, job, sink)
        return kind, error, orders
    except Exception as e:
        return "error", f"{type(e).__name__}: {e}", orders
    finally:
        conn.close()


def _held_size(row: tuple) -> int:
    """Bytes that ``row`` occupies once in a list: the tuple, each value, allocator overhead
    and the list slot. Shared objects (None, small ints) are counted as if they were not."""
    sizes = list(map(sys.getsizeof, row))
    size = sys.getsizeof(row) + sum(sizes) + (len(row) + 1) * _PER_OBJECT + 8
    if max(sizes, default=0) >= _MMAP_BYTES:
        size += _PAGE * sum(s >= _MMAP_BYTES for s in sizes)
    return size


def _fetch(conn: sqlite3.Connection, sql: str, deadline: float, job: _Job, sink: _Sink) -> tuple:
    try:
        held = 0  # memory of the rows already handed to the sink
        batch: list[tuple] = []
        batch_size = 0
        too_big = f"result larger than {job.max_result_bytes / (1 << 20):g} MiB of memory"
        for count, row in enumerate(conn.execute(sql), 1):
            if count > job.max_rows:
                return "too_many_rows", f"more than {job.max_rows} rows"
            batch.append(row)
            batch_size += _held_size(row)
            if held + batch_size > job.max_result_bytes:
                return "too_many_rows", too_big
            if batch_size >= _BATCH_BYTES:
                if not sink.send(batch, job.max_result_bytes - held - batch_size):
                    return "too_many_rows", too_big
                held, batch, batch_size = held + batch_size, [], 0
        if batch and not sink.send(batch, job.max_result_bytes - held - batch_size):
            return "too_many_rows", too_big
        return "ok", None
    except (sqlite3.Error, sqlite3.Warning) as e:
        message = str(e)
        if time.monotonic() > deadline and "interrupt" in message:
            return "timeout", None
        if "not authorized" in message or "readonly" in message or "one statement" in message:
            return "forbidden", message
        if "too big" in message:
            return "error", f"{message} (values are capped at {job.max_value_bytes} bytes)"
        return "error", message
    except MemoryError:
        return "error", (
            f"out of memory (a worker's SQLite heap is capped at {_WORKER_SQLITE_HEAP >> 20} MiB, "
            f"its address space at {_WORKER_ADDRESS_SPACE >> 20} MiB)"
        )
    except Exception as e:  # the promise is "never raises on bad SQL"
        return "error", f"{type(e).__name__}: {e}"


class _Sink:
    """Where rows go: here, a list (the worker code run in this process, as tests do)."""

    def __init__(self) -> None:
        self.rows: list[tuple] = []

    def send(self, batch: list[tuple], room: int) -> bool:
        self.rows.extend(batch)
        return True


class _SocketSink(_Sink):
    """Rows sent to the caller, one frame per batch. The caller holds a frame's bytes, and a
    copy of the value being unpacked, while it unpacks them: they must fit in the ``room``
    left under the memory cap."""

    def __init__(self, sock: socket.socket, max_value_bytes: int) -> None:
        super().__init__()
        self.sock = sock
        self.max_value_bytes = max_value_bytes

    def send(self, batch: list[tuple], room: int) -> bool:
        frame = pickle.dumps(("rows", batch), protocol=pickle.HIGHEST_PROTOCOL)
        if len(frame) + self.max_value_bytes > room:
            return False
        _send_frame(self.sock, frame)
        return True


def _execute_in_process(db_path: str | Path, sql: str, **job) -> tuple[str, str | None, list]:
    """(kind, error, rows): the worker's own code, run in this process. For tests, which
    take away one defence at a time; callers use :func:`execute_readonly`."""
    job.setdefault("timeout_s", 5.0)
    sink = _Sink()
    target, immutable = readable_database(Path(db_path))
    job.setdefault("immutable", immutable)
    kind, error, _ = _run_job(_Job(str(target), sql, **job), time.monotonic() + job["timeout_s"], sink)
    return kind, error, sink.rows if kind == "ok" else []
