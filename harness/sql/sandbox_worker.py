"""The sandbox's worker process: its loop reads a job, runs it (harness.sql.sandbox_query) and
streams the rows and the verdict back, under an address-space cap and a watchdog. Started by
harness.sql.sandbox_pool in a fresh interpreter that imports only the standard library and the
files of this folder.
"""

from __future__ import annotations

import os
import pickle
import socket
import sqlite3
import threading
import time

from harness.sql.sandbox_frames import _Lost, _recv_frame, _send_frame
from harness.sql.sandbox_query import (
    _WORKER_ADDRESS_SPACE,
    _WORKER_SQLITE_HEAP,
    MAX_SQL_BYTES,
    _Job,
    _run_job,
    _SocketSink,
)

_ORPHAN_S = 1.0  # a worker whose caller is gone stops itself this long after the deadline


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
