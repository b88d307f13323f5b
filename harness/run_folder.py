"""A run's folder, ``reports/<run-id>/``: its name, whether it already holds a run, and the
record ``harness bench`` leaves in it for the report."""

from __future__ import annotations

import secrets
import time
from pathlib import Path

COMMAND_RECORD = "command.json"  # written by `harness bench` into the run folder before the benchmarks


def new_run_id() -> str:
    """A timestamp and a random suffix: two runs started in the same second get two folders."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


def holds_a_run(run_dir: Path) -> bool:
    """Whether a run already wrote here (its results or its phase records)."""
    return (run_dir / "results.jsonl").exists() or (run_dir / "phases").is_dir()


INCOMPLETE = "INCOMPLETE"  # in a run folder while its run has not finished well: says why


def mark_incomplete(run_dir: Path, why: str) -> None:
    """Say, in the run folder, that its run is not (or not yet) a finished report, and why."""
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = run_dir / f".{INCOMPLETE}.tmp"
    tmp.write_text(why.rstrip() + "\n", encoding="utf-8")
    tmp.replace(run_dir / INCOMPLETE)


def mark_complete(run_dir: Path) -> None:
    (run_dir / INCOMPLETE).unlink(missing_ok=True)


def incomplete_reason(run_dir: Path) -> str | None:
    """Why the run in ``run_dir`` is incomplete, or None if it finished (its results.json written
    last, the marker removed after it)."""
    marker = run_dir / INCOMPLETE
    if marker.is_file():
        return marker.read_text(encoding="utf-8").strip() or "marked incomplete"
    if not (run_dir / "results.json").is_file():
        return "it has no results.json"
    return None
