"""Text-to-SQL prompts, shared by Spider, a user's own set (harness/tasks/text2sql.py) and
training: a database's schema, the templates (each with a ``version``; bump it whenever its
text changes), the shots, and the answer a fine-tuned model learns to write.
"""

from __future__ import annotations

import typing
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol


@dataclass(frozen=True)
class Column:
    name: str
    type: str


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]


@dataclass(frozen=True)
class Schema:
    """The tables of one database as ``tables.json`` gives them (original names)."""

    db_id: str
    tables: tuple[Table, ...]
    primary_keys: tuple[str, ...] = ()  # "table.column"
    foreign_keys: tuple[tuple[str, str], ...] = ()  # ("table.column", "table.column")


# -- prompts ---------------------------------------------------------------------------------------


class SQLQuestion(Protocol):
    """What a prompt reads of an item: Spider's SpiderItem, or a user's SQLItem (text2sql)."""

    @property
    def question(self) -> str: ...

    @property
    def gold_sql(self) -> str: ...

    @property
    def db_id(self) -> str: ...


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
TemplateName = Literal["paper", "schema"]  # the keys of SPIDER_TEMPLATES, spelled out for the type checker
assert set(typing.get_args(TemplateName)) == set(SPIDER_TEMPLATES), "TemplateName must list SPIDER_TEMPLATES"


def get_spider_template(name: str) -> SpiderTemplate:
    try:
        return SPIDER_TEMPLATES[name]
    except KeyError:
        raise ValueError(
            f"unknown Spider prompt template {name!r}; choose from {sorted(SPIDER_TEMPLATES)}"
        ) from None


def render_schema(schema: Schema) -> str:
    """A compact, one-line-per-table description of a database: ``table(col type, ...)``."""
    lines = [f"{t.name}({', '.join(f'{c.name} {c.type}' for c in t.columns)})" for t in schema.tables]
    if schema.foreign_keys:
        lines.append("Foreign keys: " + ", ".join(f"{a} = {b}" for a, b in schema.foreign_keys))
    return "\n".join(lines)


def _user_message(item: SQLQuestion, schema: Schema | None, template: SpiderTemplate) -> str:
    parts = []
    if template.instruction:
        parts.append(template.instruction)
    if template.with_schema:
        if schema is None:
            raise ValueError(
                f"template {template.name!r} needs the schema of {item.db_id!r}, which tables.json lacks"
            )
        parts.append(f"Database {schema.db_id}:\n{render_schema(schema)}")
    parts.append(f"Question: {item.question}" if template.with_schema else item.question)
    return "\n\n".join(parts)


def _shot_message(shot: SQLQuestion, template: SpiderTemplate) -> str:
    """A shot shows a question and its SQL, without its database's schema (as DAIL-SQL's
    best example layout does): the schema of a shot's database says nothing about the asked
    one, and leaving it out keeps a 3-shot prompt near a 0-shot one in length (on a CPU,
    prompt length is most of the cost)."""
    return f"Question: {shot.question}" if template.with_schema else shot.question


def spider_prompt(
    item: SQLQuestion,
    template: SpiderTemplate,
    *,
    schema: Schema | None = None,
    shots: Sequence[tuple[SQLQuestion, Schema | None]] = (),
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
        assert tokenizer is not None  # use_chat says so
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    turns = [f"[INST] {_shot_message(s, template)} [/INST] {spider_answer(s)}" for s, _ in shots]
    # The prompt ends with the space that separates "[/INST]" from the answer in every shot,
    # so the completion a model is trained on (spider_completion) starts right after it.
    turns.append(f"[INST] {_user_message(item, schema, template)} [/INST] ")
    return "\n".join(turns)


def spider_answer(item: SQLQuestion) -> str:
    """The answer a model should give: the gold SQL on one line, ending with a semicolon."""
    sql = " ".join(item.gold_sql.split())
    return sql if sql.endswith(";") else sql + ";"


def spider_completion(item: SQLQuestion, eos_token: str) -> str:
    """The training target: the answer then the end-of-sequence token, so the model learns to
    stop (the paper's model, trained without it, repeated its query until the token cap)."""
    if not eos_token:
        raise ValueError("the tokenizer has no end-of-sequence token; training targets must end with one")
    return spider_answer(item) + eos_token
