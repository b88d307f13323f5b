"""MMLU: multiple-choice questions over 57 subjects, the measure of general knowledge.

One item, in order: a row of ``<split>/<subject>_<split>.csv`` becomes an :class:`MMLUItem`
(``items.py``; ``selection.py`` picks the questions a run asks); :func:`mmlu_prompt_parts`
renders it in lm-evaluation-harness's default layout, fitted into the model's context by
dropping shots (``prompts.py``); the engine scores the log-likelihood of " A" .. " D" after it,
of each choice's text, or generates and keeps the first letter (``scoring.py``);
:class:`MultipleChoice` passes when the predicted letter is the gold one (``metric.py``);
``task.py`` holds the task object the registry lists.

This package's names are importable from ``harness.tasks.mmlu`` itself.
"""

from harness.tasks.mmlu.items import (
    CATEGORIES,
    LETTERS,
    MMLU_DIR_ENV,
    SELECTIONS,
    SPLITS,
    SUBJECT_CATEGORIES,
    MMLUDataError,
    MMLUItem,
    Selection,
    category_of,
    find_mmlu_dir,
    items_from_hub_rows,
    load_mmlu_hub,
    load_mmlu_split,
)
from harness.tasks.mmlu.metric import MultipleChoice
from harness.tasks.mmlu.prompts import (
    LETTER_CHOICES,
    MMLU_ANSWER_CUE,
    MMLU_CLOZE_TEMPLATE_VERSION,
    MMLU_TEMPLATE_VERSION,
    FittedPrompt,
    PromptTooLongError,
    cloze_choices,
    cloze_prompt_parts,
    cloze_question,
    fit_prompts,
    fit_shots,
    mmlu_description,
    mmlu_prompt,
    mmlu_prompt_parts,
    mmlu_question,
    mmlu_shot,
    mmlu_shots,
)
from harness.tasks.mmlu.scoring import (
    MMLUPrediction,
    Scoring,
    acc_norm_choice,
    choice_scores,
    first_letter,
    gold_token_loglik,
)
from harness.tasks.mmlu.selection import (
    PAPER_SELECTION,
    SELECTION_MODES,
    MMLUSelection,
    named_selection,
    select_mmlu,
)
from harness.tasks.mmlu.task import (
    TASK,
    MMLUContext,
    MMLUOptions,
    MMLUSettings,
    MMLUTask,
    load_mmlu_data,
    scoring_of,
)

__all__ = [
    "CATEGORIES",
    "LETTERS",
    "LETTER_CHOICES",
    "MMLU_ANSWER_CUE",
    "MMLU_CLOZE_TEMPLATE_VERSION",
    "MMLU_DIR_ENV",
    "MMLU_TEMPLATE_VERSION",
    "PAPER_SELECTION",
    "SELECTIONS",
    "SELECTION_MODES",
    "SPLITS",
    "SUBJECT_CATEGORIES",
    "TASK",
    "FittedPrompt",
    "MMLUContext",
    "MMLUDataError",
    "MMLUItem",
    "MMLUOptions",
    "MMLUPrediction",
    "MMLUSelection",
    "MMLUSettings",
    "MMLUTask",
    "MultipleChoice",
    "PromptTooLongError",
    "Scoring",
    "Selection",
    "acc_norm_choice",
    "category_of",
    "choice_scores",
    "cloze_choices",
    "cloze_prompt_parts",
    "cloze_question",
    "find_mmlu_dir",
    "first_letter",
    "fit_prompts",
    "fit_shots",
    "gold_token_loglik",
    "items_from_hub_rows",
    "load_mmlu_data",
    "load_mmlu_hub",
    "load_mmlu_split",
    "mmlu_description",
    "mmlu_prompt",
    "mmlu_prompt_parts",
    "mmlu_question",
    "mmlu_shot",
    "mmlu_shots",
    "named_selection",
    "scoring_of",
    "select_mmlu",
]
