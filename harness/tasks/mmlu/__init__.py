"""MMLU: multiple-choice questions over 57 subjects, the measure of general knowledge.

One item, in order: a row of ``<split>/<subject>_<split>.csv`` becomes an :class:`MMLUItem`
(``items.py``; ``selection.py`` picks the questions a run asks); :func:`mmlu_prompt_parts`
renders it in lm-evaluation-harness's default layout, fitted into the model's context by
dropping shots (``prompts.py``); the engine scores the log-likelihood of " A" .. " D" after it,
of each choice's text, or generates and keeps the first letter (``scoring.py``);
:class:`MultipleChoice` passes when the predicted letter is the gold one (``metric.py``);
``task.py`` holds the task object the registry lists.
"""

from harness.tasks.mmlu.task import TASK

__all__ = ["TASK"]
