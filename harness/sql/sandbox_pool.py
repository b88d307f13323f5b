"""The sandbox's caller side: a pool of worker processes, each started isolated, reused from one
query to the next, and killed at the deadline (harness.sql.sandbox). Only the standard library
and this folder's modules.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pickle
import socket
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path

from harness.sql.sandbox_frames import _Late, _Lost, _recv_frame, _send_frame, _unpack
from harness.sql.sandbox_query import _WORKER_ADDRESS_SPACE, _Job

_GRACE_S = 0.25  # how long past the deadline we wait for the worker to report before killing it
_STARTUP_S = 60.0  # a worker that is not ready by then is broken, not slow


def _took_longer(timeout_s: float, note: str = "") -> str:
    return f"took longer than {timeout_s:g} s" + (f" ({note})" if note else "")


# The worker is harness/sql/sandbox_worker.py, with the files of this folder that it imports,
# run in a fresh interpreter that imports nothing else: no harness package, no site-packages,
# and no environment variables that steer Python. Empty stand-ins for the packages take the place of
# their ``__init__`` files, which never run: ``harness`` finds no module, ``harness.sql`` only
# the files of this folder (``sys.argv[1]``).
_BOOT = (
    "import importlib, sys, types\n"
    "for name, path in (('harness', []), ('harness.sql', [sys.argv[1]])):\n"
    "    package = sys.modules[name] = types.ModuleType(name)\n"
    "    package.__path__ = path\n"
    "importlib.import_module('harness.sql.sandbox_worker')._serve(int(sys.argv[2]), int(sys.argv[3]))\n"
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
