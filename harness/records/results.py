"""What one benchmark case is, and the one record of its result.

* :class:`CaseRef`, the parameter of one parametrized case: which task, variant and item, and
  the item's fields of the result row (its group for the report).
* :class:`CaseSpec`, what a task makes of one item and its prediction: the DeepEval test case,
  its metric, and the prediction and extra fields that go into the result row (or why the item
  is skipped).
* :class:`CaseResult`, the result row: built in one place, :func:`case_result`, from what the
  case's test report carries, and never changed after.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

OUTCOMES = ("passed", "wrong", "skipped", "error")
CASE_PROPERTY = "harness_case"  # user property: the case's identity (CaseRef.identity())
VERDICT_PROPERTY = "harness_verdict"  # user property: wrong answer or not, its reason, the case's details
# The key of its score in a test case's additional_metadata, where the case's metric leaves it
# (harness.tasks.metric.PassFailMetric): DeepEval scores a copy of the metric, so the metric
# object of the CaseSpec never holds the score.
SCORE_KEY = "harness_score"


@dataclass(frozen=True)
class CaseRef:
    """The parameter of one benchmark case."""

    task: str
    variant: str
    item: Any  # the task's item (has ``item_id``)
    fields: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)  # group, subject, ...

    @property
    def item_id(self) -> str:
        return str(self.item.item_id)

    @property
    def case_id(self) -> str:
        """The case's name everywhere: pytest id, DeepEval test case name, report rows."""
        return f"{self.variant}/{self.item_id}"

    def identity(self) -> dict:
        """The case's identity fields of the result row (a plain dict: it travels from xdist workers)."""
        return {"variant": self.variant, "task": self.task, "item_id": self.item_id, **self.fields}


def case_ref(item) -> CaseRef | None:
    """The ``CaseRef`` parameter of a collected pytest item; None for a test that is no case."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    return next((v for v in params.values() if isinstance(v, CaseRef)), None)


def marked_as_case(user_properties) -> bool:
    """Whether an item's (or its report's) user properties name it a benchmark case."""
    return any(name == CASE_PROPERTY for name, _ in user_properties)


@dataclass(frozen=True)
class CaseSpec:
    """One item and its prediction, ready to score: ``assert_test(spec.test_case, [spec.metric])``.

    ``skip_reason`` set: the item cannot be scored (its database is absent, say) and is skipped
    with that reason, counted in the report, never dropped.
    """

    test_case: Any  # deepeval.test_case.LLMTestCase
    metric: Any  # a deepeval BaseMetric
    prediction: str | None = None  # what the result row shows as the prediction
    extra: Mapping[str, Any] = field(default_factory=dict)  # more fields of the result row
    skip_reason: str = ""
    sample: Mapping[str, Any] = field(
        default_factory=dict
    )  # what the model saw and said (prompt, raw output)

    @property
    def score(self) -> float | None:
        """The score the metric gave this case once scored (the result row's ``score``); None before."""
        metadata = getattr(self.test_case, "additional_metadata", None) or {}
        score = metadata.get(SCORE_KEY)
        return float(score) if isinstance(score, (int, float)) and not isinstance(score, bool) else None


@dataclass(frozen=True)
class CaseResult:
    """The result row of one (variant, task, item)."""

    variant: str
    benchmark: str  # the task (written "task" in results.json)
    item_id: str
    group: str  # Spider hardness, MMLU category, ...
    outcome: str  # one of OUTCOMES
    reason: str = ""
    prediction: str | None = None
    score: float | None = None  # the metric's score (1.0/0.0 for a pass/fail metric)
    extra: Mapping[str, Any] = field(default_factory=dict)  # e.g. MMLU "subject", "choice_scores"

    def as_dict(self) -> dict:
        """The row of ``results.json``'s ``cases``: the field ``benchmark`` is written ``task``,
        the word of the command line, experiments, samples and gates (docs/results_schema.md)."""
        row = {**vars(self), "extra": dict(self.extra)}
        return {("task" if k == "benchmark" else k): v for k, v in row.items()}


_IDENTITY = ("variant", "task", "item_id", "group")


def case_result(
    identity: Mapping[str, Any], outcome: str, reason: str = "", details: Mapping | None = None
) -> CaseResult:
    """The result row of a case from its identity (:meth:`CaseRef.identity`), its outcome and
    reason, and the details its case fixture produced (prediction, score, extra fields)."""
    details = details or {}
    extra = {k: v for k, v in identity.items() if k not in _IDENTITY}
    extra.update(details.get("extra") or {})
    return CaseResult(
        variant=str(identity["variant"]),
        benchmark=str(identity["task"]),
        item_id=str(identity["item_id"]),
        group=str(identity.get("group") or ""),
        outcome=outcome,
        reason=reason,
        prediction=details.get("prediction"),
        score=details.get("score"),
        extra=extra,
    )


def wrong_answer_reason(message: str) -> str:
    """deepeval's assertion message ends with the metric's own reason; keep that part."""
    marker = "reason: "
    if marker in message:
        return message[message.index(marker) + len(marker) :].removesuffix(") failed.")
    return message
