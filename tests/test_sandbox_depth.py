"""The sandbox's defences in depth, each with a test that fails when it alone is removed:
the worker's own address-space cap, the interpreter flags it starts with (-I -S), the frame-size
limit and the rows unpickler on the caller's side, extension loading switched off, and the
result comparison under the same deadline as the prediction."""

from __future__ import annotations

import collections
import pickle
import random
import socket
import sqlite3
import struct
import time
from pathlib import Path

import pytest

import harness.sql.sandbox_frames as frames
import harness.sql.sandbox_pool as pool
import harness.sql.sandbox_query as query
from harness.sql import compare_results, execute_readonly, execution_match
from tests.sandbox_helpers import build_tiny_db


@pytest.fixture()
def db(tmp_path) -> Path:
    return build_tiny_db(tmp_path / "db" / "tiny.sqlite")


@pytest.fixture()
def fresh_workers():
    """Workers started by the test itself (with what it changed), stopped after it."""
    pool._stop_workers()
    yield
    pool._stop_workers()


def _worker_pid() -> int:
    return next(iter(pool._LIVE)).proc.pid


def test_the_worker_caps_its_own_address_space(db, fresh_workers):
    assert execute_readonly(db, "SELECT 1").ok
    limits = Path(f"/proc/{_worker_pid()}/limits").read_text()
    line = next(x for x in limits.splitlines() if x.startswith("Max address space"))
    assert line.split()[3:5] == [str(pool._WORKER_ADDRESS_SPACE)] * 2


def test_a_row_past_the_address_space_fails_in_the_worker_not_the_machine(db, fresh_workers, monkeypatch):
    # 255 values of 1 MB: SQLite's copy, Python's row and its pickle come to about 650 MB of
    # address space. Under a 450 MiB cap the worker runs out of memory; without a cap of its
    # own, the row is built and then refused as too big for the caller.
    monkeypatch.setattr(pool, "_WORKER_ADDRESS_SPACE", 450 << 20)
    wide = "SELECT " + ", ".join(["randomblob(1000000)"] * 255)
    outcome = execute_readonly(db, wide, timeout_s=30)
    assert outcome.kind == "error" and "out of memory" in outcome.error, outcome
    assert execute_readonly(db, "SELECT 1").ok  # the worker, or a fresh one, still answers


def test_the_worker_runs_isolated_without_site(db, fresh_workers, tmp_path, monkeypatch):
    # A module on PYTHONPATH named like one the worker imports would run inside it without -I;
    # the site module (and with it every .pth file of site-packages) would run without -S.
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    marker = tmp_path / "imported"
    (shadow / "struct.py").write_text(f"open({str(marker)!r}, 'w').close()\nfrom _struct import *\n")
    monkeypatch.setenv("PYTHONPATH", str(shadow))
    assert execute_readonly(db, "SELECT 1").ok
    assert not marker.exists()
    argv = Path(f"/proc/{_worker_pid()}/cmdline").read_bytes().split(b"\0")
    assert b"-I" in argv and b"-S" in argv
    modules = execute_readonly(db, "SELECT 1")  # the worker is alive and answering
    assert modules.ok


def test_a_frame_larger_than_its_limit_is_refused_before_it_is_read():
    ours, theirs = socket.socketpair()
    try:
        theirs.sendall(struct.pack("!Q", 1 << 60))
        with pytest.raises(frames._Lost, match="a frame of"):
            frames._recv_frame(ours, time.monotonic() + 2, 1 << 20)
    finally:
        ours.close()
        theirs.close()


def test_the_rows_unpickler_names_no_class():
    # A frame that names a class (any class, so never one that runs code) is refused.
    frame = bytearray(pickle.dumps(("rows", [(collections.OrderedDict(),)])))
    with pytest.raises(pickle.UnpicklingError, match="names collections.OrderedDict"):
        frames._unpack(frame)
    assert frames._unpack(bytearray(pickle.dumps(("rows", [(1, 2.0, "x", b"y", None)])))) == (
        "rows",
        [(1, 2.0, "x", b"y", None)],
    )


class _RecordingConnection:
    """Stands in for a connection whose sqlite3 can load extensions (this Python's cannot)."""

    def __init__(self):
        self.calls = []

    def enable_load_extension(self, on):
        self.calls.append(("enable_load_extension", on))

    def setlimit(self, *args):
        self.calls.append(("setlimit", *args))

    def execute(self, sql):
        self.calls.append(("execute", sql))


def test_harden_switches_extension_loading_off_where_it_exists():
    conn = _RecordingConnection()
    query._harden(conn, 1 << 20)
    assert ("enable_load_extension", False) in conn.calls
    assert conn.calls.index(("enable_load_extension", False)) == 0


def test_the_authorizer_denies_loading_an_extension():
    assert (
        query._authorize(sqlite3.SQLITE_FUNCTION, None, "load_extension", None, None) == sqlite3.SQLITE_DENY
    )


def _latin_squares(n: int = 13):
    gold = [tuple((i + j) % n for j in range(n)) for i in range(n)]
    symbols = list(range(n))
    random.Random(1).shuffle(symbols)
    pred = [tuple(symbols[(2 * i + 3 * j) % n] for j in range(n)) for i in range(n)]
    return gold, pred


def test_the_comparison_stops_at_its_deadline():
    gold, pred = _latin_squares()
    start = time.monotonic()
    verdict = compare_results(gold, pred, ordered=False, deadline=start + 0.5)
    assert not verdict.ok and verdict.reason.startswith("prediction timed out")
    assert time.monotonic() - start < 1.5


def test_a_latin_square_gets_its_verdict_within_the_limit(tmp_path):
    gold, pred = _latin_squares()
    path = tmp_path / "latin.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (" + ", ".join(f"c{j}" for j in range(13)) + ")")
    conn.executemany("INSERT INTO t VALUES (" + ", ".join("?" * 13) + ")", gold)
    conn.commit()
    conn.close()
    values = "VALUES " + ", ".join("(" + ", ".join(map(str, row)) + ")" for row in pred)
    start = time.monotonic()
    verdict = execution_match(path, "SELECT * FROM t", values, timeout_s=1.0)
    assert time.monotonic() - start < 1.0 + 1.0 + 1.0  # gold's limit, the prediction's, one spare
    assert not verdict.ok and "time limit" in verdict.reason
