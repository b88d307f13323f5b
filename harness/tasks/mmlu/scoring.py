"""MMLU's three scoring modes, each from fitted prompts to one answer per question:

- ``loglik``: the log-likelihood of the letters " A" .. " D" after "Answer:" (lm-eval's mmlu);
- ``cloze``: the log-likelihood of each choice's text, picked by log-likelihood per character
  (lm-eval's mmlu_continuation, ``acc_norm``);
- ``generate``: the first character of a greedy continuation (the paper's way).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from harness.engine.core import Engine, GenerationSettings, LoglikSettings, Phase
from harness.tasks.mmlu.items import LETTERS, MMLUItem
from harness.tasks.mmlu.prompts import LETTER_CHOICES, FittedPrompt, cloze_choices

Scoring = Literal["loglik", "cloze", "generate"]
GENERATE_TOKENS = 5  # the paper read the first character; a few more help diagnosis


@dataclass(frozen=True)
class MMLUPrediction:
    item_id: str
    letter: str  # "A".."D", or whatever the generate mode produced (e.g. "S")
    logprobs: tuple[float, ...] | None  # loglik: of " A" .. " D"; cloze: of each choice's text
    raw: str | None  # generate: the raw continuation
    token_counts: tuple[int, ...] | None  # cloze: tokens of each choice's text
    prompt: str
    shots_used: int
    scoring: str


@dataclass(frozen=True)
class Answer:
    """What a scoring mode gives for one question."""

    letter: str
    logprobs: tuple[float, ...] | None = None
    raw: str | None = None
    token_counts: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Request:
    """Where a scoring mode sends its prompts: the engine, the variant and the cache's names."""

    engine: Engine
    variant: Any
    namespace: str
    fingerprint: dict[str, Any]
    desc: str


def first_letter(text: str) -> str:
    """The paper's answer extraction: the first non-whitespace character, uppercased.

    It may be no letter at all ("S" of "Sure", "(" ...), which then scores as wrong; "" for an
    empty or all-whitespace output.
    """
    stripped = text.lstrip()
    return stripped[0].upper() if stripped else ""


def acc_norm_choice(logprobs: Sequence[float], choices: Sequence[str]) -> int:
    """lm-eval's ``acc_norm``: the choice with the highest log-likelihood per character of its
    text (ties to the earlier one)."""
    normalised = [lp / max(len(c), 1) for lp, c in zip(logprobs, choices)]
    return max(range(len(normalised)), key=lambda i: (normalised[i], -i))


def choice_scores(prediction: MMLUPrediction, item: MMLUItem) -> tuple[float, ...]:
    """The four scores whose largest is the predicted answer: the letters' log-likelihoods, or,
    in the cloze form, each choice text's log-likelihood per character (:func:`acc_norm_choice`).
    The probability of the right answer and the answer KL read these, so the measures and the
    prediction read one distribution."""
    logprobs = prediction.logprobs or ()
    if prediction.scoring == "cloze":
        return tuple(lp / max(len(c), 1) for lp, c in zip(logprobs, item.choices))
    return tuple(logprobs)


def gold_token_loglik(prediction: MMLUPrediction, gold: int) -> float:
    """Cloze form: the gold text's log-likelihood per token, log p(text | prompt) / tokens. Not a
    probability among the choices (it ignores the others), and reported only under this name."""
    assert prediction.logprobs is not None and prediction.token_counts is not None
    return prediction.logprobs[gold] / max(prediction.token_counts[gold], 1)


def answer_room(scoring: str, items: Sequence[MMLUItem], count: Callable[[list[str]], list[int]]) -> int:
    """Tokens a prompt leaves for the answer: a letter, the generation, or a choice's text (the
    longest, counted)."""
    if scoring == "loglik":
        return 1
    if scoring == "generate":
        return GENERATE_TOKENS
    return 1 + max(count([c for item in items for c in cloze_choices(item)]) or [1])


def score_choices(
    request: Request,
    fitted: Sequence[FittedPrompt],
    items: Sequence[MMLUItem],
    loglik: LoglikSettings,
    cloze: bool,
) -> tuple[list[Answer], Phase]:
    """The ``loglik`` and ``cloze`` modes: the engine scores each choice after the prompt."""
    scores, phase = request.engine.score_choices(
        request.variant,
        [(f.prefix, f.suffix) for f in fitted],
        [cloze_choices(item) for item in items] if cloze else [LETTER_CHOICES] * len(fitted),
        loglik,
        namespace=request.namespace,
        fingerprint=request.fingerprint,
        desc=request.desc,
    )
    answers = [
        Answer(
            LETTERS[acc_norm_choice(s.logprobs, item.choices) if cloze else s.best],
            logprobs=tuple(s.logprobs),
            token_counts=tuple(s.token_counts) if cloze else None,
        )
        for s, item in zip(scores, items)
    ]
    return answers, phase


def generate_letters(
    request: Request, fitted: Sequence[FittedPrompt], batch_size: int | str
) -> tuple[list[Answer], Phase]:
    """The ``generate`` mode: a short greedy continuation, its first character the answer."""
    gen = GenerationSettings(max_new_tokens=GENERATE_TOKENS, batch_size=batch_size, add_special_tokens=True)
    raws, phase = request.engine.generate(
        request.variant,
        [f.prompt for f in fitted],
        gen,
        namespace=request.namespace,
        fingerprint=request.fingerprint,
        desc=request.desc,
    )
    return [Answer(first_letter(raw), raw=raw) for raw in raws], phase
