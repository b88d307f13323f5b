"""The model engine: answers a task's requests in batches, through the cache.

Two request kinds, as lm-evaluation-harness's model interface has them:

* :meth:`Engine.generate`: greedy continuations of prompts, each row stopping where the task's
  stop rule says (Spider: at the end of the SQL) or at ``max_new_tokens``;
* :meth:`Engine.score_choices`: the log-likelihood of each choice after a prompt (MMLU).

Each request kind of a variant is one *phase*: its prompts are looked up in the prediction
cache (harness/records/cache.py), the missing ones computed in length-sorted batches and appended as
each batch finishes; under pytest-xdist every worker computes its shard (harness/engine/sharding.py).
The engine knows no task: prompts, stop rules and choices come from the task; what comes back
is raw text or log-probabilities, and a :class:`Phase` record of what was computed.

One batched decoding loop serves every generating task: :func:`generate_batch`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from harness.engine.loglik import ChoiceScores, Divergence, kl_to_base, score_choices
from harness.engine.sharding import Shard, sharded_compute
from harness.engine.static_decoding import generate_static, wants_static
from harness.models.backends import Dispatch, hf_settings, register_backend
from harness.models.pool import AUTO_BATCH, ModelPool
from harness.records.cache import PredictionCache, cached_compute

log = logging.getLogger(__name__)
_CHOICES_MARK = "\x00choices\x00"  # separates a prompt from its choices in a record's key


class ModelSpec(Protocol):
    """What the engine needs of a variant: which model, loaded how, with which adapter."""

    name: str
    model: str
    load: str
    adapter: str


@dataclass(frozen=True)
class StopRule:
    """When a row's generation may stop, judged on the text generated so far; ``name`` goes
    into the cache fingerprint (change it when the rule changes)."""

    name: str
    is_complete: Callable[[str], bool]

    def fingerprint(self) -> dict:
        """The rule's entry in the generation fingerprint. Spider's ``sql_end`` keeps the value
        the engine wrote before rules had names, ``stop_at_sql_end: true``, so the caches made
        then stay valid; every other rule is recorded by its own name."""
        if self.name == "sql_end":
            return {"stop_at_sql_end": True}
        return {"stop": self.name}


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
        fp = {"max_new_tokens": self.max_new_tokens, **stop, "greedy": True}
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


# -- decoding ------------------------------------------------------------------------------------


def _stopping_criteria(tokenizer, prompt_length: int, stop: StopRule | None, on_step):
    """A transformers ``StoppingCriteria``: one flag per row, so finished rows stop (get
    padding) while the batch goes on; ``on_step(done_rows)`` reports progress every step."""
    import torch
    from transformers import StoppingCriteria

    class RowComplete(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            new = input_ids[:, prompt_length:]
            if stop is None:
                flags = [False] * new.shape[0]
            else:
                texts = tokenizer.batch_decode(new, skip_special_tokens=True)
                flags = [stop.is_complete(t) for t in texts]
            if on_step is not None:
                on_step(new.shape[1], flags)
            return torch.tensor(flags, device=input_ids.device)

    return RowComplete()


def generate_batch(
    model, tokenizer, prompts: Sequence[str], settings: GenerationSettings, on_step=None
) -> list[str]:
    """Greedy continuations of ``prompts`` (one left-padded batch), cut at the stop point.

    ``on_step(step, flags)`` is called after every decoding step with the rows' stop flags.
    """
    import torch
    from transformers import StoppingCriteriaList

    if wants_static(model):  # a static cache and a captured step: not bound by kernel launches
        return generate_static(
            model,
            tokenizer,
            prompts,
            max_new_tokens=settings.max_new_tokens,
            stop=settings.stop,
            add_special_tokens=settings.add_special_tokens,
            on_step=on_step,
        )
    enc = tokenizer(
        list(prompts), return_tensors="pt", padding=True, add_special_tokens=settings.add_special_tokens
    )
    enc = enc.to(model.device)
    prompt_length = enc["input_ids"].shape[1]
    criteria = None
    if settings.stop is not None or on_step is not None:
        criteria = StoppingCriteriaList(
            [_stopping_criteria(tokenizer, prompt_length, settings.stop, on_step)]
        )
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    with torch.inference_mode():
        out = model.generate(
            **enc,
            max_new_tokens=settings.max_new_tokens,
            do_sample=False,
            num_beams=1,
            pad_token_id=pad_id,
            stopping_criteria=criteria,
        )
    return tokenizer.batch_decode(out[:, prompt_length:], skip_special_tokens=True)


def split_on_oom(
    compute: Callable[[list], list],
    batch: list,
    *,
    size: int | None = None,
    fitted: dict | None = None,
    key: tuple = (),
) -> list:
    """``compute`` over ``batch`` in chunks of ``size`` rows (default: all), halving the chunk
    while the accelerator runs out of memory; the rest of the batch then goes at the size that fit.

    The batch size that fits is found by trying, so one config serves a 135M model on a laptop
    GPU and a 7B model on an H200; the outputs do not depend on it (greedy decoding). With
    ``fitted`` (the pool's session-long table, for ``batch_size = "auto"``), every halving is kept
    under ``key``, and a later call with the same key starts at the size kept there.
    """
    import torch

    size = size or len(batch)
    out: list = []
    done = 0
    while done < len(batch):
        if fitted is not None and key in fitted:
            size = min(size, fitted[key])
        rows = batch[done : done + size]
        try:
            out.extend(compute(rows))
        except torch.cuda.OutOfMemoryError:
            if len(rows) == 1:
                raise
            torch.cuda.empty_cache()
            size = len(rows) // 2
            if fitted is not None:
                fitted[key] = size
            log.warning("out of accelerator memory with a batch of %d; going on with %d", len(rows), size)
            continue
        done += len(rows)
    return out


# -- the engine ----------------------------------------------------------------------------------


def _rows_done(tick):
    """A ``generate_batch`` step callback that ticks the bar as rows of the batch stop."""
    if tick is None:
        return None
    done = [0]

    def on_step(step: int, flags: list[bool]) -> None:
        finished = sum(flags)
        if finished > done[0]:
            tick(finished - done[0])
            done[0] = finished

    return on_step


class HFBackend:
    """What computes the engine's answers: Hugging Face models from the pool, in batches.

    A stand-in with the same two methods (tests, the scoring-scale benchmark) makes the engine
    cache answers that no model computed."""

    def __init__(self, pool: ModelPool):
        self.pool = pool

    def generate(
        self, variant: ModelSpec, prompts: list[str], settings: GenerationSettings, tick=None
    ) -> list[str]:
        tokenizer = self.pool.tokenizer(variant)
        with self.pool.activated(variant) as model:
            return split_on_oom(
                lambda rows: generate_batch(model, tokenizer, rows, settings, _rows_done(tick)),
                prompts,
                fitted=self.pool.fitted_batches if settings.fitted_key else None,
                key=settings.fitted_key,
            )

    def score_choices(
        self,
        variant: ModelSpec,
        requests: list[tuple[str, str]],
        choices: Sequence[Sequence[str]],
        settings: LoglikSettings,
        tick=None,
    ) -> list[ChoiceScores]:
        tokenizer = self.pool.tokenizer(variant)
        with self.pool.activated(variant) as model:
            reuse = settings.reuse_prefix == "on" or (
                settings.reuse_prefix == "auto" and model.device.type == "cpu"
            )

            def score(rows: list[int], batch_size: int) -> list[ChoiceScores]:
                return score_choices(
                    model,
                    tokenizer,
                    [requests[i] for i in rows],
                    [choices[i] for i in rows],
                    batch_size=batch_size,
                    max_batch_tokens=settings.max_batch_tokens,
                    reuse_prefix=reuse,
                    on_batch=tick,
                )

            return self._fitting(score, len(requests), settings)

    def _fitting(self, compute, n: int, settings: LoglikSettings) -> list:
        """``compute(rows, batch_size)`` over rows ``0..n-1``: at once at the settings' batch size,
        or, for "auto" on CUDA (``fitted_key``), in chunks of the size that fits (split_on_oom)."""
        rows = list(range(n))
        if not settings.fitted_key:
            return compute(rows, settings.batch_size)
        return split_on_oom(
            lambda chunk: compute(chunk, len(chunk)),
            rows,
            size=settings.batch_size,
            fitted=self.pool.fitted_batches,
            key=settings.fitted_key,
        )

    def kl_to_base(
        self, variant: ModelSpec, pairs: list[tuple[str, str]], settings: LoglikSettings, tick=None
    ) -> list[Divergence]:
        tokenizer = self.pool.tokenizer(variant)
        with self.pool.activated(variant, unmerged=True) as model:  # the base: adapter disabled
            return self._fitting(
                lambda rows, batch_size: kl_to_base(
                    model,
                    tokenizer,
                    [pairs[i] for i in rows],
                    batch_size=batch_size,
                    max_batch_tokens=settings.max_batch_tokens,
                    on_batch=tick,
                ),
                len(pairs),
                settings,
            )


register_backend("hf", HFBackend, hf_settings)


class Engine:
    """Answers requests for any variant, through one model pool and one prediction cache."""

    def __init__(self, pool: ModelPool, cache_root: Path, shard: Shard | None = None, backend=None):
        self.pool = pool
        self.cache_root = Path(cache_root)
        self.shard = shard
        self.backend = backend or Dispatch(pool)  # each variant's own backend (harness.models.backends)

    def tokenizer(self, variant: ModelSpec):
        return self.pool.tokenizer(variant)

    def context_length(self, variant: ModelSpec) -> int:
        return self.pool.context_length(variant)

    def _sized(self, variant: ModelSpec, settings, *kind: str):
        """``settings`` with its batch size a number: "auto" decided by the pool, with the key
        the size that fits is kept under (ModelPool.batch_size)."""
        if settings.batch_size != AUTO_BATCH:
            return settings
        size, key = self.pool.batch_size(variant, AUTO_BATCH, *kind)
        return replace(settings, batch_size=size, fitted_key=key)

    def _phase(self, fp: dict, cache: PredictionCache, stats, settings, **tokens) -> Phase:
        phase = Phase(
            fp, cache.key, stats.cached, stats.computed, stats.seconds, self.pool.device_name(), **tokens
        )
        if settings.fitted_key:  # "auto" on CUDA: the size that fit, for the record (not the key)
            phase.info["auto_batch_size"] = self.pool.fitted_batches.get(
                settings.fitted_key, settings.batch_size
            )
        return phase

    def _compute(
        self, cache: PredictionCache, keys: Sequence[str], compute, *, batch_size: int, sort_key, desc: str
    ):
        if self.shard is not None and self.shard.count > 1:
            return sharded_compute(
                cache, keys, compute, shard=self.shard, batch_size=batch_size, sort_key=sort_key, desc=desc
            )
        return cached_compute(cache, keys, compute, batch_size=batch_size, sort_key=sort_key, desc=desc)

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

        def compute(batch: list[str], tick) -> list[dict]:
            return [{"raw": raw} for raw in self.backend.generate(variant, batch, settings, tick)]

        n_tokens: dict[str, int] = {}  # the sort key's count, reused for the phase's

        def length(prompt: str) -> int:
            if prompt not in n_tokens:
                n_tokens[prompt] = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
            return n_tokens[prompt]

        records, stats = self._compute(
            cache, list(prompts), compute, batch_size=settings.batch_size, sort_key=length, desc=desc
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

        def compute(batch: list[str], tick) -> list[dict]:
            scores = self.backend.score_choices(
                variant, [request_of[k][0] for k in batch], [request_of[k][1] for k in batch], settings, tick
            )
            return [{"logprobs": list(s.logprobs), "tokens": list(s.token_counts)} for s in scores]

        # Whole prefixes together, so the scorer runs each shared prefix once.
        records, stats = self._compute(
            cache,
            keys,
            compute,
            batch_size=max(settings.batch_size * 8, 64),
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

        def compute(batch: list[str], tick) -> list[dict]:
            return [
                {"kl": d.mean_kl, "tokens": d.tokens}
                for d in self.backend.kl_to_base(variant, [pair_of[k] for k in batch], settings, tick)
            ]

        records, stats = self._compute(
            cache,
            keys,
            compute,
            batch_size=max(settings.batch_size * 4, 16),
            sort_key=len,
            desc=desc,
        )
        computed = [pair_of[k][0] + pair_of[k][1] for k in stats.computed_prompts]
        phase = self._phase(fp, cache, stats, settings, prompt_tokens=token_total(tokenizer, computed))
        return [Divergence(r["kl"], r["tokens"]) for r in records], phase


def token_total(tokenizer, texts: Sequence[str]) -> int:
    """Tokens in ``texts``: what a phase computed, for its throughput (scripts/bench_phases.py)."""
    if not texts:
        return 0
    return sum(len(ids) for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"])
