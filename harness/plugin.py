"""The pytest plugin that turns benchmark cases into results, a report and an exit status.

Laid out like pytest's junitxml: the hooks only wire things up; a ``ResultsCollector`` kept
in ``config.stash`` (and only on the controller, never on an xdist worker) records one row per
(variant, benchmark, item) as reports arrive, appends it to ``results.jsonl`` at once, and
writes the report and checks the gates once, at the end of the session.

Item failures are the accuracy, not an error of the run: the exit status ignores them and
depends only on real errors (a fixture or model that failed, a unit test that failed) and on
the gates.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pytest

COLLECTOR_KEY = pytest.StashKey["ResultsCollector"]()
CASE_PROPERTY = "harness_case"
OUTCOME_PROPERTY = "harness_outcome"


@dataclass
class CaseResult:
    variant: str
    benchmark: str
    item_id: str
    group: str  # Spider hardness or MMLU category
    outcome: str  # "passed", "failed", "skipped" or "error"
    reason: str = ""
    prediction: str | None = None
    extra: dict = field(default_factory=dict)


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


class ResultsCollector:
    def __init__(self, config: pytest.Config):
        self.config = config
        self.rows: dict[str, CaseResult] = {}
        self.other_failures: list[str] = []
        self.started = time.time()
        self._jsonl = None

    # -- where things go ------------------------------------------------------------------
    def run_dir(self) -> Path:
        from fixtures.session import run_dir_of

        return run_dir_of(self.config)

    def _append(self, row: CaseResult) -> None:
        if self._jsonl is None:
            self.run_dir().mkdir(parents=True, exist_ok=True)
            self._jsonl = open(self.run_dir() / "results.jsonl", "a", encoding="utf-8")
        self._jsonl.write(json.dumps(asdict(row), ensure_ascii=False) + "\n")
        self._jsonl.flush()

    # -- hooks ----------------------------------------------------------------------------
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        props = dict(report.user_properties)
        case = props.get(CASE_PROPERTY)
        if case is None:
            if report.failed:
                self.other_failures.append(f"{report.nodeid} ({report.when})")
            return
        if not (report.when == "call" or report.failed or report.skipped):
            return
        outcome_info = props.get(OUTCOME_PROPERTY, {})
        if report.skipped:
            outcome, reason = "skipped", _skip_reason(report)
        elif report.passed:
            outcome, reason = "passed", outcome_info.get("reason", "")
        elif outcome_info.get("item_failure"):
            outcome, reason = "failed", outcome_info.get("reason", "")
        else:  # an exception that is not a wrong answer: a broken fixture, model or metric
            outcome, reason = "error", f"{report.when}: {report.longreprtext[-2000:]}"
            self.other_failures.append(f"{report.nodeid} ({report.when})")
        row = CaseResult(
            variant=case["variant"],
            benchmark=case["benchmark"],
            item_id=case["item_id"],
            group=case.get("group", ""),
            outcome=outcome,
            reason=reason,
            prediction=case.get("prediction"),
            extra={k: v for k, v in case.items() if k not in ("variant", "benchmark", "item_id", "group", "prediction")},
        )
        self.rows[f"{row.variant}|{row.benchmark}|{row.item_id}"] = row
        self._append(row)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self._jsonl is not None:
            self._jsonl.close()
        if not self.rows:
            return
        from harness import report

        self.summary = report.summarize(list(self.rows.values()))
        report.write_results(self.run_dir(), self.summary, list(self.rows.values()), wall_s=time.time() - self.started)
        # Wrong answers failed their tests; they are the measurement, not a broken run.
        if exitstatus == pytest.ExitCode.TESTS_FAILED and not self.other_failures:
            session.exitstatus = pytest.ExitCode.OK

    def pytest_terminal_summary(self, terminalreporter) -> None:
        summary = getattr(self, "summary", None)
        if summary is None:
            return
        from harness import report

        terminalreporter.write_sep("=", "harness: accuracy per variant and benchmark")
        terminalreporter.write_line(report.format_table(summary))
        terminalreporter.write_line(f"results: {self.run_dir()}")


def _skip_reason(report: pytest.TestReport) -> str:
    if isinstance(report.longrepr, tuple) and len(report.longrepr) == 3:
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    return str(report.longrepr)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Tell a wrong answer (the metric's AssertionError) from an error, and keep its reason.

    Runs where the test ran (an xdist worker too); the verdict travels on the report.
    """
    outcome = yield
    rep = outcome.get_result()
    if call.when != "call" or not any(name == CASE_PROPERTY for name, _ in item.user_properties):
        return
    if call.excinfo is None:
        rep.user_properties.append((OUTCOME_PROPERTY, {"item_failure": False, "reason": ""}))
    elif call.excinfo.errisinstance(AssertionError):
        rep.user_properties.append((OUTCOME_PROPERTY, {"item_failure": True, "reason": _metric_reason(str(call.excinfo.value))}))


def _metric_reason(message: str) -> str:
    """deepeval's assertion message ends with the metric's own reason; keep that part."""
    marker = "reason: "
    if marker in message:
        return message[message.index(marker) + len(marker):].removesuffix(" failed.").rstrip(")")
    return message


def pytest_configure(config: pytest.Config) -> None:
    if not _is_worker(config):
        config.stash[COLLECTOR_KEY] = ResultsCollector(config)
        config.pluginmanager.register(config.stash[COLLECTOR_KEY], "harness-results")


@pytest.hookimpl(trylast=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """Under ``deepeval test run``, deepeval's plugin rewrites its whole run file after every
    case (quadratic in the number of cases). Our collector records results instead."""
    try:
        from deepeval.test_run import global_test_run_manager
    except ImportError:
        return
    global_test_run_manager.save_to_disk = False


def pytest_unconfigure(config: pytest.Config) -> None:
    collector = config.stash.get(COLLECTOR_KEY, None)
    if collector is not None:
        del config.stash[COLLECTOR_KEY]
        config.pluginmanager.unregister(collector)
