"""The pytest plugin that turns benchmark cases into results, a report, gates and an exit status.

Laid out like pytest's junitxml: the module-level hooks only wire things up; a
``ResultsCollector`` kept in ``config.stash`` (only on the controller, never on an xdist
worker) records one :class:`harness.records.results.CaseResult` per (variant, task, item) from
``pytest_runtest_logreport`` and the case's user properties (which travel on the report, from
xdist workers too), appends it to ``<run_dir>/results.jsonl`` as it arrives, and at the end of
the session writes the report (harness/report/document.py) and checks the gates
(harness/report/gates.py) once.

A case's row is built in one place, :func:`harness.records.results.case_result`, from two properties:
its identity (``harness_case``, put on the item before setup from its ``CaseRef`` parameter, so
a case whose fixture fails is still counted against its item) and its verdict
(``harness_verdict``, added to the call's report: wrong answer or not, the metric's reason, and
the prediction and extra fields of the task's ``CaseSpec``).

The exit status. Item failures (a wrong answer: the metric's ``AssertionError`` from
``assert_test``) are the measurement, not an error of the run, and never decide the exit
status. The session exits 1 exactly when a gate failed or the run errored: a test that is not
a benchmark case failed, a benchmark case raised something other than an ``AssertionError``
(a broken fixture, model or metric), a collection error, an invalid gates file, a report
that could not be written, or a run stopped early (-x, --maxfail). A run folder says whether its
run is complete: ``results.json`` is written last, and a run that has not finished well holds a
file ``INCOMPLETE`` saying why (harness/records/run_folder.py). Statuses other than 0 and 1
(interrupted, usage error, no tests) are left as pytest set them. A session that ran no
benchmark case (the unit tests) writes no report and checks no gates.

Which gates: ``--gates PATH``, else the experiment's ``gates`` key; ``--gates none`` (or an
empty ``gates`` key) checks none. The file is validated while the benchmark files are
collected, so a bad file stops the run before any model is loaded. A gate on a (variant, task)
that did not run fails, unless the selection was narrowed on purpose (-m, -k, --variant, a file
or node argument): then it is skipped with a notice (harness/report/gates.py).
"""

from __future__ import annotations

import json
import time
import traceback
from functools import partial
from pathlib import Path

import pytest

from harness import progress
from harness.files import OutputError
from harness.plugins.deepeval_output import deepeval_run_manager
from harness.plugins.session import (
    experiment_of,
    gates_path_of,
    has_experiment,
    is_worker,
    run_dir_of,
    run_id_of,
)
from harness.records.results import (
    CASE_PROPERTY,
    VERDICT_PROPERTY,
    CaseResult,
    CaseSpec,
    case_ref,
    case_result,
    marked_as_case,
    wrong_answer_reason,
)
from harness.records.run_folder import COMMAND_RECORD, holds_a_run, mark_complete, mark_incomplete
from harness.report import document as report
from harness.report.analysis import analyze, conclusion
from harness.report.frontier import adapter_facts
from harness.report.gates import GatesError, check_gates, gates_json, load_gates

COLLECTOR_KEY = pytest.StashKey["ResultsCollector"]()
SAMPLES_KEY = pytest.StashKey[dict]()  # (task, variant) -> the open samples file of this process
AUTO_SAMPLES_MAX = 10_000
GATES_CHECKED_KEY = pytest.StashKey[str]()  # "" when the gates file is valid, else the error


# -- plain functions the hooks build on -------------------------------------------------------


def load_gates_of(config: pytest.Config):
    """The validated gates of this run, or None; raises ``harness.report.gates.GatesError``."""
    path = gates_path_of(config)
    if not path:
        return None
    # A gate may name a variant that --variant left out (it is then skipped as filtered), but
    # not one the file lacks.
    return load_gates(path, variants=list(experiment_of(config).declared_variants))


def narrowed_by(config: pytest.Config) -> str:
    """How the user narrowed this run's selection ("" if not): options and file/node args."""
    how = []
    for option, flag in [("markexpr", "-m"), ("keyword", "-k")]:
        value = config.getoption(option, "")
        if value:
            how.append(f"{flag} {value!r}")
    if config.getoption("variant", None):
        how.append(" ".join(f"--variant {v}" for v in config.getoption("variant")))
    if config.getoption("deselect", None):
        how.append("--deselect")
    if config.getoption("lf", False):
        how.append("--last-failed")
    args = [a for a in config.args if "::" in a or a.endswith(".py")]
    if args:
        how.append("the arguments " + " ".join(args))
    return ", ".join(how)


def _skip_reason(report: pytest.TestReport) -> str:
    if isinstance(report.longrepr, tuple) and len(report.longrepr) == 3:
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    return str(report.longrepr)


def _error_reason(report) -> str:
    crash = getattr(getattr(report, "longrepr", None), "reprcrash", None)
    message = getattr(crash, "message", "") or next(
        (line for line in reversed(report.longreprtext.splitlines()) if line.strip()), ""
    )
    return f"{report.when}: {message.strip()}"[:2000]


def row_of(report: pytest.TestReport) -> CaseResult | None:
    """The result row a benchmark case's report stands for (None: not a benchmark case, or a
    phase that decides nothing, such as a passing setup)."""
    props = dict(report.user_properties)
    identity = props.get(CASE_PROPERTY)
    if identity is None or not (report.when == "call" or report.failed or report.skipped):
        return None
    verdict = props.get(VERDICT_PROPERTY, {})
    if report.skipped:
        return case_result(identity, "skipped", _skip_reason(report))
    if report.passed:
        return case_result(identity, "passed", verdict.get("reason", ""), verdict)
    if report.when == "call" and verdict.get("wrong_answer"):
        return case_result(identity, "wrong", verdict.get("reason", ""), verdict)
    # an exception that is not a wrong answer: a broken fixture, model or metric
    return case_result(identity, "error", _error_reason(report), verdict)


# -- the reporter -----------------------------------------------------------------------------


class ResultsCollector:
    def __init__(self, config: pytest.Config):
        self.config = config
        self.rows: dict[tuple[str, str, str], CaseResult] = {}
        self.other_failures: list[str] = []  # errors of the run: never wrong answers
        self.started = time.time()
        self._jsonl = None
        self.analysis = None
        self.gate_results = []
        self.gates_note = ""
        self.problems: list[str] = []  # the report or the gates file could not be handled
        self.paths: dict[str, Path] = {}
        self.exitstatus: int = pytest.ExitCode.OK
        self.labels: dict = {}  # (variant, task) -> "variant (k-shot, load)"
        self.marked = False  # the run folder says "incomplete" until the report is written
        self.incomplete = ""  # why the run is incomplete, once it is over

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
            self.other_failures.append(f"{report.nodeid or '<session>'} (collection)")

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.outcome == "rerun":  # pytest-rerunfailures: only the last attempt counts
            return
        if not marked_as_case(report.user_properties):
            if report.failed:
                self.other_failures.append(f"{report.nodeid} ({report.when})")
            return
        row = row_of(report)
        if row is None:
            return
        if row.outcome == "error":
            self.other_failures.append(f"{report.nodeid} ({row.reason[:200]})")
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
            self.problems.append(
                f"the report failed: {type(e).__name__}: {e}\n{traceback.format_exc(limit=8)}"
            )
        gates_failed = [g.gate for g in self.gate_results if g.failed]
        stopped = session.shouldfail or session.shouldstop  # -x, --maxfail: not every case ran
        if exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
            # Wrong answers failed their tests; they are the measurement, not a broken run.
            broken = gates_failed or self.other_failures or self.problems or stopped
            session.exitstatus = pytest.ExitCode.TESTS_FAILED if broken else pytest.ExitCode.OK
        self.exitstatus = session.exitstatus
        self._mark_the_folder(exitstatus, stopped)

    def _mark_the_folder(self, exitstatus: int, stopped) -> None:
        """Complete: the session ran to its end and the report was written (results.json last).
        Otherwise the folder says why not; the report it holds covers what ran."""
        if self.problems:
            why = "the report could not be written in full: " + self.problems[0].splitlines()[0]
        elif stopped or exitstatus not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
            why = (
                f"the session ended early ({stopped or f'exit status {int(exitstatus)}'}); "
                f"results.json covers the {len(self.rows)} cases that ran"
            )
        else:
            mark_complete(self.run_dir())
            return
        self.incomplete = why
        mark_incomplete(self.run_dir(), why)

    def _report(self) -> None:
        exp = experiment_of(self.config)
        rows = list(self.rows.values())
        gates_file = gates_path_of(self.config)
        try:
            gates = load_gates_of(self.config)
        except GatesError as e:
            gates = None
            self.problems.append(str(e))
        self.analysis = analyze(
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
            self.gate_results = check_gates(gates, rows, self.analysis, narrowed=self.gates_note)
        note = (
            "--gates none or no gates key"
            if not gates_file
            else ("invalid gates file" if gates is None else "")
        )
        manifest = report.collect_manifest(
            self.run_dir(),
            run_id=run_id_of(self.config),
            experiment=exp.model_dump(mode="json"),
            gates_file=gates_file,
            command=["pytest", *self.config.invocation_params.args],
            started=self.started,
            finished=time.time(),
            command_record=_command_record(self.run_dir()),
        )
        payload = report.results_payload(
            self.analysis,
            rows,
            manifest=manifest,
            gates=gates_json(
                gates_file,
                self.gate_results,
                note or (f"narrowed by {self.gates_note}" if self.gates_note else ""),
            ),
        )
        self.labels = report.variant_labels(payload)
        try:
            self.paths = report.write_report(self.run_dir(), payload, self.analysis)
        except OutputError as e:  # a full disk, say: one line naming the path
            self.problems.append(f"the report could not be written: {e}")
        except Exception as e:  # keep the run's numbers: results.json is written first
            self.problems.append(
                f"the report could not be written: {type(e).__name__}: {e}\n{traceback.format_exc(limit=5)}"
            )

    def pytest_terminal_summary(self, terminalreporter) -> None:
        self._terminal = terminalreporter  # the harness's summary is written after pytest's own

    def write_summary(self) -> None:
        """The run's last screen: accuracy and differences, the report's conclusion, skips by
        reason, gates, the report's path and the verdict. Written when the session is over,
        after pytest's counts line, so that whatever the entry point the last lines are these."""
        tr = getattr(self, "_terminal", None)
        if self.analysis is None or tr is None:
            return
        tr.write_sep("=", "harness: accuracy per variant and task")
        tr.write_line(report.format_table(self.analysis, self.labels))
        tr.write_line("")
        tr.write_line(conclusion(self.analysis))  # the report's opening paragraph
        for line in skip_lines(self.rows.values()):
            tr.write_line(line)
        if self.gate_results:
            tr.write_sep("=", f"harness: gates ({gates_path_of(self.config)})")
            for g in self.gate_results:
                tr.write_line(
                    f"{g.status.upper():<7} {g.message}",
                    red=g.failed,
                    green=g.status == "passed",
                    yellow=g.status == "skipped",
                )
        for problem in self.problems:
            tr.write_line(f"harness: ERROR {problem}", red=True)
        tr.write_line(
            f"harness: report in {self.run_dir()}: " + ", ".join(p.name for p in self.paths.values())
        )
        failed = [g.gate for g in self.gate_results if g.failed]
        why = []
        if failed:
            why.append(f"gate(s) failed: {', '.join(failed)}")
        if self.other_failures:
            more = len(self.other_failures) - 5
            shown = "; ".join(self.other_failures[:5]) + (f"; and {more} more" if more > 0 else "")
            why.append(f"{len(self.other_failures)} error(s) that are not wrong answers: {shown}")
        if self.problems:
            why.append("the report or gates could not be handled (above)")
        if self.incomplete and not self.problems:
            why.append(f"the run is incomplete: {self.incomplete}")
        if why:
            tr.write_line("harness: the run FAILS: " + " | ".join(why), red=True, bold=True)
        else:
            wrong = sum(r.outcome == "wrong" for r in self.rows.values())
            tr.write_line(
                f"harness: the run passes ({wrong} wrong answers are measurements, not failures)", green=True
            )


def skip_lines(rows) -> list[str]:
    """One line per (task, reason) of the skipped cases, with how many."""
    counts: dict[tuple[str, str], int] = {}
    for r in rows:
        if r.outcome == "skipped":
            key = (r.benchmark, r.reason or "(no reason given)")
            counts[key] = counts.get(key, 0) + 1
    return [f"harness: skipped {n} {task} case(s): {reason}" for (task, reason), n in sorted(counts.items())]


# -- module-level hooks: wiring only ------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    if not is_worker(config):
        config.stash[COLLECTOR_KEY] = ResultsCollector(config)
        config.pluginmanager.register(config.stash[COLLECTOR_KEY], "harness-results")
        progress.before_each_bar(partial(_end_the_progress_line, config))


def _end_the_progress_line(config: pytest.Config) -> None:
    """A bar (stderr) is drawn on a line of its own, not after the progress letters (stdout).
    pytest's own ``ensure_newline`` knows only the file-name prefix of a line, not the letters of
    ``-q`` (which ``deepeval test run`` passes), so the writer's column decides."""
    terminal = config.pluginmanager.get_plugin("terminalreporter")
    if terminal is None:
        return
    terminal.ensure_newline()
    if terminal._tw.width_of_current_line:
        terminal.write_line("")
    terminal.flush()


def pytest_unconfigure(config: pytest.Config) -> None:
    collector = config.stash.get(COLLECTOR_KEY, None)
    if collector is not None:
        collector.write_summary()
        progress.before_each_bar(lambda: None)
        del config.stash[COLLECTOR_KEY]
        config.pluginmanager.unregister(collector)


@pytest.hookimpl(trylast=True)
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Check the gates file and the run folder while the benchmark files are collected (they
    load the experiment in their own ``pytest_generate_tests``, which runs before this one), so
    that a bad file is a collection error that stops the run before any model is loaded, on
    xdist workers too. Unit-test sessions never load the experiment and never get here."""
    config = metafunc.config
    if not has_experiment(config):
        return
    if GATES_CHECKED_KEY not in config.stash:
        problem = ""
        try:
            load_gates_of(config)
        except GatesError as e:
            problem = str(e)
        if not problem and not is_worker(config) and holds_a_run(run_dir_of(config)):
            problem = (
                f"{run_dir_of(config)} already holds a run; give another --run-id (or none, for a new "
                "timestamped folder), or remove that folder"
            )
        config.stash[GATES_CHECKED_KEY] = problem
    if config.stash[GATES_CHECKED_KEY]:
        raise pytest.Collector.CollectError(config.stash[GATES_CHECKED_KEY])  # shown without a traceback


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


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Decide whether this process writes samples (``--log-samples``; auto: small runs only)."""
    choice = config.getoption("log_samples", "off")
    n_cases = sum(1 for item in items if case_ref(item) is not None)
    on = choice == "on" or (choice == "auto" and 0 < n_cases <= AUTO_SAMPLES_MAX)
    if on and n_cases:
        config.stash[SAMPLES_KEY] = {}


def pytest_sessionfinish(session: pytest.Session) -> None:
    for f in session.config.stash.get(SAMPLES_KEY, {}).values():
        f.close()


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    """deepeval's run records the experiment as its hyperparameters (its convention: the model,
    adapter, load mode, template and shots of each variant), so its summary says what ran."""
    manager = deepeval_run_manager()
    if manager is None or not has_experiment(session.config):
        return
    exp = experiment_of(session.config)
    params: dict[str, str] = {"experiment": exp.name, "experiment file": exp.source}
    for v in exp.variants:
        params[f"{v.name}: model"] = f"{v.model} ({v.load})" + (
            f" + adapter {v.adapter}" if v.adapter else ""
        )
        for task in exp.tasks_of(v):
            settings, options = exp.settings(task), v.options(task)
            shots = settings.shots if options is None or options.shots is None else options.shots
            template = getattr(settings, "template", getattr(settings, "scoring", ""))
            params[f"{v.name}: {task}"] = f"{template}, {shots} shots" if template else f"{shots} shots"
    try:
        from deepeval.test_run.hyperparameters import process_hyperparameters

        manager.get_test_run().hyperparameters = process_hyperparameters(params)
    except (ImportError, TypeError, ValueError, AttributeError):
        return  # another deepeval: its own warning stays


def _write_sample(item: pytest.Item, spec: CaseSpec, verdict: dict, outcome: str) -> None:
    """One line of ``samples/<task>-<variant>[.gwK].jsonl``: what the model saw, said and scored."""
    files = item.config.stash.get(SAMPLES_KEY, None)
    ref = case_ref(item)
    if files is None or ref is None or spec.test_case is None:
        return
    key = (ref.task, ref.variant)
    if key not in files:
        worker = getattr(item.config, "workerinput", {}).get("workerid")
        path = (
            run_dir_of(item.config)
            / "samples"
            / f"{ref.task}-{ref.variant}{'.' + worker if worker else ''}.jsonl"
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        files[key] = open(path, "a", encoding="utf-8")
    case = spec.test_case
    record = {
        "case": ref.case_id,
        "task": ref.task,
        "variant": ref.variant,
        "item_id": ref.item_id,
        "input": case.input,
        **dict(spec.sample),
        "prediction": spec.prediction,
        "gold": case.expected_output,
        "outcome": outcome,
        "reason": verdict.get("reason", ""),
    }
    files[key].write(json.dumps(record, ensure_ascii=False, default=str) + "\n")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Mark a benchmark case as one before its fixtures run: its ``CaseRef`` parameter gives its
    identity, which becomes the ``harness_case`` user property."""
    if marked_as_case(item.user_properties):
        return
    ref = case_ref(item)
    if ref is not None:
        item.user_properties.append((CASE_PROPERTY, ref.identity()))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Add the case's verdict to its call report: a wrong answer (the metric's AssertionError)
    or not, the metric's reason, and the prediction and extra fields of its ``CaseSpec``.

    Runs where the test ran (an xdist worker too); the verdict travels on the report."""
    outcome = yield
    if call.when != "call" or not marked_as_case(item.user_properties):
        return
    report = outcome.get_result()
    spec = next((v for v in getattr(item, "funcargs", {}).values() if isinstance(v, CaseSpec)), None)
    verdict: dict = {}
    if spec is not None:
        verdict.update(prediction=spec.prediction, score=spec.score, extra=dict(spec.extra))
    if call.excinfo is None:
        verdict.update(wrong_answer=False, reason="")
    elif call.excinfo.errisinstance(AssertionError):
        verdict.update(wrong_answer=True, reason=wrong_answer_reason(str(call.excinfo.value)))
    report.user_properties.append((VERDICT_PROPERTY, verdict))
    if spec is not None:
        outcome_name = (
            "passed" if call.excinfo is None else ("wrong" if verdict.get("wrong_answer") else "error")
        )
        _write_sample(item, spec, verdict, outcome_name)


@pytest.hookimpl(tryfirst=True)
def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config):
    """A wrong answer is its own kind of result in the terminal: ``w`` in the progress line,
    "N wrong" in the last line, and not listed under FAILURES or in the short summary, which
    keep the run's real failures (errors, non-benchmark tests) readable. The report itself stays
    ``failed`` (deepeval and xdist see it so)."""
    if report.when == "call" and report.failed:
        for name, value in report.user_properties:
            if name == VERDICT_PROPERTY and value.get("wrong_answer"):
                return "wrong", "w", ("WRONG", {"yellow": True})
    return None
