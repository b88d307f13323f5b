"""Spider train items as prompt-completion examples, formatted by ``harness.tasks.spider``.

The prompt is exactly what the benchmark shows the model (same template, schema and shots
code); the completion is the gold SQL followed by the end-of-sequence token, so the loss
covers the answer and the stop, and nothing of the prompt. Only the train split is read.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from dataclasses import dataclass, field

from harness.tasks.spider_data import (
    find_spider_dir,
    load_schemas,
    load_spider_split,
    select_shots,
    split_validation,
)
from harness.tasks.sql_prompts import get_spider_template, spider_completion, spider_prompt


@dataclass(frozen=True)
class Examples:
    """The examples of one run and the accounting of how they were chosen."""

    prompts: tuple[str, ...]
    completions: tuple[str, ...]
    lengths: tuple[int, ...]  # tokens of prompt + completion, as the trainer tokenizes them
    max_length: int
    stats: dict = field(default_factory=dict)  # what the training summary reports under "data"

    def to_dataset(self):
        """A ``datasets.Dataset`` with ``prompt`` and ``completion`` columns (TRL's
        prompt-completion format, for which SFTTrainer puts the loss on the completion only)."""
        from datasets import Dataset

        return Dataset.from_dict({"prompt": list(self.prompts), "completion": list(self.completions)})


def rows_fingerprint(prompts, completions) -> str:
    """sha256 of the training rows in order; equal fingerprints mean identical training text."""
    h = hashlib.sha256()
    for p, c in zip(prompts, completions):
        h.update(json.dumps([p, c], ensure_ascii=False).encode())
        h.update(b"\n")
    return h.hexdigest()


def pick_max_length(lengths, percentile: float) -> int:
    """The ``percentile``-th of ``lengths`` (nearest rank, so 100 is the longest)."""
    ordered = sorted(lengths)
    rank = max(1, math.ceil(percentile / 100 * len(ordered)))
    return ordered[rank - 1]


def build_examples(
    tokenizer,
    *,
    spider_dir: str,
    template: str,
    shots: int,
    max_examples: int,
    max_length: int,
    length_percentile: float,
    overlong: str,
    seed: int,
    hold_out: str = "none",
) -> Examples:
    """Format, count the tokens of, filter and subset the Spider train split.

    Args:
        tokenizer: the model's tokenizer; its chat template renders the prompts and its
            ``eos_token`` ends every completion.
        spider_dir: the Spider folder ("" for the default lookup of ``find_spider_dir``).
        template: a ``harness.tasks.spider.SPIDER_TEMPLATES`` name.
        shots: solved train examples in each prompt (never the item itself).
        max_examples: 0 for all usable items, else a seeded random subset of this many.
        max_length: 0 to take ``length_percentile`` of the examples' lengths.
        overlong: "drop" examples longer than ``max_length``, or "truncate" them (they then
            lose the end of their completion, EOS included).
        seed: the subset and shot seed.
        hold_out: "validation" leaves out the validation split's databases (never trained on).

    Returns:
        The examples, in seeded random order, with counts of everything dropped or truncated.

    Raises:
        ValueError: no usable example is left.
    """
    root = find_spider_dir(spider_dir or None)
    items = load_spider_split(root, "train")
    if hold_out == "validation":
        items, _ = split_validation(items)
    tmpl = get_spider_template(template)
    eos = tokenizer.eos_token
    prompts, completions, no_schema = _format(items, load_schemas(root), tmpl, shots, seed, tokenizer)
    lengths = _token_lengths(tokenizer, prompts, completions)
    if not lengths:
        raise ValueError(
            f"{root}: no usable Spider train item (of {len(items)}; {no_schema} without a schema)"
        )
    chosen_max = max_length or pick_max_length(lengths, length_percentile)
    over = [i for i, n in enumerate(lengths) if n > chosen_max]
    order = _select(lengths, chosen_max, overlong, max_examples, seed)
    sel_prompts = tuple(prompts[i] for i in order)
    sel_completions = tuple(completions[i] for i in order)
    sel_lengths = tuple(min(lengths[i], chosen_max) for i in order)
    over_set = set(over)
    stats = {
        "spider_dir": str(root),
        "split": "train",
        "template": tmpl.name,
        "template_version": tmpl.version,
        "shots": shots,
        "items_in_split": len(items),
        "dropped_no_schema": no_schema,
        "max_length": chosen_max,
        "max_length_source": "config" if max_length else f"p{length_percentile:g} of observed lengths",
        "length_p50": pick_max_length(lengths, 50),
        "length_p95": pick_max_length(lengths, 95),
        "length_max": max(lengths),
        "overlong_policy": overlong,
        "overlong_in_split": len(over),
        "dropped_overlong": 0 if overlong == "truncate" else len(over),
        "truncated": sum(1 for i in order if i in over_set) if overlong == "truncate" else 0,
        "examples": len(order),
        "example_tokens": sum(sel_lengths),
        "eos_token": eos,
        "fingerprint": rows_fingerprint(sel_prompts, sel_completions),
    }
    return Examples(sel_prompts, sel_completions, sel_lengths, chosen_max, stats)


def _select(lengths: list[int], max_length: int, overlong: str, max_examples: int, seed: int) -> list[int]:
    """The indices of the examples kept, in seeded random order (the subset is a prefix of it)."""
    keep = [i for i, n in enumerate(lengths) if n <= max_length or overlong == "truncate"]
    if not keep:
        raise ValueError(
            f"no Spider train example fits max_length={max_length} tokens (shortest: {min(lengths)})"
        )
    order = random.Random(seed).sample(keep, len(keep))
    return order[:max_examples] if max_examples else order


def _format(items, schemas, tmpl, shots: int, seed: int, tokenizer) -> tuple[list[str], list[str], int]:
    """Each item's prompt (as the benchmark shows it) and completion (gold SQL + EOS), and how
    many items were left out for want of a schema."""
    prompts, completions, no_schema = [], [], 0
    for item in items:
        schema = schemas.get(item.db_id)
        if tmpl.with_schema and schema is None:
            no_schema += 1  # tables.json lacks its database: it cannot be prompted as the benchmark would
            continue
        shot_items = select_shots(items, shots, seed, exclude_question=item.question)
        prompts.append(
            spider_prompt(
                item,
                tmpl,
                schema=schema,
                shots=[(s, schemas.get(s.db_id)) for s in shot_items],
                tokenizer=tokenizer,
            )
        )
        completions.append(spider_completion(item, tokenizer.eos_token))
    return prompts, completions, no_schema


def _token_lengths(tokenizer, prompts: list[str], completions: list[str]) -> list[int]:
    """Tokens of each example as SFTTrainer tokenizes a prompt-completion example: the plain
    text prompt + completion through the tokenizer's __call__."""
    if not prompts:
        return []
    return [len(ids) for ids in tokenizer([p + c for p, c in zip(prompts, completions)])["input_ids"]]
