"""A run's folder, ``reports/<run-id>/``: its name (checked before anything is written), whether
it already holds a run, the lock that lets one run at a time use it, and the record ``harness
bench`` leaves in it for the report."""

from __future__ import annotations

import fcntl
import os
import re
import secrets
import time
from pathlib import Path

from harness.files import atomic_write

COMMAND_RECORD = "command.json"  # written by `harness bench` into the run folder before the benchmarks
LOCK_FILE = ".lock"  # held (flock) by the one process that runs into the folder

# A run id is one folder name: letters, digits, '.', '_' and '-', not starting with '.' or '-'.
RUN_ID_MAX = 100
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class RunFolderError(ValueError):
    """A run id or run folder cannot be used; the message is one line naming it."""


def new_run_id() -> str:
    """A timestamp and a random suffix: two runs started in the same second get two folders."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


def run_id_problem(text: str) -> str | None:
    """Why ``text`` cannot be a run id (one line naming it), or None."""
    shown = repr(text) if len(text) <= 60 else repr(text[:60]) + "..."
    if len(text) > RUN_ID_MAX:
        return f"--run-id {shown}: {len(text)} characters, at most {RUN_ID_MAX}"
    if not _RUN_ID.fullmatch(text):
        return (
            f"--run-id {shown}: use letters, digits, '.', '_' and '-', starting with a letter or digit "
            "(a folder name under the report folder, not a path)"
        )
    return None


def check_run_id(text: str) -> str:
    """``text`` if it is a plain run id, else :class:`RunFolderError` (one line)."""
    problem = run_id_problem(text)
    if problem:
        raise RunFolderError(problem)
    return text


def holds_a_run(run_dir: Path) -> bool:
    """Whether a run already wrote here (its results or its phase records)."""
    return (run_dir / "results.jsonl").exists() or (run_dir / "phases").is_dir()


class RunLock:
    """An exclusive, non-blocking lock on a run folder, held until :meth:`release` or the
    process ends (the kernel drops it then, so a killed run never blocks the next)."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.run_dir / LOCK_FILE, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise RunFolderError(f"{self.run_dir}: cannot use it as the run folder ({e.strerror})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunFolderError(
                f"{self.run_dir}: another run is writing into this folder now; give another --run-id"
            ) from None
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def is_locked(run_dir: Path) -> bool:
    """Whether a run holds ``run_dir``'s lock now (looked at without taking it for long)."""
    path = Path(run_dir) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


INCOMPLETE = "INCOMPLETE"  # in a run folder while its run has not finished well: says why


def mark_incomplete(run_dir: Path, why: str) -> None:
    """Say, in the run folder, that its run is not (or not yet) a finished report, and why."""
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(run_dir / INCOMPLETE, why.rstrip() + "\n")


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
