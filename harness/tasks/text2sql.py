"""Your own text-to-SQL set, scored like Spider: a JSONL file of questions and your SQLite files.

Each line of the file is one item::

    {"question": "How many singers are there?", "query": "SELECT count(*) FROM singer", "db_id": "concert"}

``db_id`` names ``<databases>/<db_id>.sqlite`` (or ``<databases>/<db_id>/<db_id>.sqlite``, the
Spider layout); instead, ``db_path`` may give the file, relative to the JSONL file's folder. An
optional ``id`` names the item in reports, an optional ``group`` groups items in the report
(default: the database). The prompt is Spider's (same templates, the schema read from the
SQLite file itself), so an adapter fine-tuned on Spider is asked in the format it learned;
generation, SQL extraction, the read-only sandbox and the metric are Spider's too.

In the experiment::

    [experiment]
    tasks = ["spider", "mmlu", "text2sql"]

    [text2sql]
    path = "examples/text2sql/questions.jsonl"
    databases = "examples/text2sql/databases"

The set is untrusted input, checked before any model work, each problem one error naming the
file and item: the JSONL file and the databases must be regular files (not a FIFO or a device)
of at most ``MAX_QUESTIONS_BYTES``; every database must lie inside the ``databases`` folder once
symbolic links are resolved (an absolute ``db_path`` or one with ``..`` is refused); a
database is opened so that nothing is created beside it (:mod:`harness.sql.opening`: a WAL-mode
file gets no ``-wal``/``-shm``); a question longer than ``MAX_QUESTION_CHARS``, or a prompt
that with ``max_new_tokens`` does not fit the model's context, is an error naming the item
(prompts are never truncated: a cut schema or question would be a different item). Every gold
query runs once at load: one that fails (or is refused, a write say) is the data's error, not
the model's miss, and stops the run, unless ``allow_gold_errors = true``, which skips such
items (counted as skipped, with the reason).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, model_validator

from harness.configfile import Problems
from harness.records.results import CaseSpec
from harness.tasks.base import (
    BatchSize,
    PhaseInfo,
    Positive,
    Predictions,
    Report,
    RunContext,
    Task,
    TaskData,
    TaskSettings,
    Variant,
    VariantOptions,
    seeded_sample,
)
from harness.tasks.sql_metric import ExecutionAccuracy
from harness.tasks.sql_prompts import TemplateName, get_spider_template, spider_prompt
from harness.tasks.sql_task import (
    SQLPrediction,
    predict_sql,
    sql_case,
    sql_failure_kind,
    write_sql_predictions,
)
from harness.tasks.text2sql_data import (
    SQLItem,
    Text2SQLContext,
    Text2SQLDataError,
    check_gold_queries,
    check_prompt_lengths,
    load_items,
    read_schema,
)


class Text2SQLSettings(TaskSettings):
    """The ``[text2sql]`` table of an experiment. ``batch_size = "auto"``: 8 on a CPU; on a CUDA
    device the largest batch that fits, from a cap of 64 prompts, found once per (model, device,
    task) and reused (:func:`harness.engine.batch_fitting.split_on_oom`)."""

    path: str = ""  # the JSONL file of items (required when the task runs)
    databases: str = ""  # the folder of <db_id>.sqlite files; empty: the JSONL file's folder
    template: TemplateName = "schema"
    timeout_s: Annotated[float, Field(gt=0)] = 5.0
    max_new_tokens: Positive = 128
    batch_size: BatchSize = 8
    # A gold query that fails is the data's error and stops the run; true skips such items.
    allow_gold_errors: bool = False

    def prompt_label(self, options: VariantOptions | None = None) -> str:
        return self.template

    @model_validator(mode="after")
    def _check(self):
        problems = []
        if self.shots:
            problems.append("shots: the text2sql task prompts zero-shot; set shots = 0")
        if problems:
            raise Problems(problems)
        return self


class Text2SQLOptions(VariantOptions):
    """A variant's ``text2sql = {...}`` table (nothing to set yet but ``shots = 0``)."""


class Text2SQLTask:
    name = "text2sql"
    description = "a case of your own text-to-SQL set (benchmarks/test_text2sql.py)"
    settings_model = Text2SQLSettings
    variant_model = Text2SQLOptions
    report = Report(
        title="Text-to-SQL execution accuracy (your set)", group_label="group", role="specialization"
    )

    def load(self, settings: Text2SQLSettings, *, seed: int) -> TaskData[SQLItem, Text2SQLContext]:
        if not settings.path:
            raise Text2SQLDataError("text2sql.path: required (the JSONL file of your questions)")
        items = load_items(Path(settings.path), Path(settings.databases) if settings.databases else None)
        selected = seeded_sample(items, settings.limit, seed)
        databases = dict.fromkeys((it.db_id, it.db_path) for it in selected)
        schemas = {key: read_schema(*key) for key in databases}
        gold_errors = check_gold_queries(selected, settings.timeout_s)
        if gold_errors and not settings.allow_gold_errors:
            first = next(iter(gold_errors.values()))
            more = f" (and {len(gold_errors) - 1} more)" if len(gold_errors) > 1 else ""
            raise Text2SQLDataError(
                f"{first}{more}; fix the data, or set allow_gold_errors = true in [text2sql] "
                "to skip such items"
            )
        return TaskData(tuple(selected), Text2SQLContext(schemas, gold_errors))

    def record_fields(self, item: SQLItem) -> dict[str, str]:
        return {"group": item.group}

    def predict(
        self,
        run: RunContext,
        data: TaskData[SQLItem, Text2SQLContext],
        variant: Variant,
        settings: Text2SQLSettings,
        options: Text2SQLOptions | None,
    ) -> Predictions[SQLPrediction]:
        template = get_spider_template(settings.template)
        tokenizer = run.engine.tokenizer(variant)
        prompts = {
            it.item_id: spider_prompt(
                it, template, schema=data.context.schemas[it.db_id, it.db_path], tokenizer=tokenizer
            )
            for it in data.items
            if it.item_id not in data.context.gold_errors
        }
        check_prompt_lengths(
            data.items, prompts, tokenizer, run.engine.context_length(variant), settings.max_new_tokens
        )
        return predict_sql(
            run,
            prompts,
            variant,
            namespace=self.name,
            max_new_tokens=settings.max_new_tokens,
            batch_size=settings.batch_size,
            info=PhaseInfo(template=template.name, template_version=template.version, shots=0),
        )

    def metric(self, settings: Text2SQLSettings) -> ExecutionAccuracy:
        return ExecutionAccuracy(timeout_s=settings.timeout_s)

    def case(
        self,
        item: SQLItem,
        prediction: SQLPrediction | None,
        variant: Variant,
        settings: Text2SQLSettings,
        data: TaskData[SQLItem, Text2SQLContext],
        metric: ExecutionAccuracy,
    ) -> CaseSpec:
        if item.item_id in data.context.gold_errors:
            return CaseSpec(None, metric, skip_reason=data.context.gold_errors[item.item_id])
        return sql_case(
            item.question,
            item.gold_sql,
            item.db_path,
            prediction,
            variant,
            f"{variant.name}/{item.item_id}",
            metric,
            {"db_id": item.db_id, "group": item.group},
        )

    def failure_kind(self, reason: str) -> str:
        return sql_failure_kind(reason)

    def write_outputs(
        self,
        run_dir: Path,
        variant: Variant,
        data: TaskData[SQLItem, Text2SQLContext],
        predictions: Predictions[SQLPrediction],
    ) -> None:
        write_sql_predictions(
            run_dir / "predictions" / f"{variant.name}.{self.name}",
            variant,
            data.items,
            predictions,
            lambda item, pred: {
                "db_id": item.db_id,
                "question": item.question,
                "original_query": item.gold_sql,
            },
        )


# Annotated so the type checker holds the task to the contract (harness/tasks/base.py).
TASK: Task[SQLItem, Text2SQLContext, SQLPrediction, Text2SQLSettings, Text2SQLOptions] = Text2SQLTask()
