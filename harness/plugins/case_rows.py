"""A benchmark case's identity and verdict on its report, and the result row they make.

A case's row is built in one place, :func:`harness.records.results.case_result`, from two
properties: its identity (``harness_case``, put on the item before setup from its ``CaseRef``
parameter, so a case whose fixture fails is still counted against its item) and its verdict
(``harness_verdict``, added to the call's report: wrong answer or not, the metric's reason, and
the prediction and extra fields of the task's ``CaseSpec``). Both travel on the report, from
xdist workers too.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from typing import Any

import pytest

from harness.plugins.samples import write_sample
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


def _skip_reason(report: pytest.TestReport) -> str:
    if isinstance(report.longrepr, tuple) and len(report.longrepr) == 3:
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    return str(report.longrepr)


def _error_reason(report: pytest.TestReport) -> str:
    crash = getattr(getattr(report, "longrepr", None), "reprcrash", None)
    message = getattr(crash, "message", "") or next(
        (line for line in reversed(report.longreprtext.splitlines()) if line.strip()), ""
    )
    return f"{report.when}: {message.strip()}"[:2000]


def row_of(report: pytest.TestReport) -> CaseResult | None:
    """The result row a benchmark case's report stands for (None: not a benchmark case, or a
    phase that decides nothing, such as a passing setup)."""
    props: dict[str, Any] = dict(report.user_properties)
    identity: Mapping[str, Any] | None = props.get(CASE_PROPERTY)
    if identity is None or not (report.when == "call" or report.failed or report.skipped):
        return None
    verdict: Mapping[str, Any] = props.get(VERDICT_PROPERTY, {})
    if report.skipped:
        return case_result(identity, "skipped", _skip_reason(report))
    if report.passed:
        return case_result(identity, "passed", verdict.get("reason", ""), verdict)
    if report.when == "call" and verdict.get("wrong_answer"):
        return case_result(identity, "wrong", verdict.get("reason", ""), verdict)
    # an exception that is not a wrong answer: a broken fixture, model or metric
    return case_result(identity, "error", _error_reason(report), verdict)


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
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Generator[None, Any, None]:
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
        write_sample(item, spec, verdict, outcome_name)


@pytest.hookimpl(tryfirst=True)
def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config) -> Any:
    """A wrong answer is its own kind of result in the terminal: ``w`` in the progress line,
    "N wrong" in the last line, and not listed under FAILURES or in the short summary, which
    keep the run's real failures (errors, non-benchmark tests) readable. The report itself stays
    ``failed`` (deepeval and xdist see it so)."""
    if report.when == "call" and report.failed:
        for name, value in report.user_properties:
            if name == VERDICT_PROPERTY and isinstance(value, dict) and value.get("wrong_answer"):
                return "wrong", "w", ("WRONG", {"yellow": True})
    return None
