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

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field

from harness.records.results import CaseSpec
from harness.tasks.base import (
    BatchSize,
    NonNegative,
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
    shots_of,
)
from harness.tasks.spider_data import (
    SpiderItem,
    database_path,
    find_spider_dir,
    load_schemas,
    load_spider_hub,
    load_spider_split,
    sample_items,
    select_shots,
    split_validation,
)
from harness.tasks.spider_hardness import HARDNESS_LEVELS
from harness.tasks.sql_metric import ExecutionAccuracy
from harness.tasks.sql_prompts import (
    Schema,
    SpiderTemplate,
    TemplateName,
    get_spider_template,
    spider_prompt,
)
from harness.tasks.sql_task import (
    KL_TO_BASE,
    SQLPrediction,
    predict_sql,
    sql_case,
    sql_failure_kind,
    with_kl_to_base,
    write_sql_predictions,
)

# -- the task ----------------------------------------------------------------------------------------


class SpiderSettings(TaskSettings):
    """The ``[spider]`` table of an experiment. ``batch_size = "auto"``: 8 on a CPU; on a CUDA
    device the largest batch that fits, from a cap of 64 prompts, found once per (model, device,
    task) and reused (:func:`harness.engine.batch_fitting.split_on_oom`)."""

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

    def prompt_label(self, options: VariantOptions | None = None) -> str:
        return self.template

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
        measures={"kl_to_base": KL_TO_BASE},
        frontier_measure="kl_to_base",
    )

    def load(self, settings: SpiderSettings, *, seed: int) -> TaskData[SpiderItem, SpiderContext]:
        return load_spider_data(settings, seed)

    def record_fields(self, item: SpiderItem) -> dict[str, str]:
        return {"group": item.hardness or "unknown"}

    def predict(
        self,
        run: RunContext,
        data: TaskData[SpiderItem, SpiderContext],
        variant: Variant,
        settings: SpiderSettings,
        options: SpiderOptions | None,
    ) -> Predictions[SQLPrediction]:
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
            info=PhaseInfo(
                template=template.name, template_version=template.version, shots=shots_of(settings, options)
            ),
        )
        if not (settings.kl_to_base and variant.adapter):
            return predictions
        return with_kl_to_base(run, data.items, prompts, predictions, variant, settings, self.name)

    def metric(self, settings: SpiderSettings) -> ExecutionAccuracy:
        return ExecutionAccuracy(timeout_s=settings.timeout_s)

    def case(
        self,
        item: SpiderItem,
        prediction: SQLPrediction | None,
        variant: Variant,
        settings: SpiderSettings,
        data: TaskData[SpiderItem, SpiderContext],
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

    def write_outputs(
        self,
        run_dir: Path,
        variant: Variant,
        data: TaskData[SpiderItem, SpiderContext],
        predictions: Predictions[SQLPrediction],
    ) -> None:
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


# Annotated so the type checker holds the task to the contract (harness/tasks/base.py).
TASK: Task[SpiderItem, SpiderContext, SQLPrediction, SpiderSettings, SpiderOptions] = SpiderTask()
