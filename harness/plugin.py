"""The pytest plugin that turns benchmark cases into results, a report, gates and an exit status.

Laid out like pytest's junitxml: the module-level hooks only wire things up; a
``ResultsCollector`` kept in ``config.stash`` (only on the controller, never on an xdist
worker) records one row per (variant, benchmark, item) from ``pytest_runtest_logreport`` and
the ``harness_case`` user property (which travels on the report, from xdist workers too),
appends it to ``<run_dir>/results.jsonl`` as it arrives, and at the end of the session writes
the report (harness/report.py) and checks the gates (harness/gates.py) once.

The exit status. Item failures (a wrong answer: the metric's ``AssertionError`` from
``assert_test``) are the measurement, not an error of the run, and never decide the exit
status. The session exits 1 exactly when a gate failed or the run errored: a test that is not
a benchmark case failed, a benchmark case raised something other than an ``AssertionError``
(a broken fixture, model or metric), a collection error, an invalid gates file, or a report
that could not be written. Statuses other than 0 and 1 (interrupted, usage error, no tests)
are left as pytest set them. A session that ran no benchmark case (the unit tests) writes no
report and checks no gates.

Which gates: ``--gates PATH``, else the experiment's ``gates`` key; ``--gates none`` (or an
empty ``gates`` key) checks none. The file is validated while the benchmark files are
collected, so a bad file is a collection error that stops the run (exit status 2; 1 under
xdist) before any model is loaded or prediction generated. A gate on a (variant, benchmark)
that did not run fails, unless the selection was narrowed on purpose (-m, -k, --variant, a
file or node argument): then it is skipped with a notice (harness/gates.py).

``results.jsonl`` gets one line per report as it arrives; a later line for the same (variant,
benchmark, item) supersedes an earlier one (a teardown error after a pass, say).
"""

from __future__ import annotations

import gc
import json
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pytest

COLLECTOR_KEY = pytest.StashKey["ResultsCollector"]()
GATES_CHECKED_KEY = pytest.StashKey[str]()  # "" when the gates file is valid, else the error
BENCHMARK_SESSION_KEY = pytest.StashKey[bool]()  # every collected item is a benchmark case
CASE_PROPERTY = "harness_case"
OUTCOME_PROPERTY = "harness_outcome"
GATES_DISABLED = ("", "none", "off")


@dataclass
class CaseResult:
    variant: str
    benchmark: str
    item_id: str
    group: str  # Spider hardness or MMLU category
    outcome: str  # "passed", "failed", "skipped" or "error"
    reason: str = ""
    prediction: str | None = None
    extra: dict = field(default_factory=dict)  # e.g. MMLU "subject", loglik "letter_scores"


# -- plain functions the hooks build on -------------------------------------------------------


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def gates_path_of(config: pytest.Config) -> str:
    """The gates file of this run: ``--gates``, else the experiment's; "" when disabled."""
    from fixtures.session import experiment_of

    option = config.getoption("gates", None)
    path = option if option is not None else experiment_of(config).gates
    return "" if path.strip().lower() in GATES_DISABLED else path


def load_gates_of(config: pytest.Config):
    """The validated gates of this run, or None; raises ``harness.gates.GatesError``."""
    from fixtures.session import experiment_of
    from harness.gates import load_gates

    path = gates_path_of(config)
    if not path:
        return None
    return load_gates(path, variants=_declared_variants(experiment_of(config)))


def _declared_variants(exp) -> list[str]:
    """Every variant the experiment file declares, also those that --variant left out: a gate
    may name them (and is then skipped as filtered), but not a name the file lacks."""
    from harness.config import ConfigError, load_experiment

    try:
        return [v.name for v in load_experiment(exp.source).variants]
    except (ConfigError, OSError):
        return [v.name for v in exp.variants]


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
        (line for line in reversed(report.longreprtext.splitlines()) if line.strip()), "")
    return f"{report.when}: {message.strip()}"[:2000]


def _metric_reason(message: str) -> str:
    """deepeval's assertion message ends with the metric's own reason; keep that part."""
    marker = "reason: "
    if marker in message:
        return message[message.index(marker) + len(marker):].removesuffix(") failed.")
    return message


# -- the reporter -----------------------------------------------------------------------------


class ResultsCollector:
    def __init__(self, config: pytest.Config):
        self.config = config
        self.rows: dict[tuple[str, str, str], CaseResult] = {}
        self.other_failures: list[str] = []  # errors of the run: never wrong answers
        self.started = time.time()
        self._jsonl = None
        self.summary = None
        self.comparisons = ()
        self.gate_results = []
        self.gates_note = ""
        self.problems: list[str] = []  # the report or the gates file could not be handled
        self.paths: dict[str, Path] = {}
        self.exitstatus: int = pytest.ExitCode.OK

    def run_dir(self) -> Path:
        from fixtures.session import run_dir_of

        return run_dir_of(self.config)

    def _append(self, row: CaseResult) -> None:
        if self._jsonl is None:
            self.run_dir().mkdir(parents=True, exist_ok=True)
            self._jsonl = open(self.run_dir() / "results.jsonl", "a", encoding="utf-8")
        # vars(), not asdict(): asdict deep-copies every field, a fifth of a millisecond a case.
        self._jsonl.write(json.dumps(vars(row), ensure_ascii=False) + "\n")
        self._jsonl.flush()

    # -- hooks: as reports arrive ---------------------------------------------------------
    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.other_failures.append(f"{report.nodeid or '<session>'} (collection)")

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.outcome == "rerun":  # pytest-rerunfailures: only the last attempt counts
            return
        props = dict(report.user_properties)
        case = props.get(CASE_PROPERTY)
        if case is None:
            if report.failed:
                self.other_failures.append(f"{report.nodeid} ({report.when})")
            return
        if not (report.when == "call" or report.failed or report.skipped):
            return
        verdict = props.get(OUTCOME_PROPERTY, {})
        if report.skipped:
            outcome, reason = "skipped", _skip_reason(report)
        elif report.passed:
            outcome, reason = "passed", verdict.get("reason", "")
        elif report.when == "call" and verdict.get("item_failure"):
            outcome, reason = "failed", verdict.get("reason", "")
        else:  # an exception that is not a wrong answer: a broken fixture, model or metric
            outcome, reason = "error", _error_reason(report)
            self.other_failures.append(f"{report.nodeid} ({report.when}: {reason.partition(': ')[2][:200]})")
        row = CaseResult(
            variant=case["variant"],
            benchmark=case["benchmark"],
            item_id=str(case["item_id"]),
            group=case.get("group", ""),
            outcome=outcome,
            reason=reason,
            prediction=case.get("prediction"),
            extra={k: v for k, v in case.items() if k not in ("variant", "benchmark", "item_id", "group", "prediction")},
        )
        self.rows[(row.variant, row.benchmark, row.item_id)] = row
        self._append(row)

    # -- hooks: once, at the end ----------------------------------------------------------
    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self._jsonl is not None:
            self._jsonl.close()
        if not self.rows:
            return
        try:
            self._report()
        except Exception as e:  # a bug here must not hide the run's outcome
            self.problems.append(f"the report failed: {type(e).__name__}: {e}\n{traceback.format_exc(limit=8)}")
        gates_failed = [g.gate for g in self.gate_results if g.failed]
        if exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
            # Wrong answers failed their tests; they are the measurement, not a broken run.
            broken = gates_failed or self.other_failures or self.problems
            session.exitstatus = pytest.ExitCode.TESTS_FAILED if broken else pytest.ExitCode.OK
        self.exitstatus = session.exitstatus

    def _report(self) -> None:
        from fixtures.session import RUN_ID_KEY, experiment_of
        from harness import report
        from harness.gates import GatesError, check_gates, gates_json

        exp = experiment_of(self.config)
        rows = list(self.rows.values())
        self.summary = report.summarize(rows)
        self.comparisons = report.compare_to_baseline(rows, exp.baseline_variant)
        gates_file = gates_path_of(self.config)
        try:
            gates = load_gates_of(self.config)
        except GatesError as e:
            gates = None
            self.problems.append(str(e))
        if gates is not None:
            self.gates_note = narrowed_by(self.config)
            self.gate_results = check_gates(gates, rows, self.summary, narrowed=self.gates_note)
        note = "--gates none or no gates key" if not gates_file else ("invalid gates file" if gates is None else "")
        manifest = report.collect_manifest(
            self.run_dir(),
            run_id=self.config.stash[RUN_ID_KEY],
            experiment=asdict(exp),
            gates_file=gates_file,
            command=["pytest", *self.config.invocation_params.args],
            started=self.started,
            finished=time.time(),
        )
        payload = report.results_payload(
            self.summary, self.comparisons, rows, baseline=exp.baseline_variant, manifest=manifest,
            gates=gates_json(gates_file, self.gate_results, note or (f"narrowed by {self.gates_note}" if self.gates_note else "")),
        )
        try:
            self.paths = report.write_report(self.run_dir(), payload, self.summary, self.comparisons)
        except Exception as e:  # keep the run's numbers: results.json is written first
            self.problems.append(f"the report could not be written: {type(e).__name__}: {e}\n{traceback.format_exc(limit=5)}")

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.summary is None:
            return
        from harness import report

        tr = terminalreporter
        tr.write_sep("=", "harness: accuracy per variant and benchmark")
        tr.write_line(report.format_table(self.summary, self.comparisons))
        if self.gate_results:
            tr.write_sep("=", f"harness: gates ({gates_path_of(self.config)})")
            for g in self.gate_results:
                tr.write_line(f"{g.status.upper():<7} {g.message}", red=g.failed, green=g.status == "passed",
                              yellow=g.status == "skipped")
        for problem in self.problems:
            tr.write_line(f"harness: ERROR {problem}", red=True)
        tr.write_line(f"harness: report in {self.run_dir()}: " + ", ".join(p.name for p in self.paths.values()))
        failed = [g.gate for g in self.gate_results if g.failed]
        why = []
        if failed:
            why.append(f"gate(s) failed: {', '.join(failed)}")
        if self.other_failures:
            shown = "; ".join(self.other_failures[:5]) + (f"; and {len(self.other_failures) - 5} more" if len(self.other_failures) > 5 else "")
            why.append(f"{len(self.other_failures)} error(s) that are not wrong answers: {shown}")
        if self.problems:
            why.append("the report or gates could not be handled (above)")
        if self.exitstatus not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
            why.append(f"the session ended early (exit status {int(self.exitstatus)}): the report covers what ran")
        if why:
            tr.write_line("harness: the run FAILS: " + " | ".join(why), red=True, bold=True)
        else:
            wrong = sum(r.outcome == "failed" for r in self.rows.values())
            tr.write_line(f"harness: the run passes ({wrong} wrong answers are measurements, not failures)", green=True)


# -- module-level hooks: wiring only ------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    if not _is_worker(config):
        config.stash[COLLECTOR_KEY] = ResultsCollector(config)
        config.pluginmanager.register(config.stash[COLLECTOR_KEY], "harness-results")


def pytest_unconfigure(config: pytest.Config) -> None:
    collector = config.stash.get(COLLECTOR_KEY, None)
    if collector is not None:
        del config.stash[COLLECTOR_KEY]
        config.pluginmanager.unregister(collector)


@pytest.hookimpl(trylast=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """Under ``deepeval test run``, deepeval's plugin rewrites its whole run file after every
    case (quadratic in the number of cases). Our collector records results instead."""
    deepeval_run = sys.modules.get("deepeval.test_run")  # imported when deepeval's plugin is on
    if deepeval_run is not None:
        deepeval_run.global_test_run_manager.save_to_disk = False


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """``deepeval test run`` ends by drawing a table row per case: for 28,084 MMLU cases it spent
    158 of the run's 385 s after pytest had finished, nearly all of it in that table (cProfile;
    scripts/bench_scoring_scale.py). Over
    ``--deepeval-table-max`` cases the table is replaced by one line pointing at the harness's
    summary and report, which hold the accuracies with their intervals."""
    if session.config.stash.get(BENCHMARK_SESSION_KEY, False):
        # What the cases left behind (results, deepeval's records of them) is kept to the end
        # anyway; pytest's last full collection at exit need not walk it (5 s for 28,084 cases).
        gc.freeze()
    deepeval_run = sys.modules.get("deepeval.test_run")
    manager = getattr(deepeval_run, "global_test_run_manager", None)
    if manager is None or not hasattr(manager, "display_results_table"):
        return
    limit = session.config.getoption("deepeval_table_max", 1000)
    test_run = getattr(manager, "test_run", None)
    n_cases = len(getattr(test_run, "test_cases", None) or [])
    if n_cases > limit:
        def one_line(test_run, display) -> None:
            print(f"deepeval's per-case table left out: {n_cases} cases (more than --deepeval-table-max={limit}); "
                  "see the harness summary above and the run's report.md")

        manager.display_results_table = one_line


@pytest.hookimpl(hookwrapper=True)
def pytest_runtestloop(session: pytest.Session):
    """While benchmark cases run, deepeval's settings are read from the environment once.

    ``deepeval.config.settings.get_settings()`` hashes the whole process environment on every
    call, to notice changes, and ``assert_test`` calls it about nine times a case: 2 of the
    2.5 ms a case took. Nothing changes deepeval's settings while the benchmarks run, so for
    the duration of the test loop the fingerprint is the one taken at its start (the settings
    object is the same one deepeval built from that environment). Unit-test sessions, which
    may change deepeval's environment on purpose, are left alone.
    """
    from fixtures.session import EXPERIMENT_KEY

    patch = None
    settings = sys.modules.get("deepeval.config.settings")
    # Only where deepeval still has these internals (4.3.x): another version runs unpatched, slower.
    internals = settings is not None and hasattr(settings, "_calc_env_fingerprint") and hasattr(settings, "_settings_env_fingerprint")
    if EXPERIMENT_KEY in session.config.stash and internals:
        settings.get_settings()  # built (or rebuilt) from the environment as it is now
        frozen = settings._settings_env_fingerprint
        patch = pytest.MonkeyPatch()
        patch.setattr(settings, "_calc_env_fingerprint", lambda: frozen)
    try:
        yield
    finally:
        if patch is not None:
            patch.undo()


@pytest.hookimpl(trylast=True)
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Check the gates file while the benchmark files are collected (they load the
    experiment in their own ``pytest_generate_tests``, which runs before this one), so that a
    bad file is a collection error that stops the run before any model is loaded, on xdist
    workers too. Unit-test sessions never load the experiment and never get here."""
    from fixtures.session import EXPERIMENT_KEY
    from harness.gates import GatesError

    config = metafunc.config
    if EXPERIMENT_KEY not in config.stash:
        return
    if GATES_CHECKED_KEY not in config.stash:
        try:
            load_gates_of(config)
            config.stash[GATES_CHECKED_KEY] = ""
        except GatesError as e:
            config.stash[GATES_CHECKED_KEY] = str(e)
    if config.stash[GATES_CHECKED_KEY]:
        raise pytest.Collector.CollectError(config.stash[GATES_CHECKED_KEY])  # shown without a traceback


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Mark a benchmark case as one before its fixtures run: its parameter (fixtures/cases.py's
    ``CaseRef``) carries its results row, which becomes the ``harness_case`` user property. A
    test may also append that property itself (tests/test_plugin.py's fake cases do)."""
    for value in getattr(getattr(item, "callspec", None), "params", {}).values():
        record = getattr(value, "harness_record", None)
        if isinstance(record, dict) and not any(name == CASE_PROPERTY for name, _ in item.user_properties):
            item.user_properties.append((CASE_PROPERTY, record))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Tell a wrong answer (the metric's AssertionError) from an error, and keep its reason.

    Runs where the test ran (an xdist worker too); the verdict travels on the report. A wrong
    answer is reported here, with the metric's message as its text, so pytest does not format
    a traceback for it: on the full MMLU test split three cases in four are wrong answers, and
    formatting their tracebacks cost more than scoring them (py-spy over
    scripts/bench_scoring_scale.py's cache: 36 s against 23 s in ``assert_test``). ``--tb=long``, ``short`` or ``native`` keep pytest's own report.
    Anything else (a pass, an error) is left to pytest's implementation.
    """
    if call.when != "call" or not any(name == CASE_PROPERTY for name, _ in item.user_properties):
        return None
    outcome = None
    if call.excinfo is None:
        outcome = {"item_failure": False, "reason": ""}
    elif call.excinfo.errisinstance(AssertionError):
        message = str(call.excinfo.value)
        outcome = {"item_failure": True, "reason": _metric_reason(message)}
        if item.config.getoption("tbstyle", "auto") in ("auto", "no", "line"):
            return pytest.TestReport(
                item.nodeid, item.location, dict.fromkeys(item.keywords, 1), "failed",
                f"wrong answer (counted in the accuracy, not an error): {' '.join(message.split())[:1000]}", "call",
                sections=[(f"Captured {key} {when}", content) for when, key, content in item._report_sections],
                duration=call.duration, start=call.start, stop=call.stop,
                user_properties=[*item.user_properties, (OUTCOME_PROPERTY, outcome)],
            )
    if outcome is not None:
        item.user_properties.append((OUTCOME_PROPERTY, outcome))  # pytest copies them onto its report
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config):
    """A wrong answer is its own kind of result in the terminal: ``F`` in the progress line,
    "N wrong" in the last line, and not listed under FAILURES or in the short summary, which
    keep the run's real failures (errors, non-benchmark tests) readable. It also keeps pytest
    from its end-of-run listing of every failure, which looks at every report again for each
    failed one: with 45,000 wrong answers (the full protocol under xdist) it printed 1,515 of
    them in two minutes. The report itself stays ``failed`` (deepeval and xdist see it so).
    """
    if report.when == "call" and report.failed:
        for name, value in report.user_properties:
            if name == OUTCOME_PROPERTY and value.get("item_failure"):
                return "wrong", "F", ("WRONG", {"red": True})
    return None


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A session of benchmark cases only runs without pytest's per-test log capture, and with the
    collected cases frozen out of the garbage collector's full passes.

    Around each setup, call and teardown pytest attaches its handlers to the root logger and
    to every logger that does not propagate (torch declares ~86), and detaches them after:
    0.3 ms six times a case under cProfile, the largest single cost of scoring 28,084 cached
    MMLU cases. A benchmark case only looks its prediction up, so there is nothing to capture;
    logs still reach stderr (``deepeval test run`` passes ``-s`` anyway). Sessions with unit
    tests, live logging (``--log-cli-level``, ``log_cli``) or a ``--log-file`` keep it.
    """
    if not items or not all(item.get_closest_marker("spider") or item.get_closest_marker("mmlu") for item in items):
        return
    # The collected cases, their data and parameters live to the end of the session: keep them
    # out of the cyclic garbage collector's full passes, which walked all of them again and again
    # (and once more at exit, 12 s for 28,084 cases). Frozen again at the session's end.
    gc.freeze()
    config.stash[BENCHMARK_SESSION_KEY] = True
    if config.getoption("log_cli_level", None) or config.getini("log_cli") or config.getoption("log_file", None):
        return
    plugin = config.pluginmanager.get_plugin("logging-plugin")
    if plugin is not None:
        config.pluginmanager.unregister(plugin)
        plugin.pytest_unconfigure()  # closes its file handler, as pytest would at the end
