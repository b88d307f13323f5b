"""The gates: validation of the file, and pass/fail with messages that give the figures."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from harness.records.results import CaseResult
from harness.report.analysis import analyze
from harness.report.frontier import AdapterFacts
from harness.report.gates import check_gates
from harness.report.gates_file import GatesError, load_gates, parse_gates, read_stored_cases
from harness.tasks import TASKS

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ["base", "base-3shot", "ft", "ft-3shot"]


def rows_of(table: dict[tuple[str, str], tuple[int, int]]) -> list[CaseResult]:
    """(variant, benchmark) -> (correct, n): items 0..n-1, the first ``correct`` right."""
    return [
        CaseResult(v, b, str(i), "easy", "passed" if i < correct else "wrong")
        for (v, b), (correct, n) in table.items()
        for i in range(n)
    ]


def check(text: str, rows, narrowed: str = ""):
    gates = parse_gates(tomllib.loads(text), variants=VARIANTS, source="g.toml")
    analysis = analyze(rows, baseline="base", tasks=("spider", "mmlu"), facts={})
    return check_gates(gates, rows, analysis, narrowed=narrowed)


# -- validation -------------------------------------------------------------------------------


def test_the_default_gates_file_is_valid_for_the_default_experiment():
    exp = tomllib.loads((ROOT / "experiments" / "default.toml").read_text())
    assert exp["experiment"]["gates"] == "gates.toml"
    gates = load_gates(ROOT / "gates.toml", variants=[v["name"] for v in exp["variants"]])
    assert len(gates.floor) >= 2 and len(gates.max_drop) >= 1


def test_the_default_gates_pass_on_plausible_tiny_model_numbers_and_catch_a_broken_run():
    gates = load_gates(ROOT / "gates.toml", variants=VARIANTS)
    # SmolLM2-135M-like: Spider a few percent, MMLU near chance, a small MMLU cost
    ok = rows_of(
        {
            ("base", "spider"): (4, 200),
            ("ft", "spider"): (14, 200),
            ("base", "mmlu"): (42, 150),
            ("ft", "mmlu"): (38, 150),
        }
    )
    trained = {"ft": AdapterFacts("ft", "adapters/default", "succeeded", steps_done=20, steps_planned=20)}
    analysis = analyze(ok, baseline="base", tasks=("spider", "mmlu"), facts=trained)
    results = check_gates(gates, ok, analysis)
    assert [g.status for g in results] == ["passed"] * len(gates)
    broken = rows_of(
        {
            ("base", "spider"): (4, 200),
            ("ft", "spider"): (0, 200),
            ("base", "mmlu"): (42, 150),
            ("ft", "mmlu"): (20, 150),
        }
    )
    cut = {
        "ft": AdapterFacts(
            "ft", "adapters/default", "succeeded", steps_done=3, steps_planned=20, cut_short=True
        )
    }
    analysis = analyze(broken, baseline="base", tasks=("spider", "mmlu"), facts=cut)
    failed = [g.gate for g in check_gates(gates, broken, analysis) if g.failed]
    assert failed == ["floor[1]", "max_drop[0]", "adapter[0]"]
    # a run narrowed by --limit is too small for the floors: skipped, and said
    few = rows_of(
        {
            ("base", "spider"): (1, 3),
            ("ft", "spider"): (0, 3),
            ("base", "mmlu"): (1, 3),
            ("ft", "mmlu"): (1, 3),
        }
    )
    small = analyze(few, baseline="base", tasks=("spider", "mmlu"), facts=trained)
    statuses = {g.gate: g.status for g in check_gates(gates, few, small)}
    assert statuses == {
        "floor[0]": "skipped",
        "floor[1]": "skipped",
        "max_drop[0]": "skipped",
        "adapter[0]": "passed",
    }


def test_the_frontier_gate_reads_intervals_not_point_estimates():
    gates = parse_gates({"frontier": [{"max_cost_points": 5.0, "min_gain_points": 5.0}]}, variants=VARIANTS)
    rows = rows_of(
        {
            ("base", "spider"): (10, 400),
            ("ft", "spider"): (80, 400),
            ("base", "mmlu"): (200, 400),
            ("ft", "mmlu"): (198, 400),
        }
    )
    facts = {"ft": AdapterFacts("ft", "a", "succeeded")}
    analysis = analyze(rows, baseline="base", tasks=("spider", "mmlu"), facts=facts)
    [point] = analysis.frontier.points
    cost = point.cost.paired
    assert cost.delta == pytest.approx(-0.005) and -0.05 < cost.delta_ci_low < -0.01
    [result] = check_gates(gates, rows, analysis)
    assert result.status == "passed" and "ft gains +17.5" in result.message
    # the estimate (-0.5) is within a 1-point bound, but its interval crosses -1: the gate fails
    strict = parse_gates({"frontier": [{"max_cost_points": 1.0}]}, variants=VARIANTS)
    [result] = check_gates(strict, rows, analysis)
    assert result.status == "failed" and "none of the 1 points" in result.message
    # a gain whose interval reaches below the required gain does not pass either
    greedy = parse_gates({"frontier": [{"max_cost_points": 5.0, "min_gain_points": 15.0}]}, variants=VARIANTS)
    [result] = check_gates(greedy, rows, analysis)
    assert result.status == "failed"


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            '[[floor]]\nvariant="ft"\ntask="spider"\nmin_acuracy=0.1\n',
            [
                "g.toml: invalid gates file",
                "floor[0].min_acuracy: unknown key; did you mean 'min_accuracy'?",
                "floor[0].min_accuracy: required",
            ],
        ),
        ('[[floors]]\nvariant="ft"\n', ["floors: unknown key; did you mean 'floor'?"]),
        (
            # an older file's keys: refused, each with its new name
            '[[floor]]\nvariant="ft"\nbenchmark="spider"\nmin_accuracy=0.1\n'
            '[baseline_file]\npath="x.json"\nbenchmarks=["spider"]\n',
            [
                "floor[0].benchmark: unknown key; did you mean 'task'? ('benchmark' was renamed 'task')",
                "baseline_file.benchmarks: unknown key; did you mean 'tasks'?",
            ],
        ),
        (
            '[[floor]]\nvariant="fine"\ntask="spider"\nmin_accuracy=0.1\n',
            ["floor[0].variant: unknown variant 'fine'", "(available: base, base-3shot, ft, ft-3shot)"],
        ),
        (
            '[[floor]]\nvariant="ft"\ntask="spyder"\nmin_accuracy=0.1\n',
            [f"floor[0].task: 'spyder' is not one of {', '.join(TASKS)}; did you mean 'spider'?"],
        ),
        (
            '[[floor]]\nvariant="ft"\ntask="spider"\nmin_accuracy=5\n',
            ["floor[0].min_accuracy: a fraction between 0 and 1, got 5.0; for percent write e.g. 0.05"],
        ),
        (
            '[[floor]]\nvariant="ft"\ntask="spider"\nmin_accuracy="high"\n',
            ["floor[0].min_accuracy: expected a number, got str 'high'"],
        ),
        (
            '[[max_drop]]\nvariant="ft"\ntask="mmlu"\nreference="ft"\nmax_points=5\n',
            ["max_drop[0].reference: 'ft' is the variant itself"],
        ),
        (
            '[[max_drop]]\nvariant="ft"\ntask="mmlu"\nreference="bsae"\nmax_points=5\n',
            ["max_drop[0].reference: unknown variant 'bsae'; did you mean 'base'?"],
        ),
        (
            '[baseline_file]\npath="nowhere.json"\nvariants=["ft-3sht"]\nalfa=0.1\nmax_drop_points=-1\n',
            [
                "baseline_file.alfa: unknown key; did you mean 'alpha'?",
                "baseline_file.max_drop_points: must be greater than or equal to 0, got -1",
            ],
        ),
        (
            # names are checked once the types hold
            '[baseline_file]\npath="nowhere.json"\nvariants=["ft-3sht"]\n',
            [
                "baseline_file.path: no such file 'nowhere.json'",
                "baseline_file.variants[0]: unknown variant 'ft-3sht'; did you mean 'ft-3shot'?",
            ],
        ),
        ("floor = 3\n", ["floor: expected [[floor]] tables, got int"]),
    ],
)
def test_invalid_gates_are_reported_with_file_and_key(text, expected):
    with pytest.raises(GatesError) as err:
        parse_gates(tomllib.loads(text), variants=VARIANTS, source="g.toml")
    for part in expected:
        assert part in str(err.value)


def test_a_renamed_key_is_reported_beside_every_other_problem():
    """An older file's key is one problem among the file's others, not the only one reported."""
    text = (
        '[[floor]]\nvariant="ft"\nbenchmark="spider"\nmin_accuracy="high"\n'
        '[[max_drop]]\nvariant="ft"\ntask="mmlu"\nreference="base"\nmax_points="x"\n'
        '[baseline_file]\npath="x.json"\nbenchmarks=["spider"]\nalfa=0.1\n'
        "source = 'g.toml'\n"
    )
    with pytest.raises(GatesError) as err:
        parse_gates(tomllib.loads(text), variants=VARIANTS, source="g.toml")
    lines = str(err.value).splitlines()
    assert lines[0] == "g.toml: invalid gates file:"
    for part in [
        "floor[0].benchmark: unknown key; did you mean 'task'? ('benchmark' was renamed 'task')",
        "floor[0].task: required",
        "floor[0].min_accuracy: expected a number, got str 'high'",
        "max_drop[0].max_points: expected a number, got str 'x'",
        "baseline_file.benchmarks: unknown key; did you mean 'tasks'? ('benchmarks' was renamed 'tasks')",
        "baseline_file.alfa: unknown key; did you mean 'alpha'?",
        "source: unknown key",
    ]:
        assert any(part in line for line in lines), part


def test_missing_gates_file_says_how_to_disable(tmp_path):
    with pytest.raises(GatesError, match="gates file not found.*--gates none"):
        load_gates(tmp_path / "nope.toml", variants=VARIANTS)


# -- checking ---------------------------------------------------------------------------------

FLOOR = '[[floor]]\nvariant="ft"\ntask="spider"\nmin_accuracy={}\n'
DROP = '[[max_drop]]\nvariant="ft"\ntask="mmlu"\nreference="base"\nmax_points={}\n'


def test_floor_passes_and_fails_with_figures():
    rows = rows_of({("ft", "spider"): (10, 200)})
    [ok] = check(FLOOR.format(0.05), rows)
    assert ok.status == "passed" and "5.0% (10/200" in ok.message and ">= floor 5.0%" in ok.message
    [bad] = check(FLOOR.format(0.06), rows)
    assert bad.failed
    assert bad.message.startswith(
        "floor[0] ft/spider: accuracy 5.0% (10/200, 95% CI [2.7%, 9.0%]) < floor 6.0%"
    )
    assert bad.figures["accuracy"] == 0.05 and bad.figures["n"] == 200


def test_floor_on_only_skipped_items_fails():
    rows = [CaseResult("ft", "spider", "1", "easy", "skipped", "db absent")]
    [g] = check(FLOOR.format(0.0), rows)
    assert g.failed and "no scored items (1 skipped)" in g.message


def test_max_drop_compares_paired_items():
    rows = rows_of({("base", "mmlu"): (45, 150), ("ft", "mmlu"): (36, 150)})  # a 6-point drop
    [ok] = check(DROP.format(10), rows)
    assert ok.status == "passed" and "drop 6.0 points <= allowed 10" in ok.message
    [bad] = check(DROP.format(5), rows)
    assert bad.failed
    assert "max_drop[0] ft/mmlu vs base: 24.0% vs 30.0% on 150 shared items (Δ -6.0 points" in bad.message
    assert "+0/-9 items; McNemar p=0.0039" in bad.message and "drop 6.0 points > allowed 5" in bad.message


def test_negative_max_points_requires_a_gain():
    rows = rows_of({("base", "mmlu"): (45, 150), ("ft", "mmlu"): (48, 150)})  # a 2-point gain
    assert [g.status for g in check(DROP.format(-1), rows)] == ["passed"]
    assert [g.status for g in check(DROP.format(-2), rows)] == ["passed"]
    assert [g.status for g in check(DROP.format(-2.5), rows)] == ["failed"]


def test_a_gate_on_a_pair_that_did_not_run_fails_unless_the_run_was_narrowed():
    rows = rows_of({("base", "spider"): (5, 10), ("ft", "spider"): (5, 10)})
    [g] = check(DROP.format(5), rows)
    assert g.failed and "ft/mmlu did not run" in g.message
    [g] = check(DROP.format(5), rows, narrowed="-m 'spider'")
    assert g.status == "skipped" and "selection narrowed by -m 'spider'" in g.message


def _stored(tmp_path: Path, table) -> str:
    path = tmp_path / "stored.json"
    path.write_text(json.dumps({"cases": [vars(r) for r in rows_of(table)]}))
    return str(path)


def test_a_stored_run_of_an_older_schema_reads_as_todays(tmp_path):
    """results.json schema 2 called the task "benchmark" and a wrong answer "failed"."""
    rows = rows_of({("ft", "spider"): (1, 3)})
    today, older = tmp_path / "today.json", tmp_path / "older.json"
    today.write_text(json.dumps({"schema": 3, "cases": [r.as_dict() for r in rows]}))
    legacy = [{**vars(r), "outcome": "failed" if r.outcome == "wrong" else r.outcome} for r in rows]
    older.write_text(json.dumps({"schema": "harness-results/2", "cases": legacy}))
    assert "benchmark" not in rows[0].as_dict() and rows[0].as_dict()["task"] == "spider"
    assert read_stored_cases(today) == read_stored_cases(older)
    assert [c.outcome for c in read_stored_cases(older)] == ["passed", "wrong", "wrong"]


def test_baseline_file_gate(tmp_path):
    stored = _stored(tmp_path, {("ft", "mmlu"): (60, 150), ("ft", "spider"): (20, 200)})
    text = f'[baseline_file]\npath="{stored}"\nmax_drop_points=5\nalpha=0.05\n'
    same = rows_of({("ft", "mmlu"): (58, 150), ("ft", "spider"): (20, 200)})
    results = check(text, same)
    assert [(g.gate, g.status) for g in results] == [
        ("baseline_file ft/mmlu", "passed"),
        ("baseline_file ft/spider", "passed"),
    ]
    # 8 points lost on MMLU: beyond max_drop_points, and significant by McNemar
    worse = rows_of({("ft", "mmlu"): (48, 150), ("ft", "spider"): (20, 200)})
    [mmlu, spider] = check(text, worse)
    assert mmlu.failed and spider.status == "passed"
    assert "drop 8.0 points > allowed 5" in mmlu.message and "significantly worse (McNemar p=" in mmlu.message
    assert f"(stored {stored})" in mmlu.message


def test_baseline_file_significance_alone_fails(tmp_path):
    stored = _stored(tmp_path, {("ft", "spider"): (100, 1000)})
    text = f'[baseline_file]\npath="{stored}"\nalpha=0.05\nvariants=["ft"]\ntasks=["spider"]\n'
    [g] = check(text, rows_of({("ft", "spider"): (80, 1000)}))  # -2 points, 20 lost, 0 gained
    assert g.failed and "significantly worse" in g.message and "allowed" not in g.message.split(":")[-1]
    [g] = check(text.replace("alpha=0.05", "alpha=0.0"), rows_of({("ft", "spider"): (80, 1000)}))
    assert g.status == "passed"


def test_baseline_file_without_common_pairs_fails(tmp_path):
    stored = _stored(tmp_path, {("base", "mmlu"): (60, 150)})
    [g] = check(f'[baseline_file]\npath="{stored}"\n', rows_of({("ft", "spider"): (20, 200)}))
    assert g.failed and "no (variant, task) is in both" in g.message
    [g] = check(
        f'[baseline_file]\npath="{stored}"\nvariants=["ft"]\ntasks=["spider"]\n',
        rows_of({("ft", "spider"): (20, 200)}),
    )
    assert g.failed and "the stored results have no ft/spider" in g.message
