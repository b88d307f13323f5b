"""The DeepEval metrics of the harness: Spider execution accuracy and multiple choice.

Both are deterministic, so ``a_measure`` just calls ``measure``. Each ``__init__`` argument
is stored under its own name, because DeepEval copies a metric by passing the attributes of
``vars(metric)`` whose names match ``__init__`` parameters (``deepeval.metrics.utils``,
``copy_metrics``).
"""

from __future__ import annotations

from pathlib import Path

from deepeval.errors import MissingTestCaseParamsError
from deepeval.metrics import BaseMetric
from deepeval.test_case import LLMTestCase, SingleTurnParams

from harness.data.spider import database_path
from harness.sql import execution_match

__all__ = ["ExecutionAccuracy", "MultipleChoice", "CHOICE_LETTERS"]

CHOICE_LETTERS = ("A", "B", "C", "D")


def _check_threshold(threshold: float) -> None:
    if not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be a number in [0, 1], got {threshold!r}")


def _require_expected(metric: BaseMetric, test_case: LLMTestCase) -> str:
    # The gold answer missing is a bug in the benchmark, not a wrong prediction: raise.
    if not isinstance(test_case, LLMTestCase):
        metric.error = f"{metric.__name__} scores LLMTestCase objects, got {type(test_case).__name__}"
        raise ValueError(metric.error)
    if test_case.expected_output is None or not str(test_case.expected_output).strip():
        metric.error = f"'expected_output' (the gold answer) is empty for the '{metric.__name__}' metric"
        raise MissingTestCaseParamsError(metric.error)
    return str(test_case.expected_output).strip()


class ExecutionAccuracy(BaseMetric):
    """1.0 when the predicted SQL returns the same result as the gold SQL on the item's
    database, else 0.0, with the reason (see :func:`harness.sql.execution_match`).

    The test case carries the prediction in ``actual_output`` (already extracted SQL; empty
    counts as wrong), the gold SQL in ``expected_output`` and the database in
    ``metadata["db_id"]`` (``additional_metadata`` is the same field). A database file that
    is absent is a failure with that reason; benchmarks skip such items before scoring.
    """

    _required_params = [SingleTurnParams.ACTUAL_OUTPUT, SingleTurnParams.EXPECTED_OUTPUT]

    def __init__(self, spider_dir: str | Path, timeout_s: float = 5.0, threshold: float = 1.0):
        if not Path(spider_dir).is_dir():
            raise ValueError(f"spider_dir {str(spider_dir)!r} is not a folder; pass the Spider folder with database/")
        if not isinstance(timeout_s, (int, float)) or timeout_s <= 0:
            raise ValueError(f"timeout_s must be a positive number of seconds, got {timeout_s!r}")
        _check_threshold(threshold)
        self.spider_dir = spider_dir
        self.timeout_s = timeout_s
        self.threshold = threshold

    def measure(self, test_case: LLMTestCase, *args, **kwargs) -> float:
        self.error = None
        gold_sql = _require_expected(self, test_case)
        db_id = (test_case.metadata or {}).get("db_id")
        if not db_id:
            self.error = (
                f"test case has no metadata['db_id'] for the '{self.__name__}' metric; "
                "build it with LLMTestCase(..., metadata={'db_id': item.db_id})"
            )
            raise MissingTestCaseParamsError(self.error)
        db = database_path(Path(self.spider_dir), db_id)
        if not db.is_file():
            ok, reason = False, f"database {db_id} is absent ({db}); the item cannot be scored"
        else:
            verdict = execution_match(db, gold_sql, test_case.actual_output or "", timeout_s=self.timeout_s)
            ok, reason = verdict.ok, verdict.reason
        self.score = 1.0 if ok else 0.0
        self.reason = reason
        self.success = self.is_successful()
        return self.score

    async def a_measure(self, test_case: LLMTestCase, *args, **kwargs) -> float:
        return self.measure(test_case, *args, **kwargs)

    def is_successful(self) -> bool:
        if self.error is not None or self.score is None:
            self.success = False
        else:
            self.success = self.score >= self.threshold
        return self.success

    @property
    def __name__(self):
        return "Execution Accuracy"


class MultipleChoice(BaseMetric):
    """1.0 when the predicted letter (``actual_output``) equals the gold letter
    (``expected_output``, one of A-D), else 0.0. A prediction that is not a single letter
    A-D (for example "S" or "") is wrong, and the reason says it was not a valid choice."""

    _required_params = [SingleTurnParams.ACTUAL_OUTPUT, SingleTurnParams.EXPECTED_OUTPUT]

    def __init__(self, threshold: float = 1.0):
        _check_threshold(threshold)
        self.threshold = threshold

    def measure(self, test_case: LLMTestCase, *args, **kwargs) -> float:
        self.error = None
        answer = _require_expected(self, test_case).upper()
        if answer not in CHOICE_LETTERS:
            self.error = f"expected_output must be one of {', '.join(CHOICE_LETTERS)}, got {answer!r}"
            raise ValueError(self.error)
        predicted = (test_case.actual_output or "").strip()
        if predicted.upper() not in CHOICE_LETTERS:
            ok, reason = False, f"prediction {predicted!r} is not a valid choice (A-D); the answer is {answer}"
        elif predicted.upper() == answer:
            ok, reason = True, f"prediction {predicted.upper()} is the answer"
        else:
            ok, reason = False, f"prediction {predicted.upper()}, answer {answer}"
        self.score = 1.0 if ok else 0.0
        self.reason = reason
        self.success = self.is_successful()
        return self.score

    async def a_measure(self, test_case: LLMTestCase, *args, **kwargs) -> float:
        return self.measure(test_case, *args, **kwargs)

    def is_successful(self) -> bool:
        if self.error is not None or self.score is None:
            self.success = False
        else:
            self.success = self.score >= self.threshold
        return self.success

    @property
    def __name__(self):
        return "Multiple Choice"
