"""Every prompt the harness shows a model, shared by training and evaluation.

One source of truth: ``training/`` formats its examples with :func:`spider_prompt` and
:func:`spider_completion`, and the benchmarks render exactly the same text, so a fine-tuned
model is evaluated on the format it learned. Each template carries a ``version``; bump it
whenever its text changes, because the version goes into the prediction-cache fingerprint.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Protocol, Sequence

from harness.data.spider import Schema, SpiderItem


class ChatTokenizer(Protocol):
    """The part of a Hugging Face tokenizer that prompt rendering needs."""

    chat_template: str | None

    def apply_chat_template(self, conversation, tokenize: bool, add_generation_prompt: bool) -> str: ...


@dataclass(frozen=True)
class SpiderTemplate:
    """How a Spider question becomes a prompt.

    ``with_schema``: list the tables and columns of the item's database before the question
    (the paper did not, and its models guessed table names).
    ``chat``: render through the model's chat template when the tokenizer has one; the
    paper's template is a literal ``[INST] ... [/INST]`` string instead.
    """

    name: str
    version: int
    with_schema: bool
    chat: bool
    instruction: str = ""


SPIDER_TEMPLATES: dict[str, SpiderTemplate] = {
    "paper": SpiderTemplate(name="paper", version=2, with_schema=False, chat=False),
    "schema": SpiderTemplate(
        name="schema",
        version=2,
        with_schema=True,
        chat=True,
        instruction=(
            "Write one SQLite query that answers the question. "
            "Reply with the SQL only, ending with a semicolon."
        ),
    ),
}


def get_spider_template(name: str) -> SpiderTemplate:
    try:
        return SPIDER_TEMPLATES[name]
    except KeyError:
        raise ValueError(f"unknown Spider prompt template {name!r}; choose from {sorted(SPIDER_TEMPLATES)}") from None


def render_schema(schema: Schema) -> str:
    """A compact, one-line-per-table description of a database: ``table(col type, ...)``."""
    lines = [f"{t.name}({', '.join(f'{c.name} {c.type}' for c in t.columns)})" for t in schema.tables]
    if schema.foreign_keys:
        lines.append("Foreign keys: " + ", ".join(f"{a} = {b}" for a, b in schema.foreign_keys))
    return "\n".join(lines)


def _user_message(item: SpiderItem, schema: Schema | None, template: SpiderTemplate) -> str:
    parts = []
    if template.instruction:
        parts.append(template.instruction)
    if template.with_schema:
        if schema is None:
            raise ValueError(f"template {template.name!r} needs the schema of {item.db_id!r}, which tables.json lacks")
        parts.append(f"Database {schema.db_id}:\n{render_schema(schema)}")
    parts.append(f"Question: {item.question}" if template.with_schema else item.question)
    return "\n\n".join(parts)


def _shot_message(shot: SpiderItem, template: SpiderTemplate) -> str:
    """A shot shows a question and its SQL, without its database's schema (as DAIL-SQL's
    best example layout does): the schema of a shot's database says nothing about the asked
    one, and leaving it out keeps a 3-shot prompt near a 0-shot one in length (on a CPU,
    prompt length is most of the cost)."""
    return f"Question: {shot.question}" if template.with_schema else shot.question


def select_shots(pool: Sequence[SpiderItem], k: int, seed: int, exclude_question: str | None = None) -> list[SpiderItem]:
    """``k`` examples drawn from ``pool`` (the **train** split), deterministic in ``seed``.

    The same seed gives the same shots for every item and every variant, so variants differ
    only in the model.
    """
    if k <= 0:
        return []
    candidates = [s for s in pool if s.question != exclude_question]
    if len(candidates) < k:
        raise ValueError(f"asked for {k} shots but the shot pool has only {len(candidates)} items")
    if any(s.split != "train" for s in candidates[:1]):
        raise ValueError("Spider shots must come from the train split, never from dev")
    return random.Random(seed).sample(candidates, k)


def spider_prompt(
    item: SpiderItem,
    template: SpiderTemplate,
    *,
    schema: Schema | None = None,
    shots: Sequence[tuple[SpiderItem, Schema | None]] = (),
    tokenizer: ChatTokenizer | None = None,
) -> str:
    """The full prompt text for ``item``: k shots (question then gold SQL), then the question.

    With a chat template (``template.chat`` and a tokenizer that has one), shots are earlier
    user/assistant turns and the prompt ends with the assistant's generation cue. Otherwise
    it is the paper's ``[INST] question [/INST]`` text.
    """
    use_chat = template.chat and tokenizer is not None and getattr(tokenizer, "chat_template", None)
    if use_chat:
        messages = []
        for shot, _ in shots:
            messages.append({"role": "user", "content": _shot_message(shot, template)})
            messages.append({"role": "assistant", "content": spider_answer(shot)})
        messages.append({"role": "user", "content": _user_message(item, schema, template)})
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    turns = [f"[INST] {_shot_message(s, template)} [/INST] {spider_answer(s)}" for s, _ in shots]
    # The prompt ends with the space that separates "[/INST]" from the answer in every shot,
    # so the completion a model is trained on (spider_completion) starts right after it.
    turns.append(f"[INST] {_user_message(item, schema, template)} [/INST] ")
    return "\n".join(turns)


def spider_answer(item: SpiderItem) -> str:
    """The answer a model should give: the gold SQL on one line, ending with a semicolon."""
    sql = " ".join(item.gold_sql.split())
    return sql if sql.endswith(";") else sql + ";"


def spider_completion(item: SpiderItem, eos_token: str) -> str:
    """The training target: the answer then the end-of-sequence token, so the model learns to
    stop (the paper's model, trained without it, repeated its query until the token cap)."""
    if not eos_token:
        raise ValueError("the tokenizer has no end-of-sequence token; training targets must end with one")
    return spider_answer(item) + eos_token


# --- MMLU ------------------------------------------------------------------------------------
# lm-evaluation-harness's default MMLU layout, character for character, so our accuracies are
# comparable with published lm-eval numbers (lm_eval/tasks/mmlu/default/_default_template_yaml
# and _generate_configs.py): a per-subject description, then k shots from the dev split of the
# same subject ("first_n" sampler), then the question. Bump the version if any character changes.

from harness.data.mmlu import MMLUItem  # noqa: E402  (this section is appended to the module)

MMLU_TEMPLATE_VERSION = 1
MMLU_ANSWER_CUE = "Answer:"
_MMLU_FEWSHOT_DELIMITER = "\n\n"  # lm-eval's fewshot_delimiter, after every shot
_MMLU_TARGET_DELIMITER = " "  # lm-eval's target_delimiter, between "Answer:" and the letter


def mmlu_description(subject: str) -> str:
    """``The following are multiple choice questions (with answers) about high school physics.`` + blank line."""
    return f"The following are multiple choice questions (with answers) about {' '.join(subject.split('_'))}.\n\n"


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
    strangers = [s.item_id for s in shots if s.subject != item.subject]
    if strangers:
        # deepeval's MMLU benchmark reuses the first subject's shots for every subject; a shot
        # from another subject is that bug, not a choice.
        raise ValueError(f"{item.item_id}: MMLU shots must come from subject {item.subject!r}, got {', '.join(strangers)}")
    prefix = mmlu_description(item.subject) + "".join(mmlu_shot(s) + _MMLU_FEWSHOT_DELIMITER for s in shots)
    return prefix, mmlu_question(item)


def mmlu_prompt(item: MMLUItem, shots: Sequence[MMLUItem]) -> str:
    """The full k-shot prompt for ``item``; it ends with ``Answer:`` (no trailing space)."""
    prefix, suffix = mmlu_prompt_parts(item, shots)
    return prefix + suffix


def mmlu_shots(dev_items: Sequence[MMLUItem], subject: str, k: int, *, exclude: MMLUItem | None = None) -> list[MMLUItem]:
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
