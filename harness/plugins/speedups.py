"""Measured speed-ups of pytest's and deepeval's per-case work, for sessions of many cases.

A benchmark case only looks its prediction up and scores it, in well under a millisecond; on the
full MMLU test split (28,084 cached cases) what pytest and deepeval did around each case cost
several times more (docs/measurements.md, "Scoring many cases"). This plugin removes that work, and nothing
else: no number depends on it. Switch it off with ``-p no:harness.plugins.speedups`` (tests run a
benchmark both ways and compare the results: tests/test_speedups.py).

What it does, each only where it applies:

* deepeval's run file is not rewritten after every case (``save_to_disk``; quadratic in cases);
* deepeval's per-case results table, when ``--deepeval-table`` asks for it, is one line over
  ``--deepeval-table-max`` cases;
* deepeval's settings are read from the environment once while benchmark cases run (it hashes
  the environment several times a case, docs/measurements.md); only where deepeval has those
  internals;
* a wrong answer's report is built from the metric's message, without formatting a traceback
  (``--tb=long|short|native`` keep pytest's own);
* sessions of benchmark cases only run without pytest's per-test log capture (live logging and
  ``--log-file`` keep it), with the collected cases frozen out of the garbage collector.
"""

from __future__ import annotations

import gc
import sys
from functools import partial

import pytest

from harness.plugins.session import has_experiment, whole_number
from harness.records.results import case_ref, marked_as_case, wrong_answer_reason

BENCHMARK_SESSION_KEY = pytest.StashKey[bool]()  # every collected item is a benchmark case


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness", "fine-tuning trade-off harness (benchmarks/)")
    group.addoption(
        "--deepeval-table-max",
        type=partial(whole_number, "--deepeval-table-max"),
        default=1000,
        help="with --deepeval-table, the largest run for which `deepeval test run` draws its "
        "per-case results table (default 1000); larger runs get one line (the harness's report "
        "has every case)",
    )


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A session of benchmark cases only: no per-test log capture, and the cases frozen.

    Around each setup, call and teardown pytest attaches its handlers to the root logger and to
    every logger that does not propagate (torch declares dozens), and detaches them after; a
    benchmark case only looks its prediction up, so there is nothing to capture (logs still
    reach stderr). The collected cases live to the end of the session, so the cyclic garbage
    collector's full passes need not walk them again and again.
    """
    if not items or not all(case_ref(item) is not None for item in items):
        return
    gc.freeze()
    config.stash[BENCHMARK_SESSION_KEY] = True
    if (
        config.getoption("log_cli_level", None)
        or config.getini("log_cli")
        or config.getoption("log_file", None)
    ):
        return
    plugin = config.pluginmanager.get_plugin("logging-plugin")
    if plugin is not None:
        config.pluginmanager.unregister(plugin)
        plugin.pytest_unconfigure()  # closes its file handler, as pytest would at the end


@pytest.hookimpl(trylast=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """Under ``deepeval test run``, deepeval's plugin rewrites its whole run file after every
    case (quadratic in the number of cases). The harness's results plugin records results."""
    deepeval_run = sys.modules.get("deepeval.test_run")  # imported when deepeval's plugin is on
    if deepeval_run is not None and hasattr(deepeval_run, "global_test_run_manager"):
        deepeval_run.global_test_run_manager.save_to_disk = False


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Over ``--deepeval-table-max`` cases, deepeval's end-of-run table (a row per case, most of
    the time after pytest had finished on the full MMLU split) becomes one line."""
    if session.config.stash.get(BENCHMARK_SESSION_KEY, False):
        # what the cases left behind is kept to the end; the last full collection need not walk it
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
            print(
                f"deepeval's per-case table left out: {n_cases} cases "
                f"(more than --deepeval-table-max={limit}); "
                "see the harness summary above and the run's report.md"
            )

        manager.display_results_table = one_line


@pytest.hookimpl(hookwrapper=True)
def pytest_runtestloop(session: pytest.Session):
    """While benchmark cases run, deepeval's settings are read from the environment once.

    ``deepeval.config.settings.get_settings()`` hashes the whole process environment on every
    call, to notice changes, and ``assert_test`` calls it several times a case. Nothing
    changes deepeval's settings while the benchmarks run, so for the test loop the fingerprint
    is the one taken at its start. Unit-test sessions, which may change deepeval's environment
    on purpose, are left alone; another deepeval version, without these internals, runs unpatched.
    """
    patch = None
    settings = sys.modules.get("deepeval.config.settings")
    internals = (
        settings is not None
        and hasattr(settings, "_calc_env_fingerprint")
        and hasattr(settings, "_settings_env_fingerprint")
    )
    if has_experiment(session.config) and internals and settings is not None:
        settings.get_settings()  # built (or rebuilt) from the environment as it is now
        frozen = settings._settings_env_fingerprint
        patch = pytest.MonkeyPatch()
        patch.setattr(settings, "_calc_env_fingerprint", lambda: frozen)
    try:
        yield
    finally:
        if patch is not None:
            patch.undo()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """A wrong answer's report, built from the metric's message: pytest formats no traceback.

    On the full MMLU test split three cases in four are wrong answers, and formatting their
    tracebacks cost more than scoring them. The harness's results plugin adds its verdict to
    this report as to any other (a hook wrapper). Anything else is left to pytest.
    """
    if call.when != "call" or call.excinfo is None or not call.excinfo.errisinstance(AssertionError):
        return None
    if not marked_as_case(item.user_properties):
        return None
    if item.config.getoption("tbstyle", "auto") not in ("auto", "no", "line"):
        return None
    message = str(call.excinfo.value)
    return pytest.TestReport(
        item.nodeid,
        item.location,
        dict.fromkeys(item.keywords, 1),
        "failed",
        "wrong answer (counted in the accuracy, not an error): "
        f"{' '.join(wrong_answer_reason(message).split())[:1000]}",
        "call",
        sections=[(f"Captured {key} {when}", content) for when, key, content in item._report_sections],
        duration=call.duration,
        start=call.start,
        stop=call.stop,
        user_properties=list(item.user_properties),
    )
