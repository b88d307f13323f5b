"""A phase's record, and how its missing prompts are computed.

Each request kind of a variant is one *phase*: its prompts are looked up in the prediction cache
(harness/records/cache.py), the missing ones computed in length-sorted batches and appended as
each batch finishes; under pytest-xdist every worker computes its shard
(harness/engine/sharding.py). :class:`Phase` is what the run folder keeps of it
(``phases/<task>-<variant>.json``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from harness.engine.sharding import Shard, sharded_compute
from harness.records.cache import BatchCompute, CacheStats, PredictionCache, SortKey, cached_compute


@dataclass
class Phase:
    """One request kind of one variant: what the cache held, what was computed, how long it took."""

    fingerprint: dict
    cache_key: str
    cached: int
    computed: int
    seconds: float
    device: str
    prompt_tokens: int = 0  # tokens of the computed prompts
    new_tokens: int = 0  # tokens generated (generate only)
    info: dict = field(default_factory=dict)  # what the task adds (template, shots, ...)

    def record(self, task: str, variant: str) -> dict:
        """The phase's entry in the run manifest (``phases/<task>-<variant>.json``)."""
        return {
            "task": task,
            "variant": variant,
            "fingerprint": self.fingerprint,
            "cache_key": self.cache_key,
            "cached": self.cached,
            "computed": self.computed,
            "seconds": round(self.seconds, 3),
            "device": self.device,
            "prompt_tokens": self.prompt_tokens,
            "new_tokens": self.new_tokens,
            **self.info,
        }


def compute_missing(
    cache: PredictionCache,
    keys: Sequence[str],
    compute: BatchCompute,
    *,
    shard: Shard | None,
    batch_size: int,
    sort_key: SortKey,
    desc: str,
) -> tuple[list[dict], CacheStats]:
    """Every key's record, in order: the cached ones read, the missing ones computed in batches,
    by this process alone or, with more than one shard, by every worker its share."""
    if shard is not None and shard.count > 1:
        return sharded_compute(
            cache, keys, compute, shard=shard, batch_size=batch_size, sort_key=sort_key, desc=desc
        )
    return cached_compute(cache, keys, compute, batch_size=batch_size, sort_key=sort_key, desc=desc)


def token_total(tokenizer, texts: Sequence[str]) -> int:
    """Tokens in ``texts``: what a phase computed, for its throughput (scripts/bench_phases.py)."""
    if not texts:
        return 0
    return sum(len(ids) for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"])
