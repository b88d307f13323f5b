"""What the SQL sandbox's tests measure: a tiny database, this process's children, and the CPU
time of the whole process tree (scripts/bench_sandbox.py keeps its own copy: scripts do not
import from tests/)."""

from __future__ import annotations

import os
import resource
import sqlite3
import time
from pathlib import Path


def build_tiny_db(path: Path, *, non_utf8_row: bool = False) -> Path:
    """``path``: table ``t`` of 100 rows (id, name, age); with ``non_utf8_row`` one more whose
    name is not UTF-8, as some Spider databases have."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, age INTEGER)")
    conn.executemany("INSERT INTO t VALUES (?, ?, ?)", [(i, f"n{i}", 20 + i % 30) for i in range(100)])
    if non_utf8_row:
        conn.execute("INSERT INTO t VALUES (1000, CAST(X'FF41' AS TEXT), 1)")
    conn.commit()
    conn.close()
    return path


def children() -> set[int]:
    """The live child processes of every thread of this process."""
    out: set[int] = set()
    for task in Path("/proc/self/task").iterdir():
        out |= set(map(int, (task / "children").read_text().split()))
    return out


def tree_cpu_s() -> float:
    """CPU seconds of this process and of every child, live or reaped."""
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = time.process_time() + reaped.ru_utime + reaped.ru_stime
    tick = os.sysconf("SC_CLK_TCK")
    for pid in children():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total
