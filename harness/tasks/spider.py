"""Spider execution accuracy: does the model's SQL return what the gold query returns?

One item, in order: a ``dev.json`` row becomes a :class:`SpiderItem`; :func:`spider_prompt`
renders it (template, the database's schema, k shots from the **train** split); the engine
generates greedily in batches, each row stopping at the end of its SQL (:data:`SQL_END`);
``harness.sql.extract_sql`` pulls the query out of the raw text; :class:`ExecutionAccuracy`
runs gold and prediction read-only on the item's database and compares the results as the
official test-suite evaluator does.

The prompt code is shared with training (``training/`` formats its examples with
:func:`spider_prompt` and :func:`spider_completion`), so a fine-tuned model is evaluated on the
format it learned. Each template has a ``version``; bump it whenever its text changes.

Data: the official layout (``dev.json``, ``train_spider.json`` [+ ``train_others.json``],
``tables.json``, ``database/<db_id>/<db_id>.sqlite``), or the hub copy ``xlangai/spider`` for
the rows (databases and ``tables.json`` still come from a folder: the hub carries none).
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Literal, Protocol

from deepeval.errors import MissingTestCaseParamsError
from deepeval.metrics import BaseMetric
from deepeval.test_case import LLMTestCase, SingleTurnParams
from pydantic import Field

from harness.data.sources import DataNotFound, locate
from harness.engine.core import GenerationSettings, LoglikSettings, StopRule
from harness.files import atomic_write
from harness.records.results import CaseSpec
from harness.sql import (
    EMPTY_PREDICTION,
    GOLD_FAILED,
    PREDICTION_FAILED,
    database_file,
    execution_match,
    extract_sql,
)
from harness.tasks.base import (
    BatchSize,
    NonNegative,
    Positive,
    Predictions,
    Report,
    RunContext,
    TaskData,
    TaskSettings,
    VariantOptions,
    check_threshold,
    require_expected,
    seeded_sample,
    shots_of,
)
from harness.tasks.spider_hardness import HARDNESS_LEVELS, hardness_of

SPLIT_FILES = {"dev": ("dev.json",), "train": ("train_spider.json", "train_others.json")}


class SpiderDataError(ValueError):
    """The Spider folder or one of its files is missing or malformed."""


# -- items, schemas, databases -------------------------------------------------------------------


@dataclass(frozen=True)
class SpiderItem:
    """One Spider question with its gold query.

    ``index`` is the 0-based position in the split (the line of ``dev_gold.sql``), so it is
    stable across samplings and matches the official evaluator's line numbers.
    """

    split: str
    index: int
    db_id: str
    question: str
    gold_sql: str
    hardness: str | None = None

    @property
    def item_id(self) -> str:
        return f"{self.split}-{self.index:04d}"


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


def find_spider_dir(explicit: str | os.PathLike | None = None) -> Path:
    """The Spider folder (one with tables.json): ``explicit`` if given, else ``$HARNESS_SPIDER_DIR``,
    else ``$HARNESS_DATA_DIR/spider``, ./data/spider, ../shared/data/spider
    (harness.data.sources); the error names every folder looked at and ``harness data fetch``."""
    try:
        return locate("spider", explicit, option="--spider-dir")
    except DataNotFound as e:
        raise SpiderDataError(str(e)) from None


def database_path(spider_dir: Path, db_id: str) -> Path:
    """``<spider_dir>/database/<db_id>/<db_id>.sqlite`` (harness.sql.database_file): a db_id that
    is not a plain name, or that resolves outside ``database/``, is refused, so no item can
    open, and then quote, a database elsewhere."""
    try:
        return database_file(Path(spider_dir), db_id)
    except ValueError as e:
        raise SpiderDataError(str(e)) from None


def _read_json(path: Path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise SpiderDataError(f"{path}: file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SpiderDataError(f"{path}: not valid JSON ({e})") from None


def items_from_rows(rows: list[dict], split: str, source: str) -> list[SpiderItem]:
    """Turn official-layout rows (``db_id``, ``question``, ``query``) into items."""
    items = []
    for index, row in enumerate(rows):
        missing = [k for k in ("db_id", "question", "query") if not isinstance(row, dict) or not row.get(k)]
        if missing:
            raise SpiderDataError(f"{source}: item {index} lacks {', '.join(missing)}")
        sql_tree = row.get("sql")
        items.append(
            SpiderItem(
                split=split,
                index=index,
                db_id=row["db_id"],
                question=row["question"].strip(),
                gold_sql=row["query"].strip(),
                hardness=hardness_of(sql_tree) if isinstance(sql_tree, dict) else None,
            )
        )
    return items


def load_spider_split(spider_dir: Path, split: str) -> list[SpiderItem]:
    """All items of ``split`` ("dev" or "train") from the official layout, in file order.

    For "train", ``train_others.json`` is appended when present (it is optional).
    """
    if split not in SPLIT_FILES:
        raise SpiderDataError(f"unknown Spider split {split!r}; choose from {sorted(SPLIT_FILES)}")
    rows: list[dict] = []
    files = SPLIT_FILES[split]
    for i, name in enumerate(files):
        path = Path(spider_dir) / name
        if i > 0 and not path.exists():
            continue  # train_others.json is optional
        data = _read_json(path)
        if not isinstance(data, list):
            raise SpiderDataError(f"{path}: expected a JSON list of items")
        rows.extend(data)
    return items_from_rows(rows, split, str(Path(spider_dir) / files[0]))


# A validation split carved from train, for choosing a sweep's point without peeking at dev: the
# items of a seeded tenth of train's databases (Spider's train and dev databases are disjoint, so
# these are disjoint from dev's too). Training configs with data.hold_out = "validation" never
# see them.
VALIDATION_FRACTION = 0.1
VALIDATION_SEED = 0


def validation_databases(
    train: Sequence[SpiderItem], fraction: float = VALIDATION_FRACTION, seed: int = VALIDATION_SEED
) -> frozenset[str]:
    """The train databases whose items form the validation split: a seeded sample of
    ``fraction`` of them (at least one), the same in every process."""
    databases = sorted({item.db_id for item in train})
    if not databases:
        return frozenset()
    k = max(1, round(fraction * len(databases)))
    return frozenset(random.Random(f"spider-validation:{seed}").sample(databases, k))


def split_validation(train: Sequence[SpiderItem]) -> tuple[list[SpiderItem], list[SpiderItem]]:
    """(train without the validation databases, the validation items relabelled
    ``validation-<train index>``), both in file order."""
    held = validation_databases(train)
    rest = [item for item in train if item.db_id not in held]
    validation = [replace(item, split="validation") for item in train if item.db_id in held]
    return rest, validation


def load_spider_hub(split: str, spider_dir: Path | None = None) -> list[SpiderItem]:
    """Items from the Hugging Face hub copy ``xlangai/spider`` (needs internet, or a local
    copy of the same schema passed as ``spider_dir`` to ``datasets.load_dataset``).

    The hub calls the dev split "validation"; its rows have the official fields.
    """
    from datasets import load_dataset

    hub_split = {"dev": "validation", "train": "train"}[split]
    if spider_dir is not None and Path(spider_dir).is_dir():
        ds = load_dataset(str(spider_dir), split=hub_split)
    else:
        ds = load_dataset("xlangai/spider", split=hub_split)
    return items_from_rows([dict(r) for r in ds], split, f"xlangai/spider[{hub_split}]")


def load_schemas(spider_dir: Path) -> dict[str, Schema]:
    """Every database schema of ``tables.json``, keyed by ``db_id``."""
    path = Path(spider_dir) / "tables.json"
    schemas = {}
    for entry in _read_json(path):
        try:
            tables = entry["table_names_original"]
            cols = entry["column_names_original"]
            types = entry["column_types"]
            by_table: list[list[Column]] = [[] for _ in tables]
            for (t, name), ctype in zip(cols, types):
                if t >= 0:
                    by_table[t].append(Column(name, ctype))

            def qualified(col_index: int) -> str:
                t, name = cols[col_index]
                return f"{tables[t]}.{name}"

            pks = tuple(
                qualified(c)
                for pk in entry.get("primary_keys", [])
                for c in (pk if isinstance(pk, list) else [pk])
            )
            fks = tuple((qualified(a), qualified(b)) for a, b in entry.get("foreign_keys", []))
            schemas[entry["db_id"]] = Schema(
                db_id=entry["db_id"],
                tables=tuple(Table(n, tuple(c)) for n, c in zip(tables, by_table)),
                primary_keys=pks,
                foreign_keys=fks,
            )
        except (KeyError, IndexError, TypeError, AttributeError) as e:
            db_id = entry.get("db_id", "?") if isinstance(entry, dict) else "?"
            raise SpiderDataError(f"{path}: malformed entry {db_id!r} ({e!r})") from None
    return schemas


def sample_items(items: list[SpiderItem], limit: int | None, seed: int) -> list[SpiderItem]:
    """A seeded sample of ``limit`` items (all of them when ``limit`` is None or 0), in split order.

    A simple random sample, not stratified by hardness: the default experiment's 50 items and
    every number measured on them stay what they were.
    """
    return seeded_sample(items, limit or 0, seed)


# -- prompts ---------------------------------------------------------------------------------------


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
TemplateName = Literal[tuple(SPIDER_TEMPLATES)]  # type: ignore[valid-type]


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


def _user_message(item: SpiderItem, schema: Schema | None, template: SpiderTemplate) -> str:
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


def _shot_message(shot: SpiderItem, template: SpiderTemplate) -> str:
    """A shot shows a question and its SQL, without its database's schema (as DAIL-SQL's
    best example layout does): the schema of a shot's database says nothing about the asked
    one, and leaving it out keeps a 3-shot prompt near a 0-shot one in length (on a CPU,
    prompt length is most of the cost)."""
    return f"Question: {shot.question}" if template.with_schema else shot.question


def select_shots(
    pool: Sequence[SpiderItem], k: int, seed: int, exclude_question: str | None = None
) -> list[SpiderItem]:
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


# -- when generation stops -----------------------------------------------------------------------

_FENCE = "```"
_REPEAT_MIN_CHARS = 12


def sql_is_complete(text: str) -> bool:
    """Whether generation can stop: the SQL statement has ended.

    Stops at a ``;`` outside string literals, at ``[/INST]`` (the paper's model started a new
    turn), at a closing code fence, or at the first line repeated (the paper's Figure 2: one
    query, then the same query again until the token cap).
    """
    if "[/INST]" in text:
        return True
    body = text.lstrip()
    if body.startswith(_FENCE):
        if body.count(_FENCE) >= 2:
            return True
        body = body[len(_FENCE) :]
    elif _FENCE in body and body.index(_FENCE) > 0:
        return True
    if _has_statement_end(body):
        return True
    lines = [ln.strip().lstrip("-").strip() for ln in text.splitlines()]
    if not text.endswith("\n"):
        lines = lines[:-1]  # the last line is still being written
    complete_lines = [ln for ln in lines if len(ln) >= _REPEAT_MIN_CHARS]
    return len(complete_lines) != len(set(complete_lines))


def _has_statement_end(text: str) -> bool:
    """A ``;`` outside quotes, after some SQL."""
    quote = None
    seen_content = False
    for ch in text:
        if quote:
            if ch == quote:
                quote = None
        elif ch in ("'", '"', "`"):
            quote = ch
        elif ch == ";":
            if seen_content:
                return True
        elif not ch.isspace():
            seen_content = True
    return False


SQL_END = StopRule("sql_end", sql_is_complete)


# -- the metric ------------------------------------------------------------------------------------


class ExecutionAccuracy(BaseMetric):
    """1.0 when the predicted SQL returns the same result as the gold SQL on the item's
    database, else 0.0, with the reason (see :func:`harness.sql.execution_match`).

    The test case carries the prediction in ``actual_output`` (already extracted SQL; empty
    counts as wrong), the gold SQL in ``expected_output``, and its database as
    ``metadata["db_path"]`` (the SQLite file; the harness's tasks give it) or
    ``metadata["db_id"]`` with ``spider_dir`` given here (``<spider_dir>/database/<db_id>/
    <db_id>.sqlite``: the metric on its own, in a user's deepeval tests). A database file that
    is absent is a failure with that reason; tasks skip such items before scoring.

    Each ``__init__`` argument is stored under its own name: DeepEval copies a metric by
    passing the attributes of ``vars(metric)`` whose names match ``__init__`` parameters.
    """

    _required_params = [SingleTurnParams.ACTUAL_OUTPUT, SingleTurnParams.EXPECTED_OUTPUT]

    def __init__(self, spider_dir: str | Path | None = None, timeout_s: float = 5.0, threshold: float = 1.0):
        if spider_dir is not None and not Path(spider_dir).is_dir():
            raise ValueError(
                f"spider_dir {str(spider_dir)!r} is not a folder; pass the Spider folder with database/"
            )
        if not isinstance(timeout_s, (int, float)) or timeout_s <= 0:
            raise ValueError(f"timeout_s must be a positive number of seconds, got {timeout_s!r}")
        check_threshold(threshold)
        self.spider_dir = spider_dir
        self.timeout_s = timeout_s
        self.threshold = threshold

    def _database(self, test_case: LLMTestCase) -> Path:
        metadata = test_case.metadata or {}
        if metadata.get("db_path"):
            return Path(metadata["db_path"])
        if self.spider_dir is not None and metadata.get("db_id"):
            try:
                return database_path(Path(self.spider_dir), str(metadata["db_id"]))
            except SpiderDataError as e:
                self.error = str(e)
                raise MissingTestCaseParamsError(self.error) from None
        self.error = (
            f"test case has no metadata['db_path'] (or metadata['db_id'] with spider_dir) for the "
            f"'{self.__name__}' metric; build it with LLMTestCase(..., metadata={{'db_path': sqlite_file}})"
        )
        raise MissingTestCaseParamsError(self.error)

    def measure(self, test_case: LLMTestCase, *args, **kwargs) -> float:
        self.error = None
        gold_sql = require_expected(self, test_case)
        db_path = self._database(test_case)
        if not db_path.is_file():
            ok, reason = False, f"database {db_path.stem} is absent ({db_path}); the item cannot be scored"
        else:
            verdict = execution_match(
                db_path, gold_sql, test_case.actual_output or "", timeout_s=self.timeout_s
            )
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


# -- the task ----------------------------------------------------------------------------------------


class SpiderSettings(TaskSettings):
    """The ``[spider]`` table of an experiment. ``batch_size = "auto"``: 8 on a CPU; on a CUDA
    device the largest batch that fits, from a cap of 64 prompts, found once per (model, device,
    task) and reused (:func:`harness.engine.core.split_on_oom`)."""

    data_dir: str = ""  # empty: looked up as harness.data.sources says ($HARNESS_SPIDER_DIR, ./data, ...)
    source: Literal["disk", "hub"] = "disk"  # "hub": rows from xlangai/spider, databases still from data_dir
    # "validation": items of a seeded tenth of train's databases (split_validation), for choosing
    # a sweep's point; the shots then come from the rest of train
    split: Literal["dev", "train", "validation"] = "dev"
    template: TemplateName = "schema"
    # How ``limit`` picks its items: "seeded", a seeded random sample; "first", the split's first
    # ``limit`` items in file order (the paper's 200: dev 0-199, docs/paper_protocol.md).
    sample: Literal["seeded", "first"] = "seeded"
    timeout_s: Annotated[float, Field(gt=0)] = 5.0  # per query, gold and predicted
    max_new_tokens: Positive = 128
    batch_size: BatchSize = 8
    # For a variant with an adapter: how far the adapter moved the model on Spider itself, the
    # mean KL(base || adapted) over the gold answer's tokens after each prompt (forward KL on the
    # new task, which predicts forgetting: Shenfeld et al. 2025). Two forward passes per item.
    kl_to_base: bool = True
    kl_limit: NonNegative = 0  # the first this many scored items (0: all)
    kl_max_batch_tokens: Positive = 4096


class SpiderOptions(VariantOptions):
    """A variant's ``spider = {...}`` table: ``shots`` (0 = zero-shot)."""


@dataclass(frozen=True)
class SpiderContext:
    """What Spider's prompts and metric read besides the items."""

    spider_dir: Path
    schemas: dict[str, Schema]
    train: tuple[SpiderItem, ...]  # the shot pool
    databases: dict[str, Path]  # db_id -> its database file (database_path), for every item

    def database(self, item: SpiderItem) -> Path:
        return self.databases[item.db_id]


@dataclass(frozen=True)
class SpiderPrediction:
    item_id: str
    prompt: str
    raw: str  # what the model generated, up to the stop point
    sql: str  # extract_sql(raw)
    kl_to_base: float | None = None  # mean KL(base || adapted) over the gold answer's tokens


def load_spider_data(settings: SpiderSettings, seed: int) -> TaskData:
    spider_dir = find_spider_dir(settings.data_dir or None)
    split = "train" if settings.split == "validation" else settings.split
    if settings.source == "hub":
        items, train = load_spider_hub(split), load_spider_hub("train")
    else:
        items, train = load_spider_split(spider_dir, split), load_spider_split(spider_dir, "train")
    if settings.split == "validation":
        train, items = split_validation(train)
    # Resolved once per database; a db_id that would leave database/ is refused here.
    databases = {db_id: database_path(spider_dir, db_id) for db_id in dict.fromkeys(i.db_id for i in items)}
    if settings.sample == "first" and settings.limit:
        selected = items[: settings.limit]
    else:
        selected = sample_items(items, settings.limit, seed)
    context = SpiderContext(spider_dir, load_schemas(spider_dir), tuple(train), databases)
    return TaskData(tuple(selected), context)


def generation_prompts(
    items: Sequence[SpiderItem],
    ctx: SpiderContext,
    template: SpiderTemplate,
    shots: int,
    seed: int,
    tokenizer,
) -> dict[str, str]:
    """The prompt of every item whose database exists, by item id."""
    shot_pairs = [(s, ctx.schemas.get(s.db_id)) for s in select_shots(ctx.train, shots, seed=seed)]
    return {
        item.item_id: spider_prompt(
            item, template, schema=ctx.schemas.get(item.db_id), shots=shot_pairs, tokenizer=tokenizer
        )
        for item in items
        if ctx.database(item).is_file()
    }


def predict_sql(
    run: RunContext,
    prompts: dict[str, str],
    variant,
    *,
    namespace: str,
    max_new_tokens: int,
    batch_size: int,
    info: dict,
) -> Predictions:
    """Generate SQL for ``prompts`` (item id -> prompt) and extract the query from each output."""
    settings = GenerationSettings(max_new_tokens=max_new_tokens, batch_size=batch_size, stop=SQL_END)
    ids = list(prompts)
    raws, phase = run.engine.generate(
        variant, [prompts[i] for i in ids], settings, namespace=namespace, desc=f"{namespace} {variant.name}"
    )
    phase.info.update(n_prompts=len(ids), seed=run.seed, **info)
    by_item = {i: SpiderPrediction(i, prompts[i], raw, extract_sql(raw)) for i, raw in zip(ids, raws)}
    return Predictions(by_item, phase)


def with_kl_to_base(
    run: RunContext,
    items: Sequence,
    prompts: dict[str, str],
    predictions: Predictions,
    variant,
    settings,
    namespace: str,
) -> Predictions:
    """``predictions`` with each item's KL(base || adapted) on its gold answer after its prompt."""
    ids = list(prompts)  # built from ``items``: every prompt has its item
    if settings.kl_limit:
        ids = ids[: settings.kl_limit]
    answer_of = {item.item_id: spider_answer(item) for item in items if item.item_id in prompts}
    loglik = LoglikSettings(batch_size=settings.batch_size, max_batch_tokens=settings.kl_max_batch_tokens)
    divergences, phase = run.engine.kl_to_base(
        variant,
        [(prompts[i], answer_of[i]) for i in ids],
        loglik,
        namespace=namespace,
        desc=f"{namespace} {variant.name} KL to base",
    )
    phase.info.update(kind="kl_to_base", n_prompts=len(ids), seed=run.seed)
    kl = {i: d.mean_kl for i, d in zip(ids, divergences)}
    by_item = {i: replace(p, kl_to_base=kl.get(i)) for i, p in predictions.by_item.items()}
    return Predictions(by_item, predictions.phase, {**predictions.more_phases, "kl": phase})


_FAILURE_KINDS = (  # (the start of an execution_match reason, its kind), first match wins
    (EMPTY_PREDICTION, "no SQL"),
    (PREDICTION_FAILED["error"], "SQL error"),
    (PREDICTION_FAILED["timeout"], "timeout"),
    (PREDICTION_FAILED["forbidden"], "refused (not one read-only SELECT)"),
    (PREDICTION_FAILED["too_many_rows"], "too many rows"),
    (GOLD_FAILED, "gold query failed"),
    ("same rows in another order", "wrong order"),
    ("database", "no database"),  # ExecutionAccuracy.measure: the item's database is absent
)


def sql_failure_kind(reason: str) -> str:
    """The kind of a wrong text-to-SQL answer, from its execution-match reason."""
    for start, kind in _FAILURE_KINDS:
        if reason.startswith(start):
            return kind
    if " column" in reason.split(";")[0]:
        return "wrong columns"
    if reason.startswith("gold has") and "rows" in reason:
        return "wrong number of rows"
    if reason.startswith("both have"):
        return "wrong values"
    return "other"


def sql_case(
    item_question: str,
    gold_sql: str,
    db_path: Path,
    prediction: SpiderPrediction | None,
    variant,
    case_name: str,
    metric: ExecutionAccuracy,
    metadata: dict,
) -> CaseSpec:
    """The DeepEval case of one text-to-SQL item (Spider, or a user's own set)."""
    if not db_path.is_file() or prediction is None:
        return CaseSpec(None, metric, skip_reason=f"database {db_path.parent.name!r} absent ({db_path})")
    test_case = LLMTestCase(
        name=case_name,
        input=item_question,
        actual_output=prediction.sql,
        expected_output=gold_sql,
        metadata={"db_path": str(db_path), "variant": variant.name, "raw_output": prediction.raw, **metadata},
    )
    extra = {} if prediction.kl_to_base is None else {"kl_to_base": prediction.kl_to_base}
    return CaseSpec(
        test_case,
        metric,
        prediction=prediction.sql,
        extra=extra,
        sample={"prompt": prediction.prompt, "raw_output": prediction.raw},
    )


# Beside a run's ``predictions/<variant>.<task>.sql``: which items its lines answer, and their gold.
IDS_SUFFIX = ".ids.json"
GOLD_SUFFIX = ".gold.sql"


def subset_files(predictions: Path) -> tuple[Path, Path]:
    """(ids sidecar, gold file) of a predictions file: ``ft.spider.sql`` has ``ft.spider.ids.json``
    and ``ft.spider.gold.sql`` beside it."""
    predictions = Path(predictions)
    stem = predictions.name.removesuffix(".sql")
    return predictions.with_name(stem + IDS_SUFFIX), predictions.with_name(stem + GOLD_SUFFIX)


def one_line(sql: str) -> str:
    """A query on one line, as the official files hold them: only the characters that would
    break the line or the field (newline, carriage return, tab) become spaces, so the text the
    benchmark scored is otherwise kept, inside string literals too."""
    return (sql or "").replace("\r\n", " ").translate(_LINE_BREAKS).strip()


_LINE_BREAKS = str.maketrans({"\n": " ", "\r": " ", "\t": " "})


def write_sql_predictions(path_stem: Path, variant, items: Sequence, predictions: Predictions, row) -> None:
    """The predictions as JSONL (``row(item, prediction)`` per item) and as an official-evaluator
    ``.sql`` file: one query per line, aligned with the items, blank for unscored items; beside
    it, the gold file in the official format (``query<TAB>db_id``) and a sidecar naming the items
    (``{"split": ..., "ids": [index, ...]}``, for items that have a split index), so that
    ``harness score-spider <variant>.spider.sql`` scores exactly these items."""
    path_stem.parent.mkdir(parents=True, exist_ok=True)
    rows, sql_lines, gold_lines = [], [], []
    for item in items:
        pred = predictions.by_item.get(item.item_id)
        rows.append(
            {
                "item_id": item.item_id,
                "variant": variant.name,
                **row(item, pred),
                "response_query": pred.sql if pred else None,
                "raw_output": pred.raw if pred else None,
            }
        )
        sql_lines.append(one_line(pred.sql if pred else ""))
        gold_lines.append(f"{one_line(item.gold_sql)}\t{one_line(item.db_id)}")
    sql_path = path_stem.with_name(path_stem.name + ".sql")
    ids_path, gold_path = subset_files(sql_path)
    atomic_write(
        path_stem.with_name(path_stem.name + ".jsonl"),
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
    )
    atomic_write(gold_path, "".join(line + "\n" for line in gold_lines))
    indexed = all(isinstance(getattr(item, "index", None), int) and hasattr(item, "split") for item in items)
    if items and indexed:
        sidecar = {"split": items[0].split, "ids": [item.index for item in items]}
        atomic_write(ids_path, json.dumps(sidecar) + "\n")
    atomic_write(sql_path, "".join(line + "\n" for line in sql_lines))


class SpiderTask:
    name = "spider"
    description = "a Spider execution-accuracy case (benchmarks/test_spider.py)"
    settings_model = SpiderSettings
    variant_model = SpiderOptions
    report = Report(
        title="Spider execution accuracy",
        group_label="hardness",
        group_order=(*HARDNESS_LEVELS, "unknown"),
        role="specialization",
    )

    def load(self, settings: SpiderSettings, *, seed: int) -> TaskData:
        return load_spider_data(settings, seed)

    def record_fields(self, item: SpiderItem) -> dict:
        return {"group": item.hardness or "unknown"}

    def predict(
        self,
        run: RunContext,
        data: TaskData,
        variant,
        settings: SpiderSettings,
        options: SpiderOptions | None,
    ) -> Predictions:
        template = get_spider_template(settings.template)
        prompts = generation_prompts(
            data.items,
            data.context,
            template,
            shots_of(settings, options),
            run.seed,
            run.engine.tokenizer(variant),
        )
        predictions = predict_sql(
            run,
            prompts,
            variant,
            namespace=self.name,
            max_new_tokens=settings.max_new_tokens,
            batch_size=settings.batch_size,
            info={
                "template": template.name,
                "template_version": template.version,
                "shots": shots_of(settings, options),
            },
        )
        if not (settings.kl_to_base and variant.adapter):
            return predictions
        return with_kl_to_base(run, data.items, prompts, predictions, variant, settings, self.name)

    def metric(self, settings: SpiderSettings) -> ExecutionAccuracy:
        return ExecutionAccuracy(timeout_s=settings.timeout_s)

    def case(
        self,
        item: SpiderItem,
        prediction,
        variant,
        settings: SpiderSettings,
        data: TaskData,
        metric: ExecutionAccuracy,
    ) -> CaseSpec:
        return sql_case(
            item.question,
            item.gold_sql,
            data.context.database(item),
            prediction,
            variant,
            f"{variant.name}/{item.item_id}",
            metric,
            {"db_id": item.db_id, "hardness": item.hardness},
        )

    def failure_kind(self, reason: str) -> str:
        return sql_failure_kind(reason)

    def write_outputs(self, run_dir: Path, variant, data: TaskData, predictions: Predictions) -> None:
        """``predictions/<variant>.spider.jsonl`` in the paper's format and ``.sql`` for the
        official evaluator (``harness score-spider`` or taoyds/test-suite-sql-eval)."""
        write_sql_predictions(
            run_dir / "predictions" / f"{variant.name}.spider",
            variant,
            data.items,
            predictions,
            lambda item, pred: {
                "index": item.index,
                "db_id": item.db_id,
                "question": item.question,
                "original_query": item.gold_sql,
            },
        )


TASK = SpiderTask()
