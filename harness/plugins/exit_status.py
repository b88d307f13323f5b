"""A run's exit status and whether its folder is complete, from what went wrong.

Item failures (a wrong answer: the metric's ``AssertionError`` from ``assert_test``) are the
measurement, not an error of the run, and never decide the exit status. The session exits 1
exactly when a gate failed or the run errored: a test that is not a benchmark case failed, a
benchmark case raised something other than an ``AssertionError`` (a broken fixture, model or
metric), a collection error, an invalid gates file, a report that could not be written, or a
run stopped early (-x, --maxfail). Statuses other than 0 and 1 (interrupted, usage error, no
tests) are left as pytest set them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from harness.report.gates import GateResult

SHOWN_FAILURES = 5  # errors of the run named on the last screen; the rest counted


@dataclass
class RunOutcome:
    """What went wrong in a run besides wrong answers, as the session goes on."""

    other_failures: list[str] = field(default_factory=list)  # errors of the run: never wrong answers
    problems: list[str] = field(default_factory=list)  # the report or the gates file could not be handled
    gate_results: list[GateResult] = field(default_factory=list)
    incomplete: str = ""  # why the run is incomplete, once it is over

    def gates_failed(self) -> list[str]:
        return [g.gate for g in self.gate_results if g.failed]

    def failure_reasons(self) -> list[str]:
        """Why the run fails, one phrase per cause (empty: it passes)."""
        why = []
        failed = self.gates_failed()
        if failed:
            why.append(f"gate(s) failed: {', '.join(failed)}")
        if self.other_failures:
            more = len(self.other_failures) - SHOWN_FAILURES
            shown = "; ".join(self.other_failures[:SHOWN_FAILURES]) + (
                f"; and {more} more" if more > 0 else ""
            )
            why.append(f"{len(self.other_failures)} error(s) that are not wrong answers: {shown}")
        if self.problems:
            why.append("the report or gates could not be handled (above)")
        if self.incomplete and not self.problems:
            why.append(f"the run is incomplete: {self.incomplete}")
        return why


def exit_status(exitstatus: int, outcome: RunOutcome, stopped: object) -> int:
    """The session's exit status: 1 exactly when a gate failed or the run broke; wrong answers
    failed their tests but are the measurement, not a broken run."""
    if exitstatus not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
        return exitstatus
    broken = outcome.gates_failed() or outcome.other_failures or outcome.problems or stopped
    return pytest.ExitCode.TESTS_FAILED if broken else pytest.ExitCode.OK


def incomplete_reason(exitstatus: int, outcome: RunOutcome, stopped: object, cases: int) -> str:
    """Why the run folder is not complete ("" when the session ran to its end and the report was
    written); the report it holds covers what ran."""
    if outcome.problems:
        return "the report could not be written in full: " + outcome.problems[0].splitlines()[0]
    if stopped or exitstatus not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
        return (
            f"the session ended early ({stopped or f'exit status {int(exitstatus)}'}); "
            f"results.json covers the {cases} cases that ran"
        )
    return ""
