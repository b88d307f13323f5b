"""A variant's predictions for a benchmark: prompts built, batched, cached, post-processed.

This is the "generate in batches" half of the harness; the benchmark tests are the "assert
per item" half and only look predictions up here.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from harness.config import ExperimentConfig, VariantConfig
from harness.data.spider import Schema, SpiderItem, database_path
from harness.generation import GenerationSettings, PredictionCache, cached_compute, generate_batch
from harness.model_pool import ModelPool
from harness.prompts import get_spider_template, select_shots, spider_prompt


@dataclass(frozen=True)
class SpiderData:
    """Everything a Spider run reads: the selected items, schemas, the train pool for shots."""

    spider_dir: Path
    items: tuple[SpiderItem, ...]
    schemas: dict[str, Schema]
    train: tuple[SpiderItem, ...]

    def has_database(self, item: SpiderItem) -> bool:
        return database_path(self.spider_dir, item.db_id).is_file()


@dataclass(frozen=True)
class SpiderPrediction:
    item_id: str
    prompt: str
    raw: str  # what the model generated, up to the stop point
    sql: str  # extract_sql(raw)


def spider_prompts(cfg: ExperimentConfig, variant: VariantConfig, data: SpiderData, tokenizer) -> dict[str, str]:
    """The prompt of every item that can be scored (its database exists), by item id."""
    template = get_spider_template(cfg.spider.template)
    shots = select_shots(data.train, variant.spider_shots, seed=cfg.seed)
    shot_pairs = [(s, data.schemas.get(s.db_id)) for s in shots]
    return {
        item.item_id: spider_prompt(
            item, template, schema=data.schemas.get(item.db_id), shots=shot_pairs, tokenizer=tokenizer
        )
        for item in data.items
        if data.has_database(item)
    }


def predict_spider(
    cfg: ExperimentConfig, variant: VariantConfig, data: SpiderData, pool: ModelPool, cache_root: Path
) -> dict[str, SpiderPrediction]:
    """Predictions for every scorable selected item, from the cache or generated in batches."""
    from harness.sql import extract_sql

    tokenizer = pool.tokenizer(variant.model)
    prompts = spider_prompts(cfg, variant, data, tokenizer)
    settings = GenerationSettings(max_new_tokens=cfg.spider.max_new_tokens, batch_size=cfg.spider.batch_size)
    cache = PredictionCache(cache_root, "spider", {**pool.fingerprint(variant), "generation": settings.as_fingerprint()})

    def compute(batch: list[str]) -> list[dict]:
        with pool.activated(variant) as model:
            return [{"raw": raw} for raw in generate_batch(model, tokenizer, batch, settings)]

    ids = list(prompts)
    records, _ = cached_compute(
        cache,
        [prompts[i] for i in ids],
        compute,
        batch_size=settings.batch_size,
        sort_key=lambda p: len(tokenizer(p, add_special_tokens=False)["input_ids"]),
        desc=f"spider {variant.name}",
    )
    return {
        i: SpiderPrediction(item_id=i, prompt=prompts[i], raw=rec["raw"], sql=extract_sql(rec["raw"]))
        for i, rec in zip(ids, records)
    }


def write_spider_predictions(
    out_dir: Path, variant: VariantConfig, data: SpiderData, predictions: dict[str, SpiderPrediction]
) -> None:
    """The predictions as JSONL in the paper's format and as an official-evaluator ``.sql``
    file (one query per line, aligned with the selected items; blank for unscorable items)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows, sql_lines = [], []
    for item in data.items:
        pred = predictions.get(item.item_id)
        rows.append(
            {
                "item_id": item.item_id,
                "index": item.index,
                "variant": variant.name,
                "db_id": item.db_id,
                "question": item.question,
                "original_query": item.gold_sql,
                "response_query": pred.sql if pred else None,
                "raw_output": pred.raw if pred else None,
            }
        )
        sql_lines.append(" ".join((pred.sql if pred else "").split()))
    _atomic_write(out_dir / f"{variant.name}.spider.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    _atomic_write(out_dir / f"{variant.name}.spider.sql", "\n".join(sql_lines) + "\n")


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
