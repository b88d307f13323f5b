"""Spider items/s: the harness's batched, stopping generator against the paper's loop.

The paper's notebooks called ``generate`` once per item with ``max_new_tokens=128`` and only
the end-of-sequence token as a stop. This script runs both on the same model, prompts and
items, in one process, prints items/s for each, and checks that every text agrees with the
loop's up to the harness's stop point.

    .venv/bin/python scripts/bench_spider_generation.py --items 40
"""

from __future__ import annotations

import argparse
import time

from harness.engine.core import GenerationSettings
from harness.engine.decoding import generate_batch
from harness.models.loading import DEFAULT_MODEL, load_base_model, load_tokenizer, resolve_model
from harness.tasks.spider_data import find_spider_dir, load_schemas, load_spider_split, sample_items
from harness.tasks.sql_prompts import get_spider_template, spider_prompt
from harness.tasks.sql_task import SQL_END


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--items", type=int, default=40)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--template", default="schema")
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    spider_dir = find_spider_dir()
    schemas = load_schemas(spider_dir)
    items = [i for i in load_spider_split(spider_dir, "dev") if i.db_id in schemas]
    items = sample_items(items, args.items, seed=args.seed)
    resolved = resolve_model(args.model)
    tok, model = load_tokenizer(resolved), load_base_model(resolved, "fp32")
    template = get_spider_template(args.template)
    prompts = [spider_prompt(i, template, schema=schemas[i.db_id], tokenizer=tok) for i in items]

    # The paper's loop: one item at a time, 128 new tokens, end-of-sequence only.
    loop_settings = GenerationSettings(max_new_tokens=args.max_new_tokens, batch_size=1)
    start = time.perf_counter()
    loop_out = [generate_batch(model, tok, [p], loop_settings)[0] for p in prompts]
    loop_s = time.perf_counter() - start
    capped = sum(
        len(tok(o, add_special_tokens=False)["input_ids"]) >= args.max_new_tokens - 1 for o in loop_out
    )

    # The harness: length-sorted batches that stop at the end of the SQL.
    ours_settings = GenerationSettings(
        max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, stop=SQL_END
    )
    order = sorted(range(len(prompts)), key=lambda i: len(tok(prompts[i])["input_ids"]))
    ours_out = [""] * len(prompts)
    start = time.perf_counter()
    for b in range(0, len(order), args.batch_size):
        idx = order[b : b + args.batch_size]
        for i, text in zip(idx, generate_batch(model, tok, [prompts[i] for i in idx], ours_settings)):
            ours_out[i] = text
    ours_s = time.perf_counter() - start

    agree = sum(loop.startswith(ours.rstrip()) for loop, ours in zip(loop_out, ours_out))
    n = len(prompts)
    print(f"model {args.model}, {n} Spider dev items, template {args.template!r}")
    print(
        f"per-item loop (max_new_tokens={args.max_new_tokens}, EOS only): {n / loop_s:.2f} items/s "
        f"({loop_s:.1f} s; {capped} of {n} ran to the cap)"
    )
    print(
        f"harness (batch {args.batch_size}, sorted, stops at end of SQL): "
        f"{n / ours_s:.2f} items/s ({ours_s:.1f} s)"
    )
    print(f"speed-up: {loop_s / ours_s:.1f}x")
    print(f"texts that agree with the loop up to the stop point: {agree}/{n}")
    for i, (loop, ours) in enumerate(zip(loop_out, ours_out)):
        if not loop.startswith(ours.rstrip()):
            print(f"  differs at item {items[i].item_id}: loop {loop[:80]!r} | ours {ours[:80]!r}")


if __name__ == "__main__":
    main()
