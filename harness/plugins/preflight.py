"""Checks made once, before the first case: problems of the experiment, its adapters and its
folders are one line each, not an error per case (or a traceback, or a run that measures nothing).

:func:`check_before_first_case` runs on the pytest controller (and on each xdist worker, which
skips the run folder's lock: the controller holds it):

* an experiment with no variants, or no tasks, is refused (it would measure nothing);
* every variant's adapter folder: a readable ``adapter_config.json`` (a JSON object), adapter
  weights that are whole (a ``.safetensors`` file's header read and its size checked against
  it), and a ``training_summary.json`` that is a JSON object, each problem naming the file;
* the report folder: the run folder can be made and written, and this run takes its lock
  (one run per id at a time: :class:`harness.records.run_folder.RunLock`);
* the cache folder can be made and written.

:func:`check_session` also shows the prediction cache's warnings (a line skipped as torn or
changed) on the terminal past pytest's output capture, so that ``pytest benchmarks/`` shows
them as ``harness bench`` (which runs pytest with ``-s``) does.

Everything here is standard library and reads only small files (a safetensors header, a few
JSON files); nothing loads a model.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import tempfile
from pathlib import Path

import pytest

from harness.models.adapters import SUMMARY_NAME
from harness.records.run_folder import RunFolderError, RunLock

_SAFETENSORS_HEADER_MAX = 100 << 20  # the format's own cap on the JSON header
_HELD: list[RunLock] = []  # the locks this process holds, until it ends


class PreflightError(ValueError):
    """A problem of the experiment found before the first case; one line naming its file or key."""


def check_before_first_case(exp, run_dir: Path, cache_root: Path, *, worker: bool = False) -> None:
    """Raise :class:`PreflightError` for the first problem found (see the module docstring)."""
    source = getattr(exp, "source", "the experiment")
    if not exp.variants:
        raise PreflightError(f"{source}: no variants to measure; add a [[variants]] table")
    if not exp.tasks:
        raise PreflightError(f"{source}: no tasks to run; list them in [experiment] tasks")
    for variant in exp.variants:
        if variant.adapter:
            check_adapter_folder(variant.name, Path(variant.adapter))
    check_writable_folder(Path(cache_root), "cache folder (cache_dir / --cache-dir)")
    if not worker:
        try:
            _HELD.append(RunLock(Path(run_dir)).acquire())
        except RunFolderError as e:
            raise PreflightError(str(e)) from None
        check_writable_folder(Path(run_dir), "run folder (report_dir / --report-dir)")


def check_session(config: pytest.Config, exp, run_dir: Path, cache_root: Path, *, worker: bool) -> None:
    """:func:`check_before_first_case` for a pytest session: a problem is a usage error, one
    line and exit status 4, before any case runs. The run folder's lock is let go when the
    session ends."""
    try:
        check_before_first_case(exp, run_dir, cache_root, worker=worker)
    except PreflightError as e:
        raise pytest.UsageError(str(e)) from None
    config.add_cleanup(release_run_locks)
    show_on_terminal(config, logging.getLogger("harness.records.cache"))


class _TerminalHandler(logging.Handler):
    """Writes a record on pytest's terminal, with output capture suspended around it."""

    def __init__(self, capture, terminal):
        super().__init__(logging.WARNING)
        self.capture, self.terminal = capture, terminal

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = f"harness: warning: {record.getMessage()}"
            if self.capture is None:
                self.terminal.write_line(line, yellow=True)
                return
            with self.capture.global_and_fixture_disabled():
                self.terminal.write_line(line, yellow=True)
        except Exception:  # a log line must never fail a case
            self.handleError(record)


def show_on_terminal(config: pytest.Config, logger: logging.Logger) -> None:
    """Send ``logger``'s warnings to the terminal of this pytest process for the session (where
    there is one: an xdist worker has none, and keeps the default of stderr)."""
    terminal = config.pluginmanager.get_plugin("terminalreporter")
    if terminal is None or hasattr(config, "workerinput"):
        return
    handler = _TerminalHandler(config.pluginmanager.get_plugin("capturemanager"), terminal)
    logger.addHandler(handler)
    config.add_cleanup(lambda: logger.removeHandler(handler))


def release_run_locks() -> None:
    """Let go of the run folders this process holds (tests; a process's end does it too)."""
    while _HELD:
        _HELD.pop().release()


def check_adapter_folder(variant: str, adapter: Path) -> None:
    """An adapter folder whose files a load would trip on: one line naming the file. An absent
    folder is not checked here (``harness bench`` trains it; loading it says what is missing)."""
    if not adapter.is_dir():
        return
    config = adapter / "adapter_config.json"
    if config.exists():
        _json_object(config, f"variant {variant!r}: adapter config")
    summary = adapter / SUMMARY_NAME
    if summary.exists():
        _json_object(summary, f"variant {variant!r}: training summary")
    for weights in sorted(adapter.glob("*.safetensors")):
        problem = safetensors_problem(weights)
        if problem:
            raise PreflightError(f"{weights}: variant {variant!r}: adapter weights {problem}; train it again")


def _json_object(path: Path, what: str) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise PreflightError(f"{path}: {what} is not readable JSON ({_one_line(e)})") from None
    if not isinstance(data, dict):
        raise PreflightError(f"{path}: {what} is not a JSON object")
    return data


def safetensors_problem(path: Path) -> str | None:
    """Why the file is not a whole safetensors file (header unreadable, or shorter than the
    tensors its header lists), or None."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                return "are truncated (no header)"
            (n,) = struct.unpack("<Q", head)
            if n > _SAFETENSORS_HEADER_MAX or 8 + n > size:
                return "are truncated (header cut short)"
            header = json.loads(f.read(n).decode("utf-8"))
    except OSError as e:
        return f"cannot be read ({e.strerror})"
    except (UnicodeDecodeError, ValueError):
        return "have an unreadable header"
    if not isinstance(header, dict):
        return "have an unreadable header"
    ends = [
        t["data_offsets"][1]
        for key, t in header.items()
        if key != "__metadata__" and isinstance(t, dict) and _offsets(t.get("data_offsets"))
    ]
    if len(ends) != len([k for k in header if k != "__metadata__"]):
        return "have an unreadable header"
    if 8 + n + max(ends, default=0) > size:
        return f"are truncated ({size:,} bytes; the header lists {8 + n + max(ends):,})"
    return None


def _offsets(value) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, int) and v >= 0 for v in value)
        and value[0] <= value[1]
    )


def check_writable_folder(folder: Path, what: str) -> None:
    """``folder`` can be made and a file written in it (then removed)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=folder, prefix=".preflight-")
        os.close(fd)
        os.unlink(name)
    except OSError as e:
        raise PreflightError(f"{folder}: the {what} cannot be written ({e.strerror or e})") from None


def _one_line(e: Exception) -> str:
    return " ".join(str(e).split())
