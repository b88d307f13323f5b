"""A variant's predictions for a benchmark: prompts built, batched, cached, post-processed.

This is the "generate in batches" half of the harness; the benchmark tests are the "assert
per item" half and only look predictions up here.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from harness.config import ExperimentConfig, VariantConfig
from harness.data.spider import Schema, SpiderItem, database_path
from harness.generation import GenerationSettings, PredictionCache, cached_compute, generate_batch, split_on_oom
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
    cfg: ExperimentConfig, variant: VariantConfig, data: SpiderData, pool: ModelPool, cache_root: Path, *, shard=None
) -> tuple[dict[str, SpiderPrediction], dict]:
    """Predictions for every scorable selected item, from the cache or generated in batches,
    and a record of the phase (fingerprint, counts, seconds) for the run manifest."""
    from harness.sql import extract_sql

    tokenizer = pool.tokenizer(variant.model)
    prompts = spider_prompts(cfg, variant, data, tokenizer)
    settings = GenerationSettings(max_new_tokens=cfg.spider.max_new_tokens, batch_size=cfg.spider.batch_size)
    cache = PredictionCache(cache_root, "spider", {**pool.fingerprint(variant), "generation": settings.as_fingerprint()})

    def compute(batch: list[str]) -> list[dict]:
        with pool.activated(variant) as model:
            raws = split_on_oom(lambda rows: generate_batch(model, tokenizer, rows, settings), batch)
            return [{"raw": raw} for raw in raws]

    ids = list(prompts)
    records, stats = cached_compute(
        cache,
        [prompts[i] for i in ids],
        compute,
        batch_size=settings.batch_size,
        sort_key=lambda p: len(tokenizer(p, add_special_tokens=False)["input_ids"]),
        desc=f"spider {variant.name}",
        shard=shard,
    )
    predictions = {
        i: SpiderPrediction(item_id=i, prompt=prompts[i], raw=rec["raw"], sql=extract_sql(rec["raw"]))
        for i, rec in zip(ids, records)
    }
    template = get_spider_template(cfg.spider.template)
    raw_of = {prompts[i]: rec["raw"] for i, rec in zip(ids, records)}
    phase = phase_record("spider", variant, cache, stats, template=template.name, template_version=template.version,
                         seed=cfg.seed, n_prompts=len(ids), pool=pool,
                         prompt_tokens=_token_total(tokenizer, stats.computed_prompts),
                         new_tokens=_token_total(tokenizer, [raw_of[p] for p in stats.computed_prompts]))
    return predictions, phase


def _token_total(tokenizer, texts: list[str]) -> int:
    """Tokens in ``texts``: what a phase computed, for its throughput (scripts/bench_phases.py)."""
    if not texts:
        return 0
    return sum(len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"])


def phase_record(benchmark: str, variant: VariantConfig, cache: PredictionCache, stats, *, pool: ModelPool, **info) -> dict:
    """What the run manifest keeps of one (benchmark, variant) prediction phase."""
    return {
        "benchmark": benchmark,
        "variant": variant.name,
        "fingerprint": cache.fingerprint,
        "cache_key": cache.key,
        "cached": stats.cached,
        "computed": stats.computed,
        "seconds": round(stats.seconds, 3),
        "device": pool.device_name(),
        **info,
    }


def write_phase(run_dir: Path, phase: dict, shard=None) -> None:
    """``phases/<benchmark>-<variant>.json``; with several workers (a ``harness.sharding.Shard``)
    one file per worker, ``...-<variant>.gw3.json``, since each computes and times its own shard."""
    out = run_dir / "phases"
    out.mkdir(parents=True, exist_ok=True)
    name = f"{phase['benchmark']}-{phase['variant']}"
    if shard is not None and shard.count > 1:
        phase = {**phase, "worker": f"gw{shard.index}", "workers": shard.count}
        name += f".gw{shard.index}"
    _atomic_write(out / f"{name}.json", json.dumps(phase, indent=1))


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


# ---------------------------------------------------------------------------------------------
# MMLU


@dataclass(frozen=True)
class MMLUData:
    """The selected test questions and the dev split their shots come from."""

    mmlu_dir: Path
    items: tuple  # MMLUItem, in selection order
    dev: tuple


@dataclass(frozen=True)
class MMLUPrediction:
    item_id: str
    letter: str  # "A".."D", or whatever the generate mode produced (e.g. "S")
    logprobs: tuple[float, ...] | None  # loglik mode: of " A" .. " D"
    raw: str | None  # generate mode: the raw continuation
    shots_used: int
    shots_requested: int


_MMLU_GENERATE_TOKENS = 5  # the paper read the first character; a few more help diagnosis


def _context_length(pool: ModelPool, variant: VariantConfig, tokenizer) -> int:
    """The model's context, read from its config without loading the weights."""
    from types import SimpleNamespace

    from transformers import AutoConfig

    from harness.mmlu_scoring import context_length

    resolved = pool.resolved(variant.model)
    config = AutoConfig.from_pretrained(resolved.path, gguf_file=resolved.gguf_file)
    return context_length(SimpleNamespace(config=config), tokenizer)


def predict_mmlu(
    cfg: ExperimentConfig, variant: VariantConfig, data: MMLUData, pool: ModelPool, cache_root: Path, *, shard=None
) -> tuple[dict[str, MMLUPrediction], dict]:
    """The answer of every selected question, by log-likelihood of the letters (default) or
    by the first character of a greedy generation (the paper's way)."""
    from collections import Counter

    from harness.mmlu_scoring import first_letter, fit_prompts, generate_letters, score_letters_loglik
    from harness.prompts import MMLU_TEMPLATE_VERSION, mmlu_shots
    from harness.token_counts import batch_token_counter

    tokenizer = pool.tokenizer(variant.model)
    k = cfg.mmlu_shots_of(variant)
    scoring = variant.mmlu_scoring
    reserve = 1 if scoring == "loglik" else _MMLU_GENERATE_TOKENS
    max_tokens = _context_length(pool, variant, tokenizer)
    shots_of = {subject: mmlu_shots(data.dev, subject, k) for subject in {item.subject for item in data.items}}
    requests = [(item, shots_of[item.subject]) for item in data.items]
    count = batch_token_counter(tokenizer, cache_root)
    fitted = dict(zip((item.item_id for item in data.items), fit_prompts(requests, count, max_tokens, reserve=reserve)))
    parts = {f.prompt: (f.prefix, f.suffix) for f in fitted.values()}
    scoring_fp = {"scoring": scoring, "template_version": MMLU_TEMPLATE_VERSION}
    if scoring == "generate":
        scoring_fp["max_new_tokens"] = _MMLU_GENERATE_TOKENS
    cache = PredictionCache(cache_root, "mmlu", {**pool.fingerprint(variant), **scoring_fp})

    def compute(prompts: list[str]) -> list[dict]:
        with pool.activated(variant) as model:
            if scoring == "loglik":
                reuse = cfg.mmlu.reuse_prefix == "on" or (cfg.mmlu.reuse_prefix == "auto" and model.device.type == "cpu")
                scores = score_letters_loglik(model, tokenizer, [parts[p] for p in prompts], batch_size=cfg.mmlu.batch_size,
                                              max_batch_tokens=cfg.mmlu.max_batch_tokens, reuse_prefix=reuse, progress=False)
                return [{"letter": s.letter, "logprobs": list(s.logprobs)} for s in scores]
            raws = generate_letters(model, tokenizer, prompts, batch_size=cfg.mmlu.batch_size, max_new_tokens=_MMLU_GENERATE_TOKENS, progress=False)
            return [{"letter": first_letter(r), "raw": r} for r in raws]

    ids = list(fitted)
    records, stats = cached_compute(
        cache,
        [fitted[i].prompt for i in ids],
        compute,
        # Whole subjects together, so the scorer runs each subject's shared shots once.
        batch_size=max(cfg.mmlu.batch_size * 8, 64),
        sort_key=lambda p: parts[p][0],
        desc=f"mmlu {variant.name} ({scoring})",
        shard=shard,
    )
    predictions = {
        i: MMLUPrediction(
            item_id=i,
            letter=rec["letter"],
            logprobs=tuple(rec["logprobs"]) if "logprobs" in rec else None,
            raw=rec.get("raw"),
            shots_used=fitted[i].shots_used,
            shots_requested=fitted[i].shots_requested,
        )
        for i, rec in zip(ids, records)
    }
    phase = phase_record(
        "mmlu", variant, cache, stats, pool=pool, template="lm-eval-mmlu", template_version=MMLU_TEMPLATE_VERSION,
        seed=cfg.seed, n_prompts=len(ids), shots=k, scoring=scoring,
        prompt_tokens=_token_total(tokenizer, stats.computed_prompts),
        shots_reduced=sum(f.shots_dropped > 0 for f in fitted.values()),
        predicted_letters=dict(Counter(p.letter or "<empty>" for p in predictions.values())),
    )
    return predictions, phase
