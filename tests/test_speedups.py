"""The speed-ups plugin (harness/plugins/speedups.py): each speed-up where it applies, and the same
results with the plugin switched off (``-p no:harness.plugins.speedups``)."""

from __future__ import annotations

import sys

import pytest

from tests.test_plugin import DEFAULT, _conftest, accuracies, project, results, run  # noqa: F401

pytest_plugins = ["pytester"]


def test_the_same_results_with_and_without_the_speedups(project, pytester):
    """No number depends on the speed-ups: the same cases and outcomes either way."""
    pytester = project(skip=2)
    fast = inline(pytester, run_id="with")
    assert fast.ret == 0
    pytester.makeconftest(_conftest(speedups=False))
    slow = inline(pytester, run_id="without")
    assert slow.ret == 0
    cases = lambda run_id: sorted(
        (
            c["variant"],
            c["task"],
            c["item_id"],
            c["outcome"],
            c["reason"],
            c["prediction"],
        )
        for c in results(pytester, run_id)["cases"]
    )
    assert cases("with") == cases("without") and len(cases("with")) == 52
    assert accuracies(results(pytester, "with")) == accuracies(results(pytester, "without"))
    # the wrong answers' reports differ only in form: the metric's message with the speed-ups,
    # pytest's own traceback without them
    assert wrong_reports(fast) and all(
        isinstance(r.longrepr, str) and r.longrepr.startswith("wrong answer (counted in the accuracy")
        for r in wrong_reports(fast)
    )
    assert wrong_reports(slow) and not any(isinstance(r.longrepr, str) for r in wrong_reports(slow))


def inline(pytester: pytest.Pytester, run_id: str):
    """``run`` in this process, keeping the reports (pytester's hook recorder)."""
    args = ("--experiment", "experiment.toml", "--run-id", run_id, "-p", "no:cacheprovider")
    return pytester.inline_run(*args)


def wrong_reports(recorder) -> list:
    return [r for r in recorder.getreports("pytest_runtest_logreport") if r.when == "call" and r.failed]


def test_deepeval_settings_are_read_once_while_benchmark_cases_run(monkeypatch):
    """deepeval hashes the environment on every get_settings() call (most of assert_test's
    time); during a benchmark session's test loop the plugin fixes that fingerprint, and
    restores deepeval's own check afterwards."""
    from types import SimpleNamespace

    import deepeval.config.settings as settings

    from harness.plugins import speedups
    from harness.plugins.session import EXPERIMENT_KEY

    session = SimpleNamespace(config=SimpleNamespace(stash={EXPERIMENT_KEY: object()}))
    loop = speedups.pytest_runtestloop(session)
    next(loop)
    during = settings.get_settings()
    monkeypatch.setenv("DEEPEVAL_VERBOSE_MODE", "1")  # a change deepeval would otherwise pick up
    assert settings.get_settings() is during
    with pytest.raises(StopIteration):
        loop.send(None)
    assert settings.get_settings() is not during
    assert settings.get_settings().DEEPEVAL_VERBOSE_MODE


def test_unit_test_sessions_keep_deepevals_settings_check(monkeypatch):
    from types import SimpleNamespace

    import deepeval.config.settings as settings

    from harness.plugins import speedups

    loop = speedups.pytest_runtestloop(SimpleNamespace(config=SimpleNamespace(stash={})))
    next(loop)
    before = settings.get_settings()
    monkeypatch.setenv("DEEPEVAL_VERBOSE_MODE", "1")
    assert settings.get_settings() is not before
    with pytest.raises(StopIteration):
        loop.send(None)


LOG_CAPTURE = """
import pytest

from harness.records.results import CaseRef


class Item:
    item_id = "1"


@pytest.mark.parametrize("ref", [CaseRef("mmlu", "base", Item())])
def test_one(request, ref):
    print("logging-plugin", request.config.pluginmanager.get_plugin("logging-plugin") is not None)
"""


@pytest.mark.parametrize(
    "args, unit_test, kept",
    [((), False, False), (("--log-cli-level", "INFO"), False, True), ((), True, True)],
    ids=["benchmark-cases-only", "live-logging", "with-a-unit-test"],
)
def test_log_capture_is_off_only_for_sessions_of_benchmark_cases(project, args, unit_test, kept):
    """pytest's per-test log capture costs a benchmark case more than its scoring; a session of
    benchmark cases only runs without it, unless live logging asks for it; unit tests keep it."""
    extra = {"test_marked": LOG_CAPTURE}
    if unit_test:
        extra["test_unit"] = "def test_unit():\n    pass\n"
    pytester = project(extra=extra)
    targets = ["test_marked.py", "test_unit.py"] if unit_test else ["test_marked.py"]
    result = pytester.runpytest_subprocess(
        *targets, "--experiment", "experiment.toml", "-s", "-p", "no:cacheprovider", *args
    )
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines([f"*logging-plugin {kept}*"])


def test_deepevals_per_case_table_is_one_line_over_the_limit(monkeypatch, capsys):
    """Over --deepeval-table-max cases, deepeval's end-of-run table becomes one line."""
    from types import SimpleNamespace

    from harness.plugins import speedups

    drawn = []
    manager = SimpleNamespace(
        test_run=SimpleNamespace(test_cases=[object()] * 3),
        display_results_table=lambda test_run, display: drawn.append(test_run),
    )
    monkeypatch.setitem(sys.modules, "deepeval.test_run", SimpleNamespace(global_test_run_manager=manager))
    session = lambda limit: SimpleNamespace(
        config=SimpleNamespace(getoption=lambda name, default=None: limit, stash={})
    )

    speedups.pytest_sessionfinish(session(3))
    manager.display_results_table(manager.test_run, None)
    assert drawn == [manager.test_run], "at the limit the table is drawn"

    speedups.pytest_sessionfinish(session(2))
    manager.display_results_table(manager.test_run, None)
    assert len(drawn) == 1
    assert "per-case table left out: 3 cases (more than --deepeval-table-max=2)" in capsys.readouterr().out
