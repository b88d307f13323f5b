"""Measure what hostile statements cost the caller of harness.sql.execute_readonly.

For each statement kind: the verdict (kind) and how long it took, the CPU spent by the caller
and its workers in the seconds after the verdict (must be ~0: nothing runs on), the growth of
the caller's peak RSS during the call (must stay under the 256 MiB memory cap), and the growth
of the worker's peak RSS. Each statement runs in a fresh caller process, so that memory freed
by one statement and kept by the allocator does not hide the next one's growth. Limits are the
harness defaults (5 s, 100,000 rows, 256 MiB) unless --timeout says otherwise; the database is a
tiny one built in a temporary folder.

    .venv/bin/python scripts/bench_sandbox.py [--timeout 5] [--after 2] [--only SUBSTRING]

Linux only (reads /proc). Takes about a minute.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import harness.sql.sandbox_pool as pool
import harness.sql.sandbox_query as query
from harness.sql import execute_readonly

ROWS = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < {n}) "
BOMB = "length(printf('%.*c', 2147483647, 'x'))"
FOREVER = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r"
BIG_SORT = ROWS.format(n=300) + "SELECT hex(zeroblob(500000)) AS b FROM r ORDER BY random()"

STATEMENTS = {
    "plain select": "SELECT * FROM t",
    "text over the size cap (2 MB)": "SELECT 1" + "-1" * 1_000_000,
    "long expression under the size cap": "SELECT 1" + "-1" * 30_000,
    "recursive cte without end": FOREVER,
    "cartesian rows": ROWS.format(n=1000) + "SELECT * FROM r a, r b",
    "printf bomb": f"SELECT {BOMB}",
    "4 printf bombs": "SELECT " + " || ".join([BOMB] * 4),
    "256 printf bombs": "SELECT " + " || ".join([BOMB] * 256),
    "2,000 rows of 262,143 emoji": ROWS.format(n=2000) + "SELECT printf('%.*c', 262143, char(128512)) FROM r",
    "100k rows x 256 floats": ROWS.format(n=100_000) + "SELECT " + ", ".join(["n * 1.5"] * 256) + " FROM r",
    "zeroblob rows (1 MB each)": ROWS.format(n=2000) + "SELECT zeroblob(1000000) FROM r",
    "one row of 200 values of 1 MB": "SELECT " + ", ".join(["printf('%.*c', 1000000, 'x')"] * 200),
    "sort beyond the worker heap": f"SELECT count(*) FROM ({BIG_SORT})",
}


def _status_kib(pid: int | str, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def _reset_peak(pid: int | str) -> None:
    # Writing 5 to clear_refs resets VmHWM (peak RSS) to the current RSS.
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


def _tree_cpu_s() -> float:
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = time.process_time() + children.ru_utime + children.ru_stime
    tick = os.sysconf("SC_CLK_TCK")
    for task in Path("/proc/self/task").iterdir():
        for pid in (task / "children").read_text().split():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except FileNotFoundError:
                continue
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def _build_db(folder: Path) -> Path:
    db = folder / "tiny.sqlite"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, age INTEGER)")
    conn.executemany("INSERT INTO t VALUES (?, ?, ?)", [(i, f"n{i}", 20 + i % 30) for i in range(100)])
    conn.commit()
    conn.close()
    return db


def measure(db: Path, statement: str, timeout_s: float, after_s: float) -> dict:
    """One statement, in this (fresh) process."""
    execute_readonly(db, "SELECT 1")  # a warm worker, as in a scoring run
    worker = pool._IDLE[-1]
    _reset_peak("self")
    _reset_peak(worker.proc.pid)
    rss_before = _status_kib("self", "VmRSS")
    worker_before = _status_kib(worker.proc.pid, "VmRSS")
    start = time.perf_counter()
    outcome = execute_readonly(db, statement, timeout_s=timeout_s)
    took = time.perf_counter() - start
    growth = _status_kib("self", "VmHWM") - rss_before
    try:
        worker_growth = (_status_kib(worker.proc.pid, "VmHWM") - worker_before) / 1024
    except (FileNotFoundError, ProcessLookupError):
        worker_growth = None  # killed at the deadline
    cpu = _tree_cpu_s()
    time.sleep(after_s)
    cpu_after = _tree_cpu_s() - cpu
    return {
        "kind": outcome.kind,
        "took": took,
        "cpu_after": cpu_after,
        "growth_mib": growth / 1024,
        "worker_mib": worker_growth,
        "error": outcome.error or f"{len(outcome.rows)} rows",
    }


def _run_one(name: str, timeout_s: float, after_s: float) -> dict:
    """``name`` measured in a fresh interpreter running this script."""
    argv = [sys.executable, __file__, "--one", name, "--timeout", str(timeout_s), "--after", str(after_s)]
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per query (the harness default)")
    parser.add_argument("--after", type=float, default=2.0, help="seconds of CPU watch after each verdict")
    parser.add_argument("--only", default=None, help="only statements whose name contains this")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: measure one, print JSON
    args = parser.parse_args(argv)
    if args.one:
        with tempfile.TemporaryDirectory() as tmp:
            result = measure(_build_db(Path(tmp)), STATEMENTS[args.one], args.timeout, args.after)
        pool._stop_workers()
        print(json.dumps(result))
        return 0
    print(
        f"limits: {args.timeout:g} s, 100000 rows, {query._MAX_RESULT_BYTES >> 20} MiB of result memory, "
        f"{query._WORKER_SQLITE_HEAP >> 20} MiB of worker SQLite heap; SQLite {sqlite3.sqlite_version}"
    )
    columns = ("verdict s", 9), ("CPU after", 9), ("RSS +MiB", 8), ("worker", 7)
    header = f"{'statement':36s} {'kind':14s} " + " ".join(f"{name:>{width}s}" for name, width in columns)
    print(header + "  error")
    print("-" * (len(header) + 40))
    for name in STATEMENTS:
        if args.only and args.only not in name:
            continue
        m = _run_one(name, args.timeout, args.after)
        worker = "killed" if m["worker_mib"] is None else f"{m['worker_mib']:.0f}"
        figures = f"{m['took']:9.2f} {m['cpu_after']:9.3f} {m['growth_mib']:8.1f} {worker:>7s}"
        print(f"{name:36s} {m['kind']:14s} {figures}  {m['error'][:40]}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
