"""The hostile suite: every statement of tests/data/hostile_sql.toml through execute_readonly.

The statements run on a copy of a tiny database built here, with the worker processes started
in a private working directory and temporary folder. After each one: the outcome kind is the
expected one, every byte of the database is unchanged, no file appeared anywhere under the
sandbox (the database's folder, its parent, the working directory, the temporary folder),
the verdict came within the time limit + 1 s, and (for timeouts) no CPU is spent after it.
Peak memory is measured by scripts/bench_sandbox.py, not here.
"""

from __future__ import annotations

import json
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

import harness.sql.sandbox_pool as pool
from harness.files import file_sha256
from harness.sql import EXEC_KINDS, execute_readonly
from tests.sandbox_helpers import build_tiny_db, children, tree_cpu_s

TIMEOUT_S = 0.75
DATA = Path(__file__).parent / "data" / "hostile_sql.toml"
STATEMENTS = tomllib.loads(DATA.read_text(encoding="utf-8"))["statement"]


@dataclass(frozen=True)
class Sandbox:
    root: Path
    db: Path
    cwd: Path
    tmp: Path
    children_before: frozenset  # this process's children before the suite (other tests' under xdist)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    folder, cwd, tmp = root / "parent" / "db", root / "cwd", root / "tmp"
    for path in (folder, cwd, tmp):
        path.mkdir(parents=True)
    db = build_tiny_db(folder / "tiny.sqlite")
    with pytest.MonkeyPatch.context() as mp:
        # Workers inherit the working directory and the temporary folder (SQLite reads TMPDIR):
        # start them afresh inside the sandbox, and again outside it afterwards.
        mp.chdir(cwd)
        mp.setenv("TMPDIR", str(tmp))
        mp.setenv("SQLITE_TMPDIR", str(tmp))
        mp.setattr(tempfile, "tempdir", str(tmp))
        pool._stop_workers()
        yield Sandbox(root, db, cwd, tmp, frozenset(children()))
        pool._stop_workers()


def _text(entry: dict, box: Sandbox) -> str:
    if "sql_json" in entry:
        text = json.loads(entry["sql_json"])
    elif "repeat" in entry:
        text = entry.get("prefix", "") + entry["repeat"] * entry["times"] + entry.get("suffix", "")
    else:
        text = entry["sql"]
    places = {
        "{t}": "t",
        "{db}": box.db,
        "{dir}": box.db.parent,
        "{parent}": box.db.parent.parent,
        "{cwd}": box.cwd,
        "{tmp}": box.tmp,
    }
    for key, value in places.items():
        text = text.replace(key, str(value))
    return text


def _limits(entry: dict) -> dict:
    limits = {}
    if "max_rows" in entry:
        limits["max_rows"] = entry["max_rows"]
    if "max_result_mib" in entry:
        limits["max_result_bytes"] = entry["max_result_mib"] << 20
    return limits


def _listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_the_suite_covers_every_kind_with_unique_ids():
    assert len(STATEMENTS) >= 100
    ids = [e["id"] for e in STATEMENTS]
    assert len(set(ids)) == len(ids)
    assert {e["kind"] for e in STATEMENTS} == set(EXEC_KINDS)
    for entry in STATEMENTS:
        assert sum(k in entry for k in ("sql", "sql_json", "repeat")) == 1, entry["id"]


@pytest.mark.parametrize("entry", STATEMENTS, ids=[e["id"] for e in STATEMENTS])
def test_hostile_statement(sandbox, entry):
    statement = _text(entry, sandbox)
    before_hash, before_files = file_sha256(sandbox.db), _listing(sandbox.root)

    # A statement whose verdict needs real work before the deadline (filling the worker's heap)
    # gets a longer limit, so that a busy machine does not turn its verdict into a timeout.
    timeout_s = entry.get("timeout_s", TIMEOUT_S)
    start = time.perf_counter()
    outcome = execute_readonly(sandbox.db, statement, timeout_s=timeout_s, **_limits(entry))
    took = time.perf_counter() - start

    assert outcome.kind == entry["kind"], f"{statement[:200]!r} gave {outcome.kind}: {outcome.error}"
    assert took <= timeout_s + 1.0, f"{statement[:200]!r} took {took:.2f} s"
    if outcome.kind != "ok":
        assert outcome.rows == [] and outcome.error
    if outcome.kind == "timeout":
        # A query still running would burn a whole core: 0.3 s of CPU in these 0.3 s. Less than
        # half of that leaves room for a busy machine's noise in this process's own accounting.
        cpu = tree_cpu_s()
        time.sleep(0.3)
        assert tree_cpu_s() - cpu < 0.15, "CPU was spent after the verdict"
    assert file_sha256(sandbox.db) == before_hash
    assert _listing(sandbox.root) == before_files


def test_nothing_runs_after_the_last_verdict(sandbox):
    # Runs after the statements (pytest keeps file order): whatever they started is over.
    cpu = tree_cpu_s()
    time.sleep(1.0)
    assert tree_cpu_s() - cpu < 0.3  # a query still running would burn about 1 s of CPU here
    live = {w.proc.pid for w in pool._LIVE}
    assert children() - sandbox.children_before <= live, "a process other than an idle worker is still around"
