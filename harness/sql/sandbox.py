"""execute_readonly: one SQL statement on a SQLite file that cannot be changed.

The only side effect of :mod:`harness.sql`. The statement runs in a worker process (reused from
one call to the next, killed at the deadline), behind defences that each stop writes by
themselves (a ``mode=ro`` connection, an allow-list authorizer) and caps on the text, the rows
and the memory of the result; :func:`execute_readonly` returns an :class:`ExecOutcome` and never
raises on bad model SQL. This module is the caller's entry point; the sandbox's other jobs each
have a module: the worker's side, all work on the text and the database
(:mod:`harness.sql.sandbox_query`), frames over a socket pair (:mod:`harness.sql.sandbox_frames`),
the caller's pool of workers (:mod:`harness.sql.sandbox_pool`) and the worker's loop
(:mod:`harness.sql.sandbox_worker`).

The worker process loads its modules, and the modules they import (:mod:`harness.sql.lexing`,
:mod:`harness.sql.official`, :mod:`harness.sql.compare`, :mod:`harness.sql.opening`), from this
folder without the harness package or site-packages (see ``sandbox_pool._BOOT``): those modules
may import only the standard library and each other.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from harness.sql.opening import readable_database
from harness.sql.sandbox_pool import _run_in_worker, _took_longer
from harness.sql.sandbox_query import _EMPTY, _MAX_RESULT_BYTES, MAX_SQL_BYTES, _Job, _size_problem

__all__ = ["EXEC_KINDS", "MAX_SQL_BYTES", "ExecOutcome", "execute_readonly"]

EXEC_KINDS = ("ok", "error", "timeout", "too_many_rows", "forbidden")


@dataclass(frozen=True)
class ExecOutcome:
    """What running one query gave. ``kind`` is one of ``EXEC_KINDS``; ``rows`` is empty
    unless ``ok``; ``error`` says what went wrong, for a human."""

    ok: bool
    rows: list
    error: str | None
    kind: str
    elapsed_s: float


def execute_readonly(
    db_path: str | Path,
    sql: str,
    *,
    timeout_s: float = 5.0,
    max_rows: int = 100_000,
    max_value_bytes: int = 1 << 20,
    max_result_bytes: int = _MAX_RESULT_BYTES,
) -> ExecOutcome:
    """Run one SELECT on the SQLite file ``db_path`` without any way to change it.

    Defences against writes, each sufficient by itself: the file is opened with ``mode=ro``
    (which also never creates a missing file), and an authorizer allows only reads and
    function calls (no PRAGMA, ATTACH, DETACH, VACUUM INTO, load_extension). Besides,
    extension loading is off, no database can be attached, and the text must be a single
    statement starting with SELECT, WITH or VALUES (refused as "forbidden" otherwise).

    Limits:

    * Text: more than ``MAX_SQL_BYTES`` (64 KiB) of SQL is refused as "forbidden" before any
      work on it; all other work on the text happens in the worker, under the time limit.
    * Time: ``timeout_s`` of wall time for everything. The query runs in a worker process
      (reused from one call to the next); SQLite's progress handler stops it at the deadline,
      and a worker stuck in one long step (``printf('%.*c', 2147483647, 'x')`` loops once per
      character even after the length limit has failed it) is killed shortly after, so
      nothing keeps running once the verdict is given.
    * Values: ``max_value_bytes`` per text or blob (``randomblob(2000000000)`` fails at once),
      at most 256 columns.
    * Rows: ``max_rows``.
    * Memory: the returned rows may hold at most ``max_result_bytes`` (default 256 MiB) of
      Python memory, counted as ``sys.getsizeof`` of every row and value plus allocator
      overhead, so numbers and 4-byte characters count what they really cost; rows in transit
      count too, so the caller's peak memory growth stays under the cap. The worker's SQLite
      heap (sorts, temporary tables) is capped at 256 MiB, in memory only, never in files.

    Never raises on bad SQL: problems come back as ``kind`` "error", "timeout",
    "too_many_rows" or "forbidden" with a message. POSIX only (the worker is a subprocess
    talking over a socket pair).
    """
    outcome, _ = _execute(
        db_path,
        sql,
        timeout_s=timeout_s,
        max_rows=max_rows,
        max_value_bytes=max_value_bytes,
        max_result_bytes=max_result_bytes,
    )
    return outcome


def _execute(db_path: str | Path, sql: str, **job) -> tuple[ExecOutcome, bool]:
    """(outcome, whether the rewritten text orders its rows) of running ``sql``. The only
    work on the text here is measuring its length; the rest is done by the worker."""
    start = time.perf_counter()

    def outcome(kind: str, error: str | None = None, rows: list | None = None) -> ExecOutcome:
        return ExecOutcome(kind == "ok", rows or [], error, kind, time.perf_counter() - start)

    if not isinstance(sql, str):
        return outcome("error", _EMPTY), False
    problem = _size_problem(sql)
    if problem:
        return outcome("forbidden", problem), False
    path = Path(db_path)
    if not path.is_file():
        return outcome("error", f"database file not found: {path}"), False
    try:
        target, immutable = readable_database(path.resolve())
    except (OSError, ValueError) as e:
        return outcome("error", f"cannot open {path} read-only: {e}"), False
    kind, error, rows, orders = _run_in_worker(_Job(str(target), sql, immutable=immutable, **job))
    if kind == "timeout" and error is None:
        error = _took_longer(job["timeout_s"])
    return outcome(kind, error, rows), orders
