"""The run's last screen: accuracy and differences, the report's conclusion, skips by reason,
gates, the report's path and the verdict. Written when the session is over, after pytest's
counts line, so that whatever the entry point the last lines are these."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from harness.plugins.exit_status import RunOutcome
from harness.records.results import CaseResult
from harness.report.analysis import Analysis, conclusion
from harness.report.terminal import format_table


def skip_lines(rows: Iterable[CaseResult]) -> list[str]:
    """One line per (task, reason) of the skipped cases, with how many."""
    counts: dict[tuple[str, str], int] = {}
    for r in rows:
        if r.outcome == "skipped":
            key = (r.benchmark, r.reason or "(no reason given)")
            counts[key] = counts.get(key, 0) + 1
    return [f"harness: skipped {n} {task} case(s): {reason}" for (task, reason), n in sorted(counts.items())]


def _gates(tr: Any, outcome: RunOutcome, gates_path: str) -> None:
    if not outcome.gate_results:
        return
    tr.write_sep("=", f"harness: gates ({gates_path})")
    for g in outcome.gate_results:
        tr.write_line(
            f"{g.status.upper():<7} {g.message}",
            red=g.failed,
            green=g.status == "passed",
            yellow=g.status == "skipped",
        )


def write_summary(
    tr: Any,
    analysis: Analysis,
    *,
    labels: Mapping,
    rows: Iterable[CaseResult],
    outcome: RunOutcome,
    gates_path: str,
    run_dir: Path,
    paths: Mapping[str, Path],
) -> None:
    """The last screen on pytest's terminal reporter ``tr``."""
    rows = list(rows)
    tr.write_sep("=", "harness: accuracy per variant and task")
    tr.write_line(format_table(analysis, labels))
    tr.write_line("")
    tr.write_line(conclusion(analysis))  # the report's opening paragraph
    for line in skip_lines(rows):
        tr.write_line(line)
    _gates(tr, outcome, gates_path)
    for problem in outcome.problems:
        tr.write_line(f"harness: ERROR {problem}", red=True)
    tr.write_line(f"harness: report in {run_dir}: " + ", ".join(p.name for p in paths.values()))
    why = outcome.failure_reasons()
    if why:
        tr.write_line("harness: the run FAILS: " + " | ".join(why), red=True, bold=True)
    else:
        wrong = sum(r.outcome == "wrong" for r in rows)
        tr.write_line(
            f"harness: the run passes ({wrong} wrong answers are measurements, not failures)", green=True
        )
