"""The model engine: answers a task's requests in batches, through the cache.

Two request kinds, as lm-evaluation-harness's model interface has them:

* :meth:`Engine.generate`: greedy continuations of prompts, each row stopping where the task's
  stop rule says (Spider: at the end of the SQL) or at ``max_new_tokens``;
* :meth:`Engine.score_choices`: the log-likelihood of each choice after a prompt (MMLU).

This module holds what a task asks (a variant, its prompts, the settings of each request kind)
and the :class:`Engine` that answers. The engine knows no task: prompts, stop rules and choices
come from the task; what comes back is raw text or log-probabilities, and a
:class:`~harness.engine.phases.Phase` record of what was computed (harness/engine/phases.py).
Who computes the answers is the variant's backend (harness/engine/hf_backend.py by default);
the decoding loop is harness/engine/decoding.py, batch sizes found by trying
harness/engine/batch_fitting.py.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol, TypeVar

from harness.engine.batch_fitting import resolved_batch_size
from harness.engine.loglik import ChoiceScores, Divergence
from harness.engine.phases import Phase as Phase  # part of the Engine's API (tasks import it here)
from harness.engine.phases import compute_missing, token_total
from harness.engine.sharding import Shard
from harness.models.backends import Backend, Dispatch
from harness.models.pool import AUTO_BATCH, ModelPool, PooledVariant
from harness.records.cache import BatchCompute, CacheStats, PredictionCache, SortKey, Ticker

_CHOICES_MARK = "\x00choices\x00"  # separates a prompt from its choices in a record's key


class ModelSpec(PooledVariant, Protocol):
    """What the engine needs of a variant: what the pool needs (which model, loaded how, with
    which adapter) and its name (read only: a variant is a frozen config)."""

    @property
    def name(self) -> str: ...


@dataclass(frozen=True)
class StopRule:
    """When a row's generation may stop, judged on the text generated so far. Its entry in the
    cache fingerprint is ``fingerprint_entry`` if the rule gives one, else ``{"stop": name}``
    (change the name when the rule changes)."""

    name: str
    is_complete: Callable[[str], bool]
    fingerprint_entry: tuple[tuple[str, object], ...] = ()  # (key, value) pairs, hashable

    def fingerprint(self) -> dict[str, object]:
        return dict(self.fingerprint_entry) if self.fingerprint_entry else {"stop": self.name}


@dataclass(frozen=True)
class GenerationSettings:
    max_new_tokens: int = 128
    batch_size: int | str = 8  # or "auto" (ModelPool.batch_size), resolved by the engine
    stop: StopRule | None = None  # None: end-of-sequence or max_new_tokens only
    add_special_tokens: bool = False  # chat-rendered prompts already hold their special tokens
    fitted_key: tuple = ()  # set by the engine for "auto" on CUDA: where the size that fits is kept

    def as_fingerprint(self) -> dict:
        # batch_size is left out on purpose: greedy outputs do not depend on it (up to
        # floating-point noise), and a different batch size must not discard a cache.
        stop = self.stop.fingerprint() if self.stop is not None else {"stop_at_sql_end": False}
        fp: dict[str, object] = {"max_new_tokens": self.max_new_tokens, **stop, "greedy": True}
        if self.add_special_tokens:
            fp["add_special_tokens"] = True
        return fp


@dataclass(frozen=True)
class LoglikSettings:
    batch_size: int | str = 8  # prompts per forward pass, or "auto" (ModelPool.batch_size)
    max_batch_tokens: int = 2048  # padded tokens per forward pass (bounds "auto" too)
    reuse_prefix: str = (
        "auto"  # run a shared prefix once and reuse its KV cache: "auto" (CPU only), "on", "off"
    )
    fitted_key: tuple = ()  # as GenerationSettings.fitted_key


# -- the engine ----------------------------------------------------------------------------------

_Settings = TypeVar("_Settings", GenerationSettings, LoglikSettings)


class Engine:
    """Answers requests for any variant, through one model pool and one prediction cache."""

    def __init__(
        self, pool: ModelPool, cache_root: Path, shard: Shard | None = None, backend: Backend | None = None
    ):
        self.pool = pool
        self.cache_root = Path(cache_root)
        self.shard = shard
        self.backend: Backend = backend or Dispatch(
            pool
        )  # each variant's own backend (harness.models.backends)

    def tokenizer(self, variant: ModelSpec):
        return self.pool.tokenizer(variant)

    def context_length(self, variant: ModelSpec) -> int:
        return self.pool.context_length(variant)

    def _sized(self, variant: ModelSpec, settings: _Settings, *kind: str) -> _Settings:
        """``settings`` with its batch size a number: "auto" decided by the pool, with the key
        the size that fits is kept under (ModelPool.batch_size)."""
        if settings.batch_size != AUTO_BATCH:
            return settings
        size, key = self.pool.batch_size(variant, AUTO_BATCH, *kind)
        return replace(settings, batch_size=size, fitted_key=key)

    def _phase(
        self,
        fp: dict,
        cache: PredictionCache,
        stats: CacheStats,
        settings: GenerationSettings | LoglikSettings,
        prompt_tokens: int = 0,
        new_tokens: int = 0,
    ) -> Phase:
        phase = Phase(
            fp,
            cache.key,
            stats.cached,
            stats.computed,
            stats.seconds,
            self.pool.device_name(),
            prompt_tokens=prompt_tokens,
            new_tokens=new_tokens,
        )
        if settings.fitted_key:  # "auto" on CUDA: the size that fit, for the record (not the key)
            phase.info["auto_batch_size"] = self.pool.fitted_batches.get(
                settings.fitted_key, settings.batch_size
            )
        return phase

    def _compute(
        self,
        cache: PredictionCache,
        keys: Sequence[str],
        compute: BatchCompute,
        *,
        batch_size: int,
        sort_key: SortKey,
        desc: str,
    ) -> tuple[list[dict], CacheStats]:
        return compute_missing(
            cache, keys, compute, shard=self.shard, batch_size=batch_size, sort_key=sort_key, desc=desc
        )

    def generate(
        self,
        variant: ModelSpec,
        prompts: Sequence[str],
        settings: GenerationSettings,
        *,
        namespace: str,
        fingerprint: dict | None = None,
        desc: str = "generating",
    ) -> tuple[list[str], Phase]:
        """The raw continuation of every prompt, in order, and the phase record."""
        tokenizer = self.tokenizer(variant)
        fp = {
            **self.pool.fingerprint(variant),
            "generation": settings.as_fingerprint(),
            **(fingerprint or {}),
        }
        cache = PredictionCache(self.cache_root, namespace, fp, required=("raw",))
        settings = self._sized(variant, settings, namespace, "generate")

        def compute(batch: list[str], tick: Ticker) -> list[dict]:
            return [{"raw": raw} for raw in self.backend.generate(variant, batch, settings, tick)]

        n_tokens: dict[str, int] = {}  # the sort key's count, reused for the phase's

        def length(prompt: str) -> int:
            if prompt not in n_tokens:
                n_tokens[prompt] = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
            return n_tokens[prompt]

        records, stats = self._compute(
            cache,
            list(prompts),
            compute,
            batch_size=resolved_batch_size(settings.batch_size),
            sort_key=length,
            desc=desc,
        )
        raws = [r["raw"] for r in records]
        raw_of = dict(zip(prompts, raws))
        phase = self._phase(
            fp,
            cache,
            stats,
            settings,
            prompt_tokens=sum(length(p) for p in stats.computed_prompts),
            new_tokens=token_total(tokenizer, [raw_of[p] for p in stats.computed_prompts]),
        )
        return raws, phase

    def score_choices(
        self,
        variant: ModelSpec,
        requests: Sequence[tuple[str, str]],
        choices: Sequence[Sequence[str]],
        settings: LoglikSettings,
        *,
        namespace: str,
        fingerprint: dict | None = None,
        desc: str = "scoring",
    ) -> tuple[list[ChoiceScores], Phase]:
        """The log-likelihood of each of ``choices[i]`` after the ``requests[i] = (prefix, suffix)``
        prompt. When every request has the same choices (MMLU's letters), the fingerprint passed
        in must imply them; otherwise each record's key holds its choices too."""
        tokenizer = self.tokenizer(variant)
        fp = {**self.pool.fingerprint(variant), **(fingerprint or {})}
        cache = PredictionCache(self.cache_root, namespace, fp, required=("logprobs",))
        settings = self._sized(variant, settings, namespace, "score_choices")
        shared = len({tuple(c) for c in choices}) <= 1
        keys = [
            prefix + suffix if shared else prefix + suffix + _CHOICES_MARK + "\x1f".join(c)
            for (prefix, suffix), c in zip(requests, choices)
        ]
        request_of = {k: (r, tuple(c)) for k, r, c in zip(keys, requests, choices)}

        def compute(batch: list[str], tick: Ticker) -> list[dict]:
            scores = self.backend.score_choices(
                variant, [request_of[k][0] for k in batch], [request_of[k][1] for k in batch], settings, tick
            )
            return [{"logprobs": list(s.logprobs), "tokens": list(s.token_counts)} for s in scores]

        # Whole prefixes together, so the scorer runs each shared prefix once.
        records, stats = self._compute(
            cache,
            keys,
            compute,
            batch_size=max(resolved_batch_size(settings.batch_size) * 8, 64),
            sort_key=lambda k: request_of[k][0][0],
            desc=desc,
        )
        scores = [  # records of letter choices written before token counts were kept: 1 each
            ChoiceScores(tuple(r["logprobs"]), tuple(r.get("tokens", (1,) * len(r["logprobs"]))), 0, 0)
            for r in records
        ]
        computed = [request_of[k][0][0] + request_of[k][0][1] for k in stats.computed_prompts]
        phase = self._phase(fp, cache, stats, settings, prompt_tokens=token_total(tokenizer, computed))
        return scores, phase

    def kl_to_base(
        self,
        variant: ModelSpec,
        pairs: Sequence[tuple[str, str]],
        settings: LoglikSettings,
        *,
        namespace: str,
        desc: str = "KL to base",
    ) -> tuple[list[Divergence], Phase]:
        """How far ``variant``'s adapter moved the model on each (context, continuation):
        the mean KL(base || adapted) over the continuation's tokens (harness.engine.loglik.kl_to_base)."""
        if not variant.adapter:
            raise ValueError(
                f"variant {variant.name!r} has no adapter: its KL to the base is 0 by definition"
            )
        tokenizer = self.tokenizer(variant)
        fp = {**self.pool.fingerprint(variant, unmerged=True), "request": "kl_to_base", "version": 1}
        cache = PredictionCache(self.cache_root, namespace, fp, required=("kl", "tokens"))
        settings = self._sized(variant, settings, namespace, "kl_to_base")
        keys = [context + _CHOICES_MARK + continuation for context, continuation in pairs]
        pair_of = dict(zip(keys, pairs))

        def compute(batch: list[str], tick: Ticker) -> list[dict]:
            return [
                {"kl": d.mean_kl, "tokens": d.tokens}
                for d in self.backend.kl_to_base(variant, [pair_of[k] for k in batch], settings, tick)
            ]

        records, stats = self._compute(
            cache,
            keys,
            compute,
            batch_size=max(resolved_batch_size(settings.batch_size) * 4, 16),
            sort_key=len,
            desc=desc,
        )
        computed = [pair_of[k][0] + pair_of[k][1] for k in stats.computed_prompts]
        phase = self._phase(fp, cache, stats, settings, prompt_tokens=token_total(tokenizer, computed))
        return [Divergence(r["kl"], r["tokens"]) for r in records], phase
