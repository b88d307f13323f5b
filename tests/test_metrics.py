"""The DeepEval metrics: case tables, argument checks, copying, and one assert_test each."""

import asyncio
import math
import sqlite3
from pathlib import Path

import pytest
from deepeval.errors import MissingTestCaseParamsError
from deepeval.metrics.utils import copy_metrics
from deepeval.test_case import LLMTestCase

from harness.tasks.mmlu.metric import MultipleChoice
from harness.tasks.sql_metric import ExecutionAccuracy
from harness.tasks.sql_task import sql_failure_kind


@pytest.fixture(scope="module")
def spider_dir(tmp_path_factory) -> Path:
    """A Spider-layout folder with one database, ``concert``."""
    root = tmp_path_factory.mktemp("spider")
    (root / "database" / "concert").mkdir(parents=True)
    conn = sqlite3.connect(root / "database" / "concert" / "concert.sqlite")
    conn.execute("CREATE TABLE singer (id INTEGER PRIMARY KEY, name TEXT, age INTEGER)")
    conn.executemany(
        "INSERT INTO singer VALUES (?, ?, ?)", [(1, "Ann", 41), (2, "Bo", 29), (3, "Cy", 35), (4, "Bo", 50)]
    )
    conn.commit()
    conn.close()
    return root


def spider_case(pred: str | None, gold: str, db_id: str = "concert") -> LLMTestCase:
    return LLMTestCase(
        input="a question", actual_output=pred, expected_output=gold, metadata={"db_id": db_id}
    )


SPIDER_CASES = [
    # (id, prediction, gold, db_id, score, words the reason must contain)
    ("same", "SELECT name FROM singer", "SELECT name FROM singer", "concert", 1.0, "same 4 rows"),
    ("equivalent", "SELECT name FROM singer WHERE id > 0", "SELECT name FROM singer", "concert", 1.0, "same"),
    (
        "columns swapped",
        "SELECT age, name FROM singer",
        "SELECT name, age FROM singer",
        "concert",
        1.0,
        "another order",
    ),
    (
        "wrong rows",
        "SELECT name FROM singer WHERE age > 30",
        "SELECT name FROM singer",
        "concert",
        0.0,
        "gold has 4 rows, prediction 3",
    ),
    (
        "distinct kept",
        "SELECT name FROM singer",
        "SELECT DISTINCT name FROM singer",
        "concert",
        0.0,
        "gold has 3 rows, prediction 4",
    ),
    (
        "order matters",
        "SELECT name FROM singer ORDER BY age",
        "SELECT name FROM singer ORDER BY age DESC",
        "concert",
        0.0,
        "another order",
    ),
    (
        "order ignored",
        "SELECT name FROM singer ORDER BY age",
        "SELECT name FROM singer",
        "concert",
        1.0,
        "same",
    ),
    ("empty prediction", "", "SELECT name FROM singer", "concert", 0.0, "empty prediction"),
    ("syntax error", "SELECT name FROM", "SELECT name FROM singer", "concert", 0.0, "prediction failed"),
    (
        "unknown table",
        "SELECT name FROM singers",
        "SELECT name FROM singer",
        "concert",
        0.0,
        "no such table: singers",
    ),
    (
        "write refused",
        "DROP TABLE singer",
        "SELECT name FROM singer",
        "concert",
        0.0,
        "prediction was refused",
    ),
    ("gold fails", "SELECT name FROM singer", "SELECT nope FROM singer", "concert", 0.0, "gold query failed"),
    ("database absent", "SELECT 1", "SELECT 1", "wta_1", 0.0, "database wta_1 is absent"),
]


@pytest.mark.parametrize(
    "pred, gold, db_id, score, reason", [c[1:] for c in SPIDER_CASES], ids=[c[0] for c in SPIDER_CASES]
)
def test_execution_accuracy_cases(spider_dir, pred, gold, db_id, score, reason):
    metric = ExecutionAccuracy(spider_dir)
    assert metric.measure(spider_case(pred, gold, db_id)) == score
    assert metric.score == score
    assert metric.success is (score == 1.0)
    assert reason in metric.reason


FAILURE_KINDS = {  # the "why wrong" kind of each failing case above, read from its real reason
    "wrong rows": "wrong number of rows",
    "distinct kept": "wrong number of rows",
    "order matters": "wrong order",
    "empty prediction": "no SQL",
    "syntax error": "SQL error",
    "unknown table": "SQL error",
    "write refused": "refused (not one read-only SELECT)",
    "gold fails": "gold query failed",
    "database absent": "no database",
}


@pytest.mark.parametrize("name", list(FAILURE_KINDS))
def test_a_real_reason_gives_its_failure_kind(spider_dir, name):
    _, pred, gold, db_id, _, _ = next(c for c in SPIDER_CASES if c[0] == name)
    metric = ExecutionAccuracy(spider_dir)
    metric.measure(spider_case(pred, gold, db_id))
    assert sql_failure_kind(metric.reason) == FAILURE_KINDS[name]


def test_execution_accuracy_reads_additional_metadata_too(spider_dir):
    case = LLMTestCase(
        input="q",
        actual_output="SELECT 1",
        expected_output="SELECT 1",
        additional_metadata={"db_id": "concert"},
    )
    assert ExecutionAccuracy(spider_dir).measure(case) == 1.0


def test_execution_accuracy_timeout_is_a_failure(spider_dir):
    forever = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r"
    metric = ExecutionAccuracy(spider_dir, timeout_s=0.2)
    assert metric.measure(spider_case(forever, "SELECT 1")) == 0.0
    assert "timed out" in metric.reason


def test_execution_accuracy_needs_db_id(spider_dir):
    metric = ExecutionAccuracy(spider_dir)
    case = LLMTestCase(input="q", actual_output="SELECT 1", expected_output="SELECT 1")
    with pytest.raises(MissingTestCaseParamsError, match="db_id"):
        metric.measure(case)
    assert not metric.is_successful()


def test_execution_accuracy_needs_gold(spider_dir):
    with pytest.raises(MissingTestCaseParamsError, match="expected_output"):
        ExecutionAccuracy(spider_dir).measure(spider_case("SELECT 1", ""))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"spider_dir": "/nonexistent/spider"}, "not a folder"),
        ({"timeout_s": 0}, "timeout_s"),
        ({"timeout_s": "5"}, "timeout_s"),
        ({"threshold": 1.5}, "threshold"),
    ],
)
def test_execution_accuracy_checks_arguments(spider_dir, kwargs, message):
    with pytest.raises(ValueError, match=message):
        ExecutionAccuracy(**{"spider_dir": spider_dir, **kwargs})


def test_execution_accuracy_survives_deepeval_copy(spider_dir):
    metric = ExecutionAccuracy(spider_dir, timeout_s=2.5, threshold=0.5)
    (copied,) = copy_metrics([metric])
    assert (copied.spider_dir, copied.timeout_s, copied.threshold) == (spider_dir, 2.5, 0.5)


def test_execution_accuracy_async(spider_dir):
    metric = ExecutionAccuracy(spider_dir)
    assert (
        asyncio.run(metric.a_measure(spider_case("SELECT name FROM singer", "SELECT name FROM singer")))
        == 1.0
    )


MC_CASES = [
    # (id, prediction, answer, score, words the reason must contain)
    ("right", "B", "B", 1.0, "prediction B is the answer"),
    ("wrong", "C", "B", 0.0, "prediction C, answer B"),
    ("padded", " D\n", "D", 1.0, "is the answer"),
    ("lower case", "a", "A", 1.0, "is the answer"),
    ("invalid letter", "S", "B", 0.0, "'S' is not a valid choice (A-D); the answer is B"),
    ("empty", "", "A", 0.0, "'' is not a valid choice"),
    ("a word", "Answer", "A", 0.0, "not a valid choice"),
    ("none", None, "A", 0.0, "not a valid choice"),
]


@pytest.mark.parametrize(
    "pred, answer, score, reason", [c[1:] for c in MC_CASES], ids=[c[0] for c in MC_CASES]
)
def test_multiple_choice_cases(pred, answer, score, reason):
    metric = MultipleChoice()
    assert metric.measure(LLMTestCase(input="q", actual_output=pred, expected_output=answer)) == score
    assert metric.success is (score == 1.0)
    assert reason in metric.reason


def test_multiple_choice_reads_as_deepevals_metrics_do():
    """score >= threshold is a pass; the probability of the answer is in the reason, not the score."""
    logprobs = [math.log(0.2), math.log(0.5), math.log(0.2), math.log(0.1)]
    case = lambda pred: LLMTestCase(
        input="q", actual_output=pred, expected_output="B", metadata={"choice_scores": logprobs}
    )
    right, wrong = MultipleChoice(), MultipleChoice()
    assert right.measure(case("B")) == 1.0 and right.success and right.score >= right.threshold
    assert "probability of the answer among the choices: 0.50" in right.reason
    assert wrong.measure(case("A")) == 0.0 and not wrong.success and wrong.score < wrong.threshold
    lenient = MultipleChoice(threshold=0.0)
    lenient.measure(case("A"))
    assert lenient.success, "a threshold of 0 passes every valid case, as in deepeval"


def test_multiple_choice_rejects_bad_gold():
    with pytest.raises(ValueError, match="one of A, B, C, D"):
        MultipleChoice().measure(LLMTestCase(input="q", actual_output="A", expected_output="E"))


def test_multiple_choice_copy_and_names(spider_dir):
    (copied,) = copy_metrics([MultipleChoice(threshold=0.0)])
    assert copied.threshold == 0.0
    assert copied.__name__ == "Multiple Choice"
    assert ExecutionAccuracy(spider_dir).__name__ == "Execution Accuracy"


def test_metrics_work_in_assert_test(spider_dir, tmp_path, monkeypatch):
    from deepeval import assert_test

    monkeypatch.chdir(tmp_path)  # whatever deepeval writes stays in the test's folder
    assert_test(
        spider_case("SELECT name FROM singer", "SELECT name FROM singer"), [ExecutionAccuracy(spider_dir)]
    )
    with pytest.raises(AssertionError, match="not a valid choice"):
        assert_test(LLMTestCase(input="q", actual_output="S", expected_output="B"), [MultipleChoice()])
