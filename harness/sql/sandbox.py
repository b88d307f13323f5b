"""execute_readonly: one SQL statement on a SQLite file that cannot be changed.

The only side effect of :mod:`harness.sql`. The statement runs in a worker process (reused from
one call to the next, killed at the deadline), behind defences that each stop writes by
themselves (a ``mode=ro`` connection, an allow-list authorizer) and caps on the text, the rows
and the memory of the result; :func:`execute_readonly` returns an :class:`ExecOutcome` and never
raises on bad model SQL. In order below: the caller's entry points, the worker's side (all work
on the text and the database), frames over a socket pair, the caller's pool of workers, and the
worker's loop (:func:`_serve`).

The worker process loads this module, and the modules it imports (:mod:`harness.sql.lexing`,
:mod:`harness.sql.official`, :mod:`harness.sql.compare`), from this folder without the harness
package or site-packages (see ``_BOOT``): this module and those may import only the standard
library and each other.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pickle
import re
import socket
import sqlite3
import struct
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
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

EXEC_KINDS = ("ok", "error", "timeout", "too_many_rows", "forbidden")

# SQL text longer than this is refused before any work on it. Spider's longest gold query is
# under 1 KiB, so a real query never comes near; a longer "query" is runaway model output.
MAX_SQL_BYTES = 64 << 10


@dataclass(frozen=True)
class ExecOutcome:
    """What running one query gave. ``kind`` is one of ``EXEC_KINDS``; ``rows`` is empty
    unless ``ok``; ``error`` says what went wrong, for a human."""

    ok: bool
    rows: list
    error: str | None
    kind: str
    elapsed_s: float


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
_GRACE_S = 0.25  # how long past the deadline we wait for the worker to report before killing it
_ORPHAN_S = 1.0  # a worker whose caller is gone stops itself this long after the deadline
_STARTUP_S = 60.0  # a worker that is not ready by then is broken, not slow
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


def _took_longer(timeout_s: float, note: str = "") -> str:
    return f"took longer than {timeout_s:g} s" + (f" ({note})" if note else "")


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


# --- the worker's side: everything that touches the SQL text or the database ----------------


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


# --- frames over a socket pair ---------------------------------------------------------------

_HEADER = struct.Struct("!Q")


class _Late(Exception):
    """The worker did not answer by the deadline."""


class _Lost(Exception):
    """The worker died or said something it should not."""


def _send_frame(sock: socket.socket, payload: bytes) -> None:
    sock.sendall(_HEADER.pack(len(payload)))
    sock.sendall(payload)


def _recv_exact(sock: socket.socket, n: int, deadline: float | None) -> bytearray:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise _Late()
            sock.settimeout(left)
        try:
            k = sock.recv_into(view[got:])
        except TimeoutError:
            raise _Late() from None
        if k == 0:
            raise _Lost("the worker closed its end")
        got += k
    return buf


def _recv_frame(sock: socket.socket, deadline: float | None, limit: int) -> bytearray:
    (n,) = _HEADER.unpack(_recv_exact(sock, _HEADER.size, deadline))
    if n > limit:
        raise _Lost(f"a frame of {n} bytes (at most {limit} expected)")
    return _recv_exact(sock, n, deadline)


class _BufferReader:
    """A file over a buffer, so that unpickling copies one value at a time, not the frame."""

    def __init__(self, buf: bytearray) -> None:
        self._view = memoryview(buf)
        self._pos = 0

    def read(self, n: int = -1) -> bytes:
        end = len(self._view) if n < 0 else min(self._pos + n, len(self._view))
        data = bytes(self._view[self._pos : end])
        self._pos = end
        return data

    def readinto(self, b) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def readline(self) -> bytes:
        rest = self._view[self._pos :]
        end = bytes(rest).find(b"\n")
        return self.read(len(rest) if end < 0 else end + 1)


class _RowsUnpickler(pickle.Unpickler):
    """Rows are tuples of int, float, str, bytes and None: no class may be named."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"a worker frame names {module}.{name}")


def _unpack(buf: bytearray):
    return _RowsUnpickler(_BufferReader(buf)).load()


# --- the caller's side: a pool of worker processes -------------------------------------------

# The worker is this very file, with the files of this folder that it imports, run in a fresh
# interpreter that imports nothing else: no harness package, no site-packages, and no
# environment variables that steer Python. Empty stand-ins for the packages take the place of
# their ``__init__`` files, which never run: ``harness`` finds no module, ``harness.sql`` only
# the files of this folder (``sys.argv[1]``).
_BOOT = (
    "import importlib, sys, types\n"
    "for name, path in (('harness', []), ('harness.sql', [sys.argv[1]])):\n"
    "    package = sys.modules[name] = types.ModuleType(name)\n"
    "    package.__path__ = path\n"
    "importlib.import_module('harness.sql.sandbox')._serve(int(sys.argv[2]), int(sys.argv[3]))\n"
)


# -I: isolated (no environment variables that steer Python, no user site, not the current
# folder on the path); -S: no site module, so no site-packages and no .pth file runs.
_INTERPRETER_FLAGS = ("-I", "-S")


class _Worker:
    """One worker process and our end of its socket pair."""

    def __init__(self) -> None:
        ours, theirs = socket.socketpair()
        folder = str(Path(__file__).resolve().parent)
        argv = [sys.executable, *_INTERPRETER_FLAGS, "-c", _BOOT, folder, str(theirs.fileno())]
        argv.append(str(_WORKER_ADDRESS_SPACE))
        try:
            self.proc = subprocess.Popen(
                argv,
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self.sock = ours
        _LIVE.add(self)
        try:
            ready = _unpack(_recv_frame(ours, time.monotonic() + _STARTUP_S, 1 << 10))
        except BaseException:
            self.kill()
            raise
        if ready != ("ready",):
            self.kill()
            raise _Lost(f"a worker started with {ready!r}")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """Stop the process now and reap it: nothing of a killed query runs on."""
        with contextlib.suppress(OSError):
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        self.sock.close()
        _LIVE.discard(self)

    def send(self, job: _Job) -> None:
        self.sock.settimeout(None)
        _send_frame(self.sock, pickle.dumps(asdict(job), protocol=pickle.HIGHEST_PROTOCOL))

    def answer(self, job: _Job, deadline: float) -> tuple[str, str | None, list | None, bool]:
        # A frame holds at most one result's worth of rows (see _SocketSink), plus a margin.
        limit = job.max_result_bytes + (1 << 20)
        rows: list[tuple] = []
        while True:
            message = _unpack(_recv_frame(self.sock, deadline, limit))
            if message[0] == "rows":
                rows.extend(message[1])
                continue
            if message[0] != "done":
                raise _Lost(f"an unknown frame {message[0]!r}")
            _, kind, error, orders = message
            return kind, error, (rows if kind == "ok" else None), orders


_POOL_LOCK = threading.Lock()
_IDLE: list[_Worker] = []
_LIVE: set[_Worker] = set()


def _take_worker() -> _Worker:
    with _POOL_LOCK:
        while _IDLE:
            worker = _IDLE.pop()
            if worker.alive():
                return worker
            worker.kill()
    return _Worker()


def _run_in_worker(job: _Job) -> tuple[str, str | None, list | None, bool]:
    try:
        worker = _take_worker()
        try:
            worker.send(job)
        except OSError:  # an idle worker died meanwhile: one fresh try
            worker.kill()
            worker = _Worker()
            worker.send(job)
    except (OSError, _Late, _Lost) as e:
        return "error", f"could not start a worker process for the query: {e}", None, False
    deadline = time.monotonic() + job.timeout_s + _GRACE_S
    try:
        result = worker.answer(job, deadline)
    except _Late:
        worker.kill()
        note = "one SQLite step did not return, so its worker process was stopped"
        return "timeout", _took_longer(job.timeout_s, note), None, False
    except (OSError, _Lost, pickle.UnpicklingError, EOFError) as e:
        worker.kill()
        return "error", f"the query's worker process failed: {e}", None, False
    with _POOL_LOCK:
        _IDLE.append(worker)
    return result


def _stop_workers() -> None:
    """Kill every worker of this process (at exit; tests that change what workers inherit)."""
    with _POOL_LOCK:
        _IDLE.clear()
        workers = list(_LIVE)
    for worker in workers:
        worker.kill()


def _forget_workers_after_fork() -> None:
    # A forked child must not share its parent's workers: drop them without killing them.
    global _POOL_LOCK
    _POOL_LOCK = threading.Lock()
    for worker in list(_LIVE):
        worker.sock.close()
    _IDLE.clear()
    _LIVE.clear()


atexit.register(_stop_workers)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_workers_after_fork)


# --- the worker process ----------------------------------------------------------------------


class _Watchdog(threading.Thread):
    """Ends the worker when a query runs far past its deadline: the caller, which kills it
    sooner, is gone. Sleeps without a timeout between queries, so an idle worker costs no CPU."""

    def __init__(self) -> None:
        super().__init__(name="watchdog", daemon=True)
        self._cond = threading.Condition()
        self._until: float | None = None

    def arm(self, until: float | None) -> None:
        with self._cond:
            self._until = until
            self._cond.notify()

    def run(self) -> None:
        with self._cond:
            while True:
                if self._until is None:
                    self._cond.wait()
                    continue
                left = self._until - time.monotonic()
                if left <= 0:
                    os._exit(3)
                self._cond.wait(left)


def _limit_address_space(limit: int) -> None:
    """Cap this process's address space at ``limit`` bytes (soft and hard: a query cannot lift it)."""
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _serve(fd: int, address_space: int = _WORKER_ADDRESS_SPACE) -> None:
    """The worker's loop: read a job, stream its rows and verdict back, until the caller
    closes its end."""
    import signal

    _limit_address_space(address_space)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the caller, which kills us
    sock = socket.socket(fileno=fd)
    # Process-wide, which is why it is set here and not in a caller's process.
    sqlite3.connect(":memory:").execute(f"PRAGMA hard_heap_limit = {_WORKER_SQLITE_HEAP}")
    watchdog = _Watchdog()
    watchdog.start()
    _send_frame(sock, pickle.dumps(("ready",)))
    while True:
        try:
            job = _Job(**pickle.loads(_recv_frame(sock, None, MAX_SQL_BYTES * 8 + (1 << 16))))
        except (_Lost, OSError):
            return
        deadline = time.monotonic() + job.timeout_s
        watchdog.arm(deadline + _ORPHAN_S)
        try:
            kind, error, orders = _run_job(job, deadline, _SocketSink(sock, job.max_value_bytes))
            _send_frame(sock, pickle.dumps(("done", kind, error, orders)))
        except OSError:
            return
        finally:
            watchdog.arm(None)
