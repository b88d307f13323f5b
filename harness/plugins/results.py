"""The pytest plugin that turns benchmark cases into results, a report, gates and an exit status.

Each job is a module of its own, registered with this one (``JOBS`` below):

- harness/plugins/case_rows.py: a case's identity and verdict on its report, the row they make;
- harness/plugins/collector.py: the rows as they arrive, results.jsonl, the report at the end;
- harness/plugins/exit_status.py: the exit status (wrong answers are the measurement, never a
  failure of the run) and whether the run folder is complete;
- harness/plugins/run_gates.py: which gates, checked while the benchmark files are collected;
- harness/plugins/last_screen.py: the run's last screen;
- harness/plugins/samples.py: ``--log-samples``;
- harness/plugins/deepeval_record.py: what deepeval's own test run records of the experiment.

This module wires the collector in (on the controller only, never on an xdist worker) and
writes the last screen when the session is over.
"""

from __future__ import annotations

from functools import partial

import pytest

from harness import progress
from harness.plugins import case_rows, deepeval_record, run_gates, samples
from harness.plugins.collector import ResultsCollector
from harness.plugins.last_screen import write_summary
from harness.plugins.session import gates_path_of, is_worker

# The plugins of this one, registered here rather than named in ``pytest_plugins``: the collector
# imports them first, and pytest would then warn that it cannot rewrite their asserts.
JOBS = (case_rows, run_gates, samples, deepeval_record)

COLLECTOR_KEY = pytest.StashKey[ResultsCollector]()


def pytest_configure(config: pytest.Config) -> None:
    for job in JOBS:  # on xdist workers too: a case's verdict is added where it ran
        if not config.pluginmanager.is_registered(job):
            config.pluginmanager.register(job, job.__name__)
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


def _last_screen(collector: ResultsCollector) -> None:
    """Written when the session is over, after pytest's counts line, so that whatever the entry
    point the last lines are the harness's."""
    if collector.analysis is None or collector.terminal is None:
        return
    write_summary(
        collector.terminal,
        collector.analysis,
        labels=collector.labels,
        rows=collector.rows.values(),
        outcome=collector.outcome,
        gates_path=gates_path_of(collector.config),
        run_dir=collector.run_dir(),
        paths=collector.paths,
    )


def pytest_unconfigure(config: pytest.Config) -> None:
    collector = config.stash.get(COLLECTOR_KEY, None)
    if collector is not None:
        _last_screen(collector)
        progress.before_each_bar(lambda: None)
        del config.stash[COLLECTOR_KEY]
        config.pluginmanager.unregister(collector)
