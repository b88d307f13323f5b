"""The results collector: one row per benchmark case as reports arrive, then the report.

Laid out like pytest's junitxml: a ``ResultsCollector`` kept in ``config.stash`` (only on the
controller, never on an xdist worker) records one :class:`harness.records.results.CaseResult`
per (variant, task, item) from ``pytest_runtest_logreport`` (harness/plugins/case_rows.py),
appends it to ``<run_dir>/results.jsonl`` as it arrives, and at the end of the session writes
the report (harness/report/document.py), checks the gates (harness/report/gates.py) once, and
sets the exit status (harness/plugins/exit_status.py). A run folder says whether its run is
complete: ``results.json`` is written last, and a run that has not finished well holds a file
``INCOMPLETE`` saying why (harness/records/run_folder.py). A session that ran no benchmark case
(the unit tests) writes no report and checks no gates.
"""

from __future__ import annotations

import json
import time
import traceback
from pathlib import Path
from typing import IO, Any

import pytest

from harness.files import OutputError
from harness.plugins.case_rows import row_of
from harness.plugins.exit_status import RunOutcome, exit_status, incomplete_reason
from harness.plugins.run_gates import load_gates_of, narrowed_by
from harness.plugins.session import experiment_of, gates_path_of, run_dir_of, run_id_of
from harness.records.manifest import collect_manifest
from harness.records.results import CaseResult, case_ref, marked_as_case
from harness.records.run_folder import COMMAND_RECORD, mark_complete, mark_incomplete
from harness.report.analysis import Analysis, analyze
from harness.report.cells import variant_labels
from harness.report.document import write_report
from harness.report.frontier import adapter_facts
from harness.report.gates import check_gates, gates_json
from harness.report.gates_file import GatesError
from harness.report.results_json import results_payload


class ResultsCollector:
    def __init__(self, config: pytest.Config):
        self.config = config
        self.rows: dict[tuple[str, str, str], CaseResult] = {}
        self.outcome = RunOutcome()
        self.started = time.time()
        self._jsonl: IO[str] | None = None
        self.analysis: Analysis | None = None
        self.gates_note = ""
        self.paths: dict[str, Path] = {}
        self.exitstatus: int = pytest.ExitCode.OK
        self.labels: dict = {}  # (variant, task) -> "variant (k-shot, load)"
        self.marked = False  # the run folder says "incomplete" until the report is written
        self.terminal: Any = None  # pytest's terminal reporter, for the last screen

    def run_dir(self) -> Path:
        return run_dir_of(self.config)

    def _append(self, row: CaseResult) -> None:
        if not self.marked:  # under xdist the controller collects nothing: its first row
            self._mark_started()
        path = self.run_dir() / "results.jsonl"
        try:
            if self._jsonl is None:
                self.run_dir().mkdir(parents=True, exist_ok=True)
                self._jsonl = open(path, "a", encoding="utf-8")
            self._jsonl.write(json.dumps(row.as_dict(), ensure_ascii=False) + "\n")
            self._jsonl.flush()
        except OSError as e:  # a full disk, say: one line, and the run stops with no report
            self.rows.clear()
            pytest.exit(f"harness: cannot write {path}: {e.strerror or e}; the run stops", returncode=3)

    # -- hooks: as reports arrive ---------------------------------------------------------
    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.outcome.other_failures.append(f"{report.nodeid or '<session>'} (collection)")

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.outcome == "rerun":  # pytest-rerunfailures: only the last attempt counts
            return
        if not marked_as_case(report.user_properties):
            if report.failed:
                self.outcome.other_failures.append(f"{report.nodeid} ({report.when})")
            return
        row = row_of(report)
        if row is None:
            return
        if row.outcome == "error":
            self.outcome.other_failures.append(f"{report.nodeid} ({row.reason[:200]})")
        self.rows[(row.variant, row.benchmark, row.item_id)] = row
        self._append(row)

    # -- hooks: once, at the end ----------------------------------------------------------
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """A run that collected benchmark cases is incomplete until its report is written: a
        killed run leaves its folder so marked (harness/records/run_folder.py)."""
        if not session.testsfailed and any(case_ref(item) is not None for item in session.items):
            self._mark_started()

    def _mark_started(self) -> None:
        self.marked = True
        mark_incomplete(
            self.run_dir(),
            f"the run started at {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(self.started))} "
            "has not finished: it is still running, or it was killed",
        )

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self._jsonl is not None:
            self._jsonl.close()
        if not self.rows:
            if self.marked:
                mark_incomplete(self.run_dir(), f"no case ran (exit status {int(exitstatus)})")
            return
        try:
            self._report()
        except Exception as e:  # a bug here must not hide the run's outcome
            self.outcome.problems.append(
                f"the report failed: {type(e).__name__}: {e}\n{traceback.format_exc(limit=8)}"
            )
        stopped = session.shouldfail or session.shouldstop  # -x, --maxfail: not every case ran
        session.exitstatus = exit_status(exitstatus, self.outcome, stopped)
        self.exitstatus = session.exitstatus
        why = incomplete_reason(exitstatus, self.outcome, stopped, len(self.rows))
        if why:
            self.outcome.incomplete = why
            mark_incomplete(self.run_dir(), why)
        else:
            mark_complete(self.run_dir())

    def _report(self) -> None:
        exp = experiment_of(self.config)
        rows = list(self.rows.values())
        gates_file = gates_path_of(self.config)
        try:
            gates = load_gates_of(self.config)
        except GatesError as e:
            gates = None
            self.outcome.problems.append(str(e))
        self.analysis = analysis = analyze(
            rows,
            baseline=exp.baseline_variant,
            tasks=exp.tasks,
            facts=adapter_facts(exp.variants),
            same=exp.same_measurements(),
            margin=exp.margin_points / 100,
            null_variants=exp.noise_floor_variants,
        )
        if gates is not None:
            self.gates_note = narrowed_by(self.config)
            self.outcome.gate_results = check_gates(gates, rows, analysis, narrowed=self.gates_note)
        note = (
            "--gates none or no gates key"
            if not gates_file
            else ("invalid gates file" if gates is None else "")
        )
        manifest = collect_manifest(
            self.run_dir(),
            run_id=run_id_of(self.config),
            experiment=exp.model_dump(mode="json"),
            gates_file=gates_file,
            command=["pytest", *self.config.invocation_params.args],
            started=self.started,
            finished=time.time(),
            command_record=_command_record(self.run_dir()),
        )
        payload = results_payload(
            analysis,
            rows,
            manifest=manifest,
            gates=gates_json(
                gates_file,
                self.outcome.gate_results,
                note or (f"narrowed by {self.gates_note}" if self.gates_note else ""),
            ),
        )
        self.labels = variant_labels(payload)
        self._write(payload, analysis)

    def _write(self, payload: Any, analysis: Analysis) -> None:
        try:
            self.paths = write_report(self.run_dir(), payload, analysis)
        except OutputError as e:  # a full disk, say: one line naming the path
            self.outcome.problems.append(f"the report could not be written: {e}")
        except Exception as e:  # keep the run's numbers: results.json is written first
            self.outcome.problems.append(
                f"the report could not be written: {type(e).__name__}: {e}\n{traceback.format_exc(limit=5)}"
            )

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        self.terminal = terminalreporter  # the harness's summary is written after pytest's own


def _command_record(run_dir: Path) -> dict | None:
    """What ``harness bench`` recorded of the whole command (its start, the training it ran)."""
    path = run_dir / COMMAND_RECORD
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if isinstance(record, dict) and isinstance(record.get("started"), (int, float)):
        record["wall_s"] = round(time.time() - record["started"], 2)
    return record
