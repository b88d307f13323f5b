"""The results plugin end to end, on fake benchmark files (no model): the report, the exit
status, the gates, and the same numbers under xdist and ``deepeval test run``.

Each test builds a tiny project with pytester: a conftest with the root conftest's options and
the harness plugins, a two-variant experiment, and a benchmark file whose cases record
``("harness_case", {...})`` like fixtures/cases.py and fail with an AssertionError like a
metric's ``assert_test``.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import matplotlib.backends.backend_agg
import matplotlib.figure  # noqa: F401
import pytest
import statsmodels.stats.contingency_tables
import statsmodels.stats.proportion  # noqa: F401

# In-process pytester runs drop the modules they imported when they end; importing the heavy
# ones here (statsmodels, matplotlib) keeps each run from importing them again (seconds each).
import harness.report.figure
import harness.report.gates  # noqa: F401

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]

EXPERIMENT = """
[experiment]
name = "fake"
baseline = "base"
gates = "{gates}"
report_dir = "reports"

[[variants]]
name = "base"
model = "org/base"

[[variants]]
name = "ft"
model = "org/ft"
"""

BENCH = """
import pytest

from harness.records.results import CaseRef, CaseSpec
from harness.plugins.session import experiment_of

CASES = {cases!r}


class Item:
    def __init__(self, item_id):
        self.item_id = item_id


def pytest_generate_tests(metafunc):
    experiment_of(metafunc.config)  # as fixtures/cases.py does: the experiment loads while collecting
    if "ref" not in metafunc.fixturenames:
        return
    params = []
    for variant, benchmark, item_id, group, verdict in CASES:
        fields = {{"group": group}}
        if benchmark == "mmlu":
            fields["subject"] = "anatomy" if int(item_id) % 2 else "philosophy"
        ref = CaseRef(benchmark, variant, Item(item_id), fields)
        params.append(pytest.param(ref, verdict, id=f"{{variant}}/{{benchmark}}/{{item_id}}"))
    metafunc.parametrize("ref, verdict", params)


@pytest.fixture
def case(ref, verdict):
    if verdict == "skip":
        pytest.skip("database 'wta_1' absent")
    return CaseSpec(None, None, prediction="SELECT 1")


def test_case(ref, verdict, case):
    if verdict == "error":
        raise RuntimeError("the metric crashed")
    if verdict != "right":  # what deepeval's assert_test raises
        raise AssertionError(
            "Metrics: Execution Accuracy (score: 0.0, threshold: 1.0, strict: True, error: None, "
            "reason: gold has 3 rows (expected), prediction 2) failed."
        )
"""


def cases(table: dict[tuple[str, str], tuple[int, int]], skip: int = 0) -> list[tuple]:
    """(variant, benchmark) -> (right, n): items 0..n-1, the first ``right`` right, then
    ``skip`` skipped items more."""
    out = []
    for (variant, benchmark), (right, n) in table.items():
        group = "easy" if benchmark == "spider" else "stem"
        out += [(variant, benchmark, str(i), group, "right" if i < right else "wrong") for i in range(n)]
        out += [(variant, benchmark, str(n + i), group, "skip") for i in range(skip)]
    return out


DEFAULT = {
    ("base", "spider"): (3, 10),
    ("ft", "spider"): (6, 10),
    ("base", "mmlu"): (4, 12),
    ("ft", "mmlu"): (3, 12),
}


def _conftest(speedups: bool = True) -> str:
    """The root conftest, with the harness's plugins (not the fixtures: the fake cases bring their own)."""
    text = (ROOT / "conftest.py").read_text()
    plugins = ["harness.plugins.session", "harness.plugins.results"] + (
        ["harness.plugins.speedups"] if speedups else []
    )
    text, n = re.subn(r"pytest_plugins = \[[^\]]*\]", f"pytest_plugins = {plugins!r}", text)
    assert n == 1, "the root conftest no longer declares pytest_plugins in one list"
    return text


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch):
    pytester.syspathinsert(ROOT)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    # Only the plugins under test: importing deepeval's plugin costs seconds per session (and
    # more where bytecode is not cached); the deepeval test turns autoloading back on.
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makeconftest(_conftest())
    pytester.makefile(".toml", experiment=EXPERIMENT.format(gates=""))

    def make(table=DEFAULT, *, skip: int = 0, gates: str | None = None, extra: dict[str, str] | None = None):
        pytester.makepyfile(test_bench=BENCH.format(cases=cases(table, skip)), **(extra or {}))
        if gates is not None:
            pytester.makefile(".toml", gates=gates)
        return pytester

    return make


def run(pytester: pytest.Pytester, *args: str, run_id: str = "r1") -> pytest.RunResult:
    return pytester.runpytest(
        "--experiment", "experiment.toml", "--run-id", run_id, "-p", "no:cacheprovider", *args
    )


def results(pytester: pytest.Pytester, run_id: str = "r1") -> dict:
    return json.loads((pytester.path / "reports" / run_id / "results.json").read_text())


def accuracies(data: dict) -> dict:
    return {
        (s["variant"], s["task"]): (s["correct"], s["n"], s["skipped"], s["errors"], s["by_group"])
        for s in data["summary"]
    }


# -- the report and the exit status -----------------------------------------------------------


def test_wrong_answers_alone_exit_0_and_the_report_is_written(project):
    pytester = project(skip=2)
    result = run(pytester)
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "*harness: accuracy per variant and task*",
            "spider    ft * 10 * 6 * 60.0%*[[]31.3%, 83.2%[]]* 2 * 0",
            "*harness: the run passes (28 wrong answers are measurements, not failures)*",
        ]
    )
    # Wrong answers are counted as such, not listed as failures (their reasons are in the results).
    result.stdout.fnmatch_lines(["*16 passed, 8 skipped, 28 wrong in *"])
    assert "FAILURES" not in result.stdout.str() and "Traceback" not in result.stdout.str()
    data = results(pytester)
    assert accuracies(data)[("ft", "spider")][:4] == (6, 10, 2, 0)
    assert accuracies(data)[("base", "mmlu")][:4] == (4, 12, 2, 0)
    s = next(s for s in data["summary"] if (s["variant"], s["task"]) == ("base", "spider"))
    assert s["skip_reasons"] == {"database 'wta_1' absent": 2}
    assert set(next(s for s in data["summary"] if s["task"] == "mmlu")["by_subject"]) == {
        "anatomy",
        "philosophy",
    }
    comp = {(c["variant"], c["task"]): c for c in data["comparisons"]}
    assert comp["ft", "spider"]["only_variant"] == 3 and comp["ft", "spider"]["n"] == 10
    failed = next(c for c in data["cases"] if c["outcome"] == "wrong")
    assert (
        failed["reason"] == "gold has 3 rows (expected), prediction 2" and failed["prediction"] == "SELECT 1"
    )
    run_dir = pytester.path / "reports" / "r1"
    assert (run_dir / "tradeoff.png").read_bytes()[:4] == b"\x89PNG"
    assert "## Differences from the baseline (base)" in (run_dir / "report.md").read_text()
    lines = (run_dir / "results.jsonl").read_text().splitlines()
    assert len(lines) == len(data["cases"]) == 52
    assert data["gates"]["results"] == [] and data["manifest"]["run_id"] == "r1"
    # a finished run: results.json written, nothing marks the folder incomplete
    run_dir = pytester.path / "reports" / "r1"
    assert (run_dir / "results.json").is_file() and not (run_dir / "INCOMPLETE").exists()


def test_a_run_that_ends_early_is_marked_incomplete_and_refused_as_a_baseline(project):
    pytester = project()
    result = run(pytester, "-x", run_id="stopped")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*the run FAILS: the run is incomplete: the session ended early*"])
    run_dir = pytester.path / "reports" / "stopped"
    why = (run_dir / "INCOMPLETE").read_text()
    assert "ended early" in why and "cases that ran" in why, why
    assert (run_dir / "results.json").is_file(), "the report covers what ran"
    pytester.makefile(".toml", gates=f'[baseline_file]\npath = "{run_dir / "results.json"}"\n')
    result = run(pytester, "--gates", "gates.toml", run_id="next")
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*is an incomplete run's (INCOMPLETE: the session ended early*"])


def test_a_failing_unit_test_makes_the_run_fail(project):
    pytester = project(extra={"test_unit": "def test_sql_extraction():\n    assert 1 + 1 == 3\n"})
    result = run(pytester)
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        ["*the run FAILS: 1 error(s) that are not wrong answers: test_unit.py::test_sql_extraction (call)*"]
    )


def test_an_errored_benchmark_case_makes_the_run_fail_and_is_counted(project):
    pytester = project({("base", "spider"): (2, 4)})
    pytester.path.joinpath("test_bench.py").write_text(
        BENCH.format(cases=cases({("base", "spider"): (2, 4)}) + [("base", "spider", "9", "hard", "error")])
    )
    result = run(pytester)
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        ["*the run FAILS: 1 error(s) that are not wrong answers:*RuntimeError: the metric crashed*"]
    )
    [s] = results(pytester)["summary"]
    assert (s["n"], s["correct"], s["errors"]) == (5, 2, 1)
    assert s["error_reasons"] == {"call: RuntimeError: the metric crashed": 1}


SETUP_ERROR = """
import pytest

from harness.records.results import CaseRef


class Item:
    item_id = "7"


@pytest.fixture
def case(ref):
    raise OSError("adapter weights not found")  # e.g. the model fails to load for this variant


@pytest.mark.parametrize("ref", [CaseRef("mmlu", "ft", Item(), {"group": "stem"})], ids=["ft/7"])
def test_case(ref, case):
    pass
"""


def test_a_benchmark_fixture_error_makes_the_run_fail_and_is_counted(project):
    pytester = project({("ft", "mmlu"): (1, 2)}, extra={"test_setup": SETUP_ERROR})
    result = run(pytester)
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "*the run FAILS: 1 error(s)*test_setup.py::test_case[[]ft/7[]] "
            "(setup: OSError: adapter weights not found)*"
        ]
    )
    [s] = results(pytester)["summary"]
    assert (s["n"], s["correct"], s["errors"]) == (3, 1, 1)


def test_a_session_without_benchmark_cases_writes_no_report(project):
    pytester = project(gates="this is not toml")
    pytester.path.joinpath("test_bench.py").unlink()
    pytester.makepyfile(test_unit="def test_ok():\n    pass\n")
    result = run(pytester, "--gates", "gates.toml")
    assert result.ret == 0
    assert not (pytester.path / "reports").exists()


# -- gates ------------------------------------------------------------------------------------

GATES = """
[[floor]]
variant = "ft"
task = "spider"
min_accuracy = {floor}

[[max_drop]]
variant = "ft"
task = "mmlu"
reference = "base"
max_points = 10
"""


def test_passing_gates_exit_0_and_are_listed(project):
    pytester = project(gates=GATES.format(floor=0.5))
    result = run(pytester, "--gates", "gates.toml")
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "*harness: gates (gates.toml)*",
            "PASSED  floor[[]0[]] ft/spider: accuracy 60.0% (6/10, 95% CI [[]31.3%, 83.2%[]]) >= floor 50.0%",
            "PASSED  max_drop[[]0[]] ft/mmlu vs base: 25.0% vs 33.3% on 12 shared items*"
            "drop 8.3 points <= allowed 10",
        ]
    )
    assert [g["status"] for g in results(pytester)["gates"]["results"]] == ["passed", "passed"]


def test_an_impossible_floor_fails_the_run_naming_the_gate(project):
    pytester = project(gates=GATES.format(floor=1.0))
    result = run(pytester, "--gates", "gates.toml")
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "FAILED  floor[[]0[]] ft/spider: accuracy 60.0% (6/10, 95% CI [[]31.3%, 83.2%[]]) < floor 100.0%",
            "*the run FAILS: gate(s) failed: floor[[]0[]]*",
        ]
    )
    gates = results(pytester)["gates"]
    assert gates["passed"] is False and gates["results"][0]["figures"]["accuracy"] == 0.6


def test_gates_come_from_the_experiment_and_none_disables_them(project):
    pytester = project(gates=GATES.format(floor=1.0))
    pytester.makefile(".toml", experiment=EXPERIMENT.format(gates="gates.toml"))
    assert run(pytester).ret == 1
    result = run(pytester, "--gates", "none", run_id="r2")
    assert result.ret == 0
    assert results(pytester, "r2")["gates"]["results"] == []


def test_an_invalid_gates_file_stops_the_run_before_any_case(project):
    pytester = project(gates=GATES.format(floor=0.5).replace("min_accuracy", "min_acc"))
    result = run(pytester, "--gates", "gates.toml")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(
        [
            "*ERROR collecting test_bench.py*",
            "*gates.toml: invalid gates file:*",
            "*floor[[]0[]].min_acc: unknown key; did you mean 'min_accuracy'?*",
            "*Interrupted: 1 error during collection*",
        ]
    )
    result.assert_outcomes(errors=1)
    assert not (pytester.path / "reports").exists()


def test_a_gate_on_a_benchmark_that_did_not_run(project):
    spider_only = {k: v for k, v in DEFAULT.items() if k[1] == "spider"}
    pytester = project(spider_only, gates=GATES.format(floor=0.5))
    result = run(pytester, "--gates", "gates.toml")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["FAILED  max_drop[[]0[]]*ft/mmlu did not run*"])
    # the same run narrowed on purpose skips it with a notice
    pytester = project(gates=GATES.format(floor=0.5))
    result = run(pytester, "--gates", "gates.toml", "-k", "spider", run_id="r2")
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        ["SKIPPED max_drop[[]0[]]*skipped, ft/mmlu is not in this run (selection narrowed by -k 'spider')"]
    )


# -- other runners ----------------------------------------------------------------------------


def test_xdist_gives_the_same_numbers_as_a_serial_run(project):
    pytester = project(skip=1, gates=GATES.format(floor=0.5))
    serial = run(pytester, "--gates", "gates.toml", run_id="serial")
    assert serial.ret == 0
    parallel = pytester.runpytest_subprocess(
        "--experiment",
        "experiment.toml",
        "--run-id",
        "xdist",
        "--gates",
        "gates.toml",
        "-p",
        "no:cacheprovider",
        "-p",
        "xdist",
        "-n",
        "2",
    )
    assert parallel.ret == 0, parallel.stdout.str()
    parallel.stdout.fnmatch_lines(["*created: 2/2 workers*", "PASSED  floor[[]0[]]*"])
    a, b = results(pytester, "serial"), results(pytester, "xdist")
    assert accuracies(a) == accuracies(b)
    assert a["comparisons"] == b["comparisons"]
    key = lambda c: (c["variant"], c["task"], c["item_id"])
    assert sorted(a["cases"], key=key) == sorted(b["cases"], key=key)
    assert len((pytester.path / "reports" / "xdist" / "results.jsonl").read_text().splitlines()) == len(
        b["cases"]
    )


def test_deepeval_test_run(project, monkeypatch):
    """``deepeval test run`` calls pytest.main with ``-p deepeval``: the same results, and the
    exit status stays 0 with wrong answers (its CLI passes pytest's status on)."""
    deepeval = Path(sys.executable).with_name("deepeval")
    if not deepeval.exists():
        pytest.skip("no deepeval command next to this Python")
    monkeypatch.delenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD")
    pytester = project(gates=GATES.format(floor=0.5))
    result = pytester.run(
        deepeval,
        "test",
        "run",
        "test_bench.py",
        "--color",
        "no",
        "--experiment",
        "experiment.toml",
        "--run-id",
        "d1",
        "--gates",
        "gates.toml",
        "-p",
        "no:cacheprovider",
    )
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["PASSED  floor[[]0[]] ft/spider*", "*harness: the run passes*"])
    assert accuracies(results(pytester, "d1"))[("ft", "spider")][:2] == (6, 10)
