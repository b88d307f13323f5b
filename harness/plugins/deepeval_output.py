"""deepeval's own terminal output in the harness's sessions: off unless asked for.

The last screen of a run is the harness's (harness/plugins/last_screen.py): accuracy and differences per
variant and task, skips by reason, gates, the report's path and the verdict. deepeval adds, under
``deepeval test run``, a results table with an 11-line row per case, a "Pass Rate" that pools
every task and variant (a number that means nothing here), an advert and a "Run 'deepeval view'"
hint (there is nothing to view: the harness keeps deepeval's file system read-only); and, in
every pytest session, its plugin prints a line at teardown and three lines per skipped case.
``--deepeval-table`` brings all of that back, as deepeval prints it.

Off a terminal, ``deepeval test run`` gets no colour codes: it passes pytest ``--color=yes``
whatever the output (its own default, not the user's choice); nor the "slowest 10 durations"
it asks pytest for by default.
"""

from __future__ import annotations

import os
import sys

import pytest

from harness.plugins.session import is_worker

TABLE_OPTION = "--deepeval-table"
DEEPEVAL_DURATIONS = 10  # `deepeval test run` passes pytest --durations=10 unless told otherwise


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness", "fine-tuning trade-off harness (benchmarks/)")
    group.addoption(
        TABLE_OPTION,
        action="store_true",
        default=False,
        help="under `deepeval test run`, also print deepeval's own end of run: its per-case "
        "table, its pass rate pooled over every task and variant, and its skip notices "
        "(default: off; the harness's summary and report have every case)",
    )


def shows_deepeval_output(config: pytest.Config) -> bool:
    return bool(config.getoption("deepeval_table", False))


def _running_under_deepeval() -> bool:
    utils = sys.modules.get("deepeval.utils")
    check = getattr(utils, "get_is_running_deepeval", None)
    return bool(check and check())


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Before the terminal reporter is made: no colour off a terminal under ``deepeval test run``;
    and deepeval's plugin prints nothing unless asked (its ``print`` is a module global)."""
    if _running_under_deepeval() and not shows_deepeval_output(config):
        if config.getoption("color", "auto") == "yes" and not sys.stdout.isatty():
            config.option.color = "no"
        if config.getoption("durations", None) == DEEPEVAL_DURATIONS:
            config.option.durations = None  # deepeval's default, not asked for: not the last screen
    deepeval_plugin = sys.modules.get("deepeval.plugins.plugin")
    if deepeval_plugin is not None and not shows_deepeval_output(config):
        deepeval_plugin.print = _say_nothing  # type: ignore[attr-defined]  # a global it reads, not declared


def _say_nothing(*args, **kwargs) -> None:
    """deepeval's plugin's lines ("Running teardown ...", "Test ... was skipped. Reason: ...");
    the harness's summary counts skips by reason."""


def deepeval_run_manager():
    """deepeval's test run manager, when deepeval's plugin runs this session (deepeval test run)."""
    module = sys.modules.get("deepeval.test_run")
    manager = getattr(module, "global_test_run_manager", None)
    if manager is None or not hasattr(manager, "get_test_run") or manager.get_test_run() is None:
        return None
    return manager


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """``deepeval test run`` draws its results after pytest has finished (``wrap_up_test_run``):
    that becomes nothing, unless ``--deepeval-table``."""
    config = session.config
    manager = deepeval_run_manager()
    if is_worker(config) or manager is None or not hasattr(manager, "wrap_up_test_run"):
        return
    if not shows_deepeval_output(config):
        manager.wrap_up_test_run = _say_nothing
        return
    # deepeval saves the run it shows; the harness's results are the run's record. Set now, when
    # no process is started any more (a child would print deepeval's read-only warning).
    os.environ.setdefault("DEEPEVAL_FILE_SYSTEM", "READ_ONLY")
    if manager.get_test_run().test_cases or config.getoption("numprocesses", None) in (None, 0):
        return

    def cases_in_workers(*args, **kwargs) -> None:
        # Under -n, deepeval's workers keep their cases in memory (its file system is read-only
        # here, see harness/deepeval_env.py): deepeval's own summary would call the run empty.
        print(
            "deepeval: the cases ran in pytest-xdist workers, which keep their results in memory; "
            "the harness's summary and its report (results.json, report.md) hold every case"
        )

    manager.wrap_up_test_run = cases_in_workers
