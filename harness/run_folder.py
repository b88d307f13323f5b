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
