"""MMLU's metric: the predicted letter against the gold one."""

from __future__ import annotations

from typing import ClassVar

from deepeval.test_case import LLMTestCase

from harness.numbers.stats import choice_probability
from harness.tasks.metric import PassFailMetric
from harness.tasks.mmlu.items import LETTERS


class MultipleChoice(PassFailMetric):
    """Passes when the predicted letter (``actual_output``) is the gold one (``expected_output``,
    one of A-D); a prediction that is not a single letter A-D (for example "S" or "") is wrong,
    and the reason says it was not a valid choice.

    When the test case carries the choices' scores (``metadata["choice_scores"]``, in the
    normalisation the prediction uses, from the log-likelihood and cloze scorings) the reason
    also gives the probability the model puts on the right answer among the choices (the
    report's continuous measure, which moves before the accuracy does).
    """

    metric_name: ClassVar[str] = "Multiple Choice"

    def judge(self, test_case: LLMTestCase, gold: str) -> tuple[bool, str]:
        answer = gold.upper()
        if answer not in LETTERS:
            self.error = f"expected_output must be one of {', '.join(LETTERS)}, got {answer!r}"
            raise ValueError(self.error)
        predicted = (test_case.actual_output or "").strip()
        if predicted.upper() not in LETTERS:
            ok = False
            reason = f"prediction {predicted!r} is not a valid choice (A-D); the answer is {answer}"
        elif predicted.upper() == answer:
            ok, reason = True, f"prediction {predicted.upper()} is the answer"
        else:
            ok, reason = False, f"prediction {predicted.upper()}, answer {answer}"
        scores = (test_case.metadata or {}).get("choice_scores")
        if scores:
            probability = choice_probability(scores, LETTERS.index(answer))
            reason += f" (probability of the answer among the choices: {probability:.2f})"
        return ok, reason
