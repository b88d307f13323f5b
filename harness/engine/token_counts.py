"""Token counts of many prompts at once, remembered on disk.

Fitting MMLU's few-shot prompts into the model's context needs the token count of every prompt,
tens of thousands over the full test split; counted one call at a time, they were most of the time
of a run whose predictions were all cached (docs/measurements.md, "Token counts").
Here the fast tokenizer's batch encoder spreads the work over the cores, and the counts are kept
beside the predictions, keyed by the tokenizer's own serialisation, so a rerun counts nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

from harness.records.cache import PredictionCache, Ticker, cached_compute

_CHUNK = 512  # texts per tokenizer call: bounds the lists of ids held at once


def tokenizer_fingerprint(tokenizer) -> str | None:
    """A hash of everything that decides a fast tokenizer's output (vocabulary, merges,
    normalizer, special tokens added), or None for a tokenizer that cannot serialise itself."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    blob = type(tokenizer).__name__ + "\n" + backend.to_str()
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def batch_token_counter(tokenizer, cache_root: Path | None = None) -> Callable[[Sequence[str]], list[int]]:
    """``counts(texts)``: ``len(tokenizer(text)["input_ids"])`` for each text (the tokenizer's
    defaults, as the scorer and lm-eval encode), batched, and read from / added to
    ``cache_root/token_counts`` when given and the tokenizer has a fingerprint."""

    def count(texts: Sequence[str]) -> list[int]:
        out: list[int] = []
        for i in range(0, len(texts), _CHUNK):
            out.extend(len(ids) for ids in tokenizer(list(texts[i : i + _CHUNK]))["input_ids"])
        return out

    fingerprint = tokenizer_fingerprint(tokenizer) if cache_root is not None else None
    if cache_root is None or fingerprint is None:
        return count
    cache = PredictionCache(
        cache_root, "token_counts", {"tokenizer": fingerprint, "call": "tokenizer(text)"}, required=("n",)
    )

    known: dict[str, int] = {}  # this counter's answers so far: the file is read once per new batch

    def payloads(batch: list[str], tick: Ticker) -> list[dict]:
        return [{"n": n} for n in count(batch)]

    def remembered(texts: Sequence[str]) -> list[int]:
        new = [t for t in dict.fromkeys(texts) if t not in known]
        if new:
            records, _ = cached_compute(
                cache,
                new,
                payloads,
                batch_size=4096,
                desc="counting prompt tokens",
            )
            known.update((t, r["n"]) for t, r in zip(new, records))
        return [known[t] for t in texts]

    return remembered
