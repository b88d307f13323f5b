"""MMLU prompts: lm-evaluation-harness's default layout (a subject description, k shots from the
same subject's dev split, the question, "Answer:"), its cloze form, and fitting a prompt into
the model's context by dropping shots.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from harness.tasks.mmlu.items import LETTERS, MMLUItem

# -- prompts: lm-evaluation-harness's default MMLU layout, character for character

MMLU_TEMPLATE_VERSION = 1
MMLU_ANSWER_CUE = "Answer:"
_MMLU_FEWSHOT_DELIMITER = "\n\n"  # lm-eval's fewshot_delimiter, after every shot
_MMLU_TARGET_DELIMITER = " "  # lm-eval's target_delimiter, between "Answer:" and the letter
# lm-eval scores " A" after "Answer:"
LETTER_CHOICES = tuple(_MMLU_TARGET_DELIMITER + letter for letter in LETTERS)


def _subject_words(subject: str) -> str:
    return " ".join(subject.split("_"))  # high_school_physics -> high school physics


def _require_same_subject(item: MMLUItem, shots: Sequence[MMLUItem]) -> None:
    strangers = [s.item_id for s in shots if s.subject != item.subject]
    if strangers:
        # deepeval's MMLU benchmark reuses the first subject's shots for every subject; a shot
        # from another subject is that bug, not a choice.
        raise ValueError(
            f"{item.item_id}: MMLU shots must come from subject {item.subject!r}, got {', '.join(strangers)}"
        )


def mmlu_description(subject: str) -> str:
    """``The following are multiple choice questions (with answers) about high school physics.``
    + blank line."""
    return f"The following are multiple choice questions (with answers) about {_subject_words(subject)}.\n\n"


def mmlu_question(item: MMLUItem) -> str:
    """One question as lm-eval's ``doc_to_text`` renders it: stripped question, the four
    choices verbatim (lm-eval does not strip them), and the answer cue."""
    a, b, c, d = item.choices
    return f"{item.question.strip()}\nA. {a}\nB. {b}\nC. {c}\nD. {d}\n{MMLU_ANSWER_CUE}"


def mmlu_shot(item: MMLUItem) -> str:
    """A solved example: the question, then " " and its answer letter."""
    return mmlu_question(item) + _MMLU_TARGET_DELIMITER + item.answer


def mmlu_prompt_parts(item: MMLUItem, shots: Sequence[MMLUItem]) -> tuple[str, str]:
    """The prompt split into (shared prefix, question suffix); ``prefix + suffix`` is the prompt.

    The prefix (description and shots, ending with the blank line before the question) is the
    same for every question of a subject, so a scorer can compute it once and reuse it.
    """
    _require_same_subject(item, shots)
    prefix = mmlu_description(item.subject) + "".join(mmlu_shot(s) + _MMLU_FEWSHOT_DELIMITER for s in shots)
    return prefix, mmlu_question(item)


def mmlu_prompt(item: MMLUItem, shots: Sequence[MMLUItem]) -> str:
    """The full k-shot prompt for ``item``; it ends with ``Answer:`` (no trailing space)."""
    prefix, suffix = mmlu_prompt_parts(item, shots)
    return prefix + suffix


def mmlu_shots(
    dev_items: Sequence[MMLUItem], subject: str, k: int, *, exclude: MMLUItem | None = None
) -> list[MMLUItem]:
    """The first ``k`` dev items of ``subject``, in file order (lm-eval's ``first_n`` sampler).

    ``exclude`` drops the item being asked, as lm-eval does when shots and questions come from
    the same split.
    """
    if k < 0:
        raise ValueError(f"the number of MMLU shots must be >= 0, got {k}")
    pool = sorted((s for s in dev_items if s.subject == subject and s != exclude), key=lambda s: s.index)
    if len(pool) < k:
        raise ValueError(f"asked for {k} MMLU shots of {subject!r}, but the shot pool has only {len(pool)}")
    return pool[:k]


# -- the cloze form: each choice's text scored after "Answer:" (lm-eval's mmlu_continuation)

MMLU_CLOZE_TEMPLATE_VERSION = 1


def cloze_question(item: MMLUItem) -> str:
    """``Question: <question>\nAnswer:``, without the lettered choices: the model is asked to
    continue with the answer's text, which a small model can do above chance where it cannot
    name a letter (SmolLM2's "MMLU cloze")."""
    return f"Question: {item.question.strip()}\nAnswer:"


def cloze_choices(item: MMLUItem) -> tuple[str, ...]:
    """The continuations scored: each choice's text after lm-eval's target delimiter (a space)."""
    return tuple(_MMLU_TARGET_DELIMITER + c for c in item.choices)


def cloze_prompt_parts(item: MMLUItem, shots: Sequence[MMLUItem]) -> tuple[str, str]:
    """lm-eval's ``mmlu_continuation`` layout: a description, shots answered with their gold
    choice's text, then the question; split into (shared prefix, question) like the letter form."""
    _require_same_subject(item, shots)
    description = f"The following are questions (with answers) about {_subject_words(item.subject)}.\n\n"
    solved = "".join(
        cloze_question(s) + cloze_choices(s)[LETTERS.index(s.answer)] + _MMLU_FEWSHOT_DELIMITER for s in shots
    )
    return description + solved, cloze_question(item)


# -- fitting a prompt into the context


class PromptTooLongError(ValueError):
    """A question does not fit the model's context even without shots; the message names it."""


@dataclass(frozen=True)
class FittedPrompt:
    """A prompt that fits the model, with how many of the requested shots it kept."""

    prefix: str
    suffix: str
    shots_used: int
    shots_requested: int
    n_tokens: int

    @property
    def prompt(self) -> str:
        return self.prefix + self.suffix

    @property
    def shots_dropped(self) -> int:
        return self.shots_requested - self.shots_used


def fit_shots(
    item: MMLUItem,
    shots: Sequence[MMLUItem],
    count_tokens: Callable[[str], int],
    max_tokens: int,
    *,
    reserve: int = 1,
) -> FittedPrompt:
    """The prompt with as many of ``shots`` (a prefix of them, in order) as fit in ``max_tokens``,
    leaving ``reserve`` tokens for the answer (1 for loglik, ``max_new_tokens`` for generate).

    Never truncates text: a prompt that is too long loses whole shots from the end, and the
    result says how many were kept so the report can show it. A question that does not fit
    even with no shots raises :class:`PromptTooLongError` naming the item.
    """
    return fit_prompts(
        [(item, shots)], lambda texts: [count_tokens(t) for t in texts], max_tokens, reserve=reserve
    )[0]


def fit_prompts(
    requests: Sequence[tuple[MMLUItem, Sequence[MMLUItem]]],
    count_tokens: Callable[[Sequence[str]], list[int]],
    max_tokens: int,
    *,
    reserve: int = 1,
    parts_of: Callable[[MMLUItem, Sequence[MMLUItem]], tuple[str, str]] | None = None,
) -> list[FittedPrompt]:
    """:func:`fit_shots` for many (question, shots) pairs, counting tokens a batch at a time:
    every prompt with all its shots first, then those that did not fit with one shot fewer,
    and so on (``count_tokens`` maps a list of texts to their token counts). ``parts_of``
    renders a prompt (default: :func:`mmlu_prompt_parts`; the cloze form: :func:`cloze_prompt_parts`)."""
    parts_of = parts_of or mmlu_prompt_parts
    fitted: list[FittedPrompt | None] = [None] * len(requests)
    kept = [len(shots) for _, shots in requests]
    pending = list(range(len(requests)))
    while pending:
        parts = [parts_of(requests[i][0], requests[i][1][: kept[i]]) for i in pending]
        counts = count_tokens([prefix + suffix for prefix, suffix in parts])
        too_long = []
        for i, (prefix, suffix), n_tokens in zip(pending, parts, counts):
            item, shots = requests[i]
            if n_tokens + reserve <= max_tokens:
                fitted[i] = FittedPrompt(prefix, suffix, kept[i], len(shots), n_tokens)
            elif kept[i] == 0:
                raise PromptTooLongError(
                    f"{item.item_id}: the 0-shot prompt is {n_tokens} tokens; with {reserve} reserved "
                    f"for the answer it exceeds the model's context of {max_tokens} tokens"
                )
            else:
                kept[i] -= 1
                too_long.append(i)
        pending = too_long
    return [f for f in fitted if f is not None]  # every request is fitted by now (or raised)
