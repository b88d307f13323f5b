"""One base for the tasks' DeepEval metrics: a task says how it judges one answer, the base does
the rest of what DeepEval asks of a metric (``measure``, ``a_measure``, ``is_successful``,
``__name__``, ``threshold``).

A pass/fail metric scores 1.0 for a right answer and 0.0 otherwise; the case passes when
``score >= threshold``, as deepeval's metrics read. The score is also left on the test case
(``additional_metadata[SCORE_KEY]``), where the result row takes it from
(:attr:`harness.records.results.CaseSpec.score`): DeepEval scores a copy of the metric, so the
metric object the task made never holds it.

Each ``__init__`` argument of a subclass is stored under its own name: DeepEval copies a metric
by passing the attributes of ``vars(metric)`` whose names match ``__init__`` parameters.
"""

from __future__ import annotations

from typing import Any, ClassVar

from deepeval.errors import MissingTestCaseParamsError
from deepeval.metrics import BaseMetric
from deepeval.test_case import LLMTestCase, SingleTurnParams

from harness.records.results import SCORE_KEY


def check_threshold(threshold: float) -> None:
    """A metric's pass threshold must be a number in [0, 1]."""
    if not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be a number in [0, 1], got {threshold!r}")


def require_expected(metric: Any, test_case: LLMTestCase) -> str:
    """The gold answer of ``test_case``. Missing, it is a bug in the benchmark, not a wrong
    prediction: raise (the case is then an error, not a wrong answer)."""
    if not isinstance(test_case, LLMTestCase):
        metric.error = f"{metric.__name__} scores LLMTestCase objects, got {type(test_case).__name__}"
        raise ValueError(metric.error)
    if test_case.expected_output is None or not str(test_case.expected_output).strip():
        metric.error = f"'expected_output' (the gold answer) is empty for the '{metric.__name__}' metric"
        raise MissingTestCaseParamsError(metric.error)
    return str(test_case.expected_output).strip()


class PassFailMetric(BaseMetric):  # type: ignore[no-untyped-call,unused-ignore]  # untyped deepeval (strict only)
    """A right-or-wrong metric. A subclass sets ``metric_name`` and writes :meth:`judge`; its
    ``__init__`` (if it has one) calls ``super().__init__(threshold)``."""

    metric_name: ClassVar[str] = "Pass/Fail"
    # deepeval annotates this list as a type of list
    _required_params = [SingleTurnParams.ACTUAL_OUTPUT, SingleTurnParams.EXPECTED_OUTPUT]  # type: ignore[assignment]

    def __init__(self, threshold: float = 1.0) -> None:
        check_threshold(threshold)
        self.threshold = threshold

    def judge(self, test_case: LLMTestCase, gold: str) -> tuple[bool, str]:
        """Whether the case's answer is right, and why (the reason the report shows)."""
        raise NotImplementedError

    def measure(self, test_case: LLMTestCase, *args: Any, **kwargs: Any) -> float:
        self.error = None
        gold = require_expected(self, test_case)
        ok, reason = self.judge(test_case, gold)
        self.score = 1.0 if ok else 0.0
        self.reason = reason
        self.success = self.is_successful()
        test_case.additional_metadata = {**(test_case.additional_metadata or {}), SCORE_KEY: self.score}
        return float(self.score)

    async def a_measure(self, test_case: LLMTestCase, *args: Any, **kwargs: Any) -> float:
        return self.measure(test_case, *args, **kwargs)

    def is_successful(self) -> bool:
        score = getattr(self, "score", None)
        self.success = self.error is None and score is not None and score >= self.threshold
        return bool(self.success)

    @property
    def __name__(self) -> str:
        return self.metric_name
