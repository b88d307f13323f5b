"""A quick Spider check of one variant, without pytest or deepeval: does it stop, and does
its SQL execute correctly? For a GPU box that lacks the benchmark's dependencies, or a first
look at a fresh adapter.

    .venv/bin/python scripts/spider_check.py --items 100 --adapter adapters/default

Prints items/s of the batched, stopping generator, how many outputs reached the token cap
(runaway generations), how many gave no SQL, and execution accuracy with the same code as
the benchmark's metric.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

import torch

from harness.engine.core import GenerationSettings
from harness.engine.decoding import generate_batch
from harness.models.adapters import attach_adapter
from harness.models.loading import (
    DEFAULT_MODEL,
    load_base_model,
    load_tokenizer,
    resolve_model,
)
from harness.sql import execution_match, extract_sql
from harness.tasks.spider_data import (
    database_path,
    find_spider_dir,
    load_schemas,
    load_spider_split,
    sample_items,
    select_shots,
)
from harness.tasks.sql_prompts import get_spider_template, spider_prompt
from harness.tasks.sql_task import SQL_END


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--adapter", default=None)
    ap.add_argument("--load", default="fp32")
    ap.add_argument("--items", type=int, default=100)
    ap.add_argument("--shots", type=int, default=0)
    ap.add_argument("--template", default="schema")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    spider_dir = find_spider_dir()
    schemas = load_schemas(spider_dir)
    items = [i for i in load_spider_split(spider_dir, "dev") if database_path(spider_dir, i.db_id).is_file()]
    items = sample_items(items, args.items, seed=args.seed)
    shots = [
        (s, None) for s in select_shots(load_spider_split(spider_dir, "train"), args.shots, seed=args.seed)
    ]
    resolved = resolve_model(args.model)
    tok, model = load_tokenizer(resolved), load_base_model(resolved, args.load)
    if args.adapter:
        model = attach_adapter(model, args.adapter, "checked")
    template = get_spider_template(args.template)
    prompts = [spider_prompt(i, template, schema=schemas[i.db_id], shots=shots, tokenizer=tok) for i in items]
    settings = GenerationSettings(
        max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, stop=SQL_END
    )
    order = sorted(range(len(prompts)), key=lambda k: len(tok(prompts[k])["input_ids"]))
    raw = [""] * len(prompts)
    start = time.perf_counter()
    for b in range(0, len(order), args.batch_size):
        idx = order[b : b + args.batch_size]
        for k, text in zip(idx, generate_batch(model, tok, [prompts[k] for k in idx], settings)):
            raw[k] = text
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    capped = sum(len(tok(r, add_special_tokens=False)["input_ids"]) >= args.max_new_tokens - 1 for r in raw)
    sqls = [extract_sql(r) for r in raw]
    verdicts = [
        execution_match(database_path(spider_dir, i.db_id), i.gold_sql, s) for i, s in zip(items, sqls)
    ]
    correct = sum(v.ok for v in verdicts)
    first_words = Counter((s.split() or ["<none>"])[0].upper() for s in sqls)
    n = len(items)
    print(
        f"model {args.model}, adapter {args.adapter}, load {args.load}, {args.shots}-shot, "
        f"template {args.template}, device {model.device}"
    )
    print(f"{n} items in {seconds:.1f} s: {n / seconds:.2f} items/s (batch {args.batch_size})")
    print(
        f"reached the {args.max_new_tokens}-token cap: {capped}/{n}; "
        f"no SQL extracted: {sum(not s for s in sqls)}/{n}"
    )
    print(
        f"execution accuracy: {correct}/{n} = {correct / n:.1%}; "
        f"first words: {dict(first_words.most_common(5))}"
    )
    for i, r, _s, v in list(zip(items, raw, sqls, verdicts))[:5]:
        print(f"  {i.item_id}: {r[:100]!r} -> {v.reason[:80]}")


if __name__ == "__main__":
    main()
