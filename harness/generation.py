"""Batched greedy generation that stops at the end of the SQL, and the on-disk prediction cache.

Generate in batches, assert per item: a variant's predictions are computed once, in
length-sorted, left-padded batches, and appended to a JSONL cache as each batch finishes. A
repeated run with the same fingerprint generates nothing; an interrupted run resumes where
it stopped. The fingerprint holds what can change a number (model and adapter hashes, load
mode, generation settings); each record is keyed by a hash of its exact prompt, so template,
shots and seed are covered too, and two variants that send the same prompt to the same model
share the record (e.g. base zero-shot and base 3-shot on MMLU).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

log = logging.getLogger(__name__)

CACHE_FORMAT_VERSION = 1


# ---------------------------------------------------------------------------------------------
# Stopping: pure rules on the text generated so far.

_FENCE = "```"
_REPEAT_MIN_CHARS = 12


def sql_is_complete(text: str) -> bool:
    """Whether generation can stop: the SQL statement has ended.

    Stops at a ``;`` outside string literals, at ``[/INST]`` (the paper's model started a new
    turn), at a closing code fence, or at the first line repeated (the paper's Figure 2: one
    query, then the same query again until the token cap).
    """
    if "[/INST]" in text:
        return True
    body = text.lstrip()
    if body.startswith(_FENCE):
        if body.count(_FENCE) >= 2:
            return True
        body = body[len(_FENCE):]
    elif _FENCE in body and body.index(_FENCE) > 0:
        return True
    if _has_statement_end(body):
        return True
    lines = [ln.strip().lstrip("-").strip() for ln in text.splitlines()]
    if not text.endswith("\n"):
        lines = lines[:-1]  # the last line is still being written
    complete_lines = [ln for ln in lines if len(ln) >= _REPEAT_MIN_CHARS]
    return len(complete_lines) != len(set(complete_lines))


def _has_statement_end(text: str) -> bool:
    """A ``;`` outside quotes, after some SQL."""
    quote = None
    seen_content = False
    for ch in text:
        if quote:
            if ch == quote:
                quote = None
        elif ch in ("'", '"', "`"):
            quote = ch
        elif ch == ";":
            if seen_content:
                return True
        elif not ch.isspace():
            seen_content = True
    return False


def _sql_stopping_criteria(tokenizer, prompt_length: int):
    """A transformers ``StoppingCriteria`` marking each row done once its SQL is complete.

    Returns one flag per row, so finished rows stop (get padding) while the batch goes on.
    """
    import torch
    from transformers import StoppingCriteria

    class SqlComplete(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            texts = tokenizer.batch_decode(input_ids[:, prompt_length:], skip_special_tokens=True)
            return torch.tensor([sql_is_complete(t) for t in texts], device=input_ids.device)

    return SqlComplete()


@dataclass(frozen=True)
class GenerationSettings:
    max_new_tokens: int = 128
    batch_size: int = 8
    stop_at_sql_end: bool = True  # False: end-of-sequence only (the paper's notebooks)

    def as_fingerprint(self) -> dict:
        # batch_size is left out on purpose: greedy outputs do not depend on it (up to
        # floating-point noise), and a different batch size must not discard a cache.
        return {"max_new_tokens": self.max_new_tokens, "stop_at_sql_end": self.stop_at_sql_end, "greedy": True}


def generate_batch(model, tokenizer, prompts: Sequence[str], settings: GenerationSettings) -> list[str]:
    """Greedy continuations of ``prompts`` (one left-padded batch), cut at the stop point."""
    import torch

    enc = tokenizer(list(prompts), return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
    prompt_length = enc["input_ids"].shape[1]
    criteria = []
    if settings.stop_at_sql_end:
        from transformers import StoppingCriteriaList

        criteria = StoppingCriteriaList([_sql_stopping_criteria(tokenizer, prompt_length)])
    with torch.inference_mode():
        out = model.generate(
            **enc,
            max_new_tokens=settings.max_new_tokens,
            do_sample=False,
            num_beams=1,
            pad_token_id=tokenizer.pad_token_id,
            stopping_criteria=criteria or None,
        )
    return tokenizer.batch_decode(out[:, prompt_length:], skip_special_tokens=True)


def split_on_oom(compute: Callable[[list], list], batch: list) -> list:
    """``compute(batch)``, halving the batch while the accelerator runs out of memory.

    The batch size that fits is found by trying, so one config serves a 135M model on a laptop
    GPU and a 7B model on an H200; the outputs do not depend on it (greedy decoding).
    """
    import torch

    try:
        return compute(batch)
    except torch.cuda.OutOfMemoryError:
        if len(batch) == 1:
            raise
        torch.cuda.empty_cache()
        half = len(batch) // 2
        log.warning("out of accelerator memory with a batch of %d; retrying as %d + %d", len(batch), half, len(batch) - half)
        return split_on_oom(compute, batch[:half]) + split_on_oom(compute, batch[half:])


# ---------------------------------------------------------------------------------------------
# The cache.


def prompt_key(prompt: str) -> str:
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:20]


def fingerprint_key(fingerprint: dict) -> str:
    blob = json.dumps({"cache_format": CACHE_FORMAT_VERSION, **fingerprint}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class PredictionCache:
    """An append-only JSONL file of records for one (benchmark, fingerprint).

    The file sits at ``root/<benchmark>/<fingerprint-hash>.jsonl`` with the fingerprint
    itself beside it in ``.json``, so a person can tell what a cache file holds.
    """

    def __init__(self, root: Path, benchmark: str, fingerprint: dict):
        self.fingerprint = fingerprint
        self.key = fingerprint_key(fingerprint)
        self.path = Path(root) / benchmark / f"{self.key}.jsonl"

    def load(self) -> dict[str, dict]:
        """Every complete record, keyed by prompt key. A torn last line (the run was killed
        mid-write) is ignored; its item is simply computed again."""
        records: dict[str, dict] = {}
        if not self.path.exists():
            return records
        with open(self.path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                try:
                    rec = json.loads(line)
                    records[rec["key"]] = rec
                except (json.JSONDecodeError, KeyError, TypeError):
                    log.warning("%s:%d: unreadable cache line ignored (interrupted write?)", self.path, n)
        return records

    def append(self, records: Sequence[dict]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        meta = self.path.with_suffix(".json")
        if not meta.exists():
            meta.write_text(json.dumps(self.fingerprint, indent=2, sort_keys=True))
        with open(self.path, "a", encoding="utf-8") as f:
            # A torn previous line must not swallow the next record. (Read the last byte only:
            # reading the whole file at every append made a 14,042-question run quadratic.)
            if f.tell() > 0 and not _ends_with_newline(self.path):
                f.write("\n")
            for rec in records:
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold an exclusive lock, so parallel workers (pytest -n) compute each item once:
        the second waits, then finds the first one's records."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


@dataclass
class CacheStats:
    cached: int = 0
    computed: int = 0
    seconds: float = 0.0
    computed_prompts: list[str] = field(default_factory=list)  # in the order they were computed


def cached_compute(
    cache: PredictionCache,
    prompts: Sequence[str],
    compute_batch: Callable[[list[str]], list[dict]],
    *,
    batch_size: int,
    sort_key: Callable[[str], int] | None = None,
    desc: str = "generating",
    shard=None,
) -> tuple[list[dict], CacheStats]:
    """One record per prompt, from the cache when present, else computed in batches.

    ``compute_batch`` maps a list of prompts to a list of dicts (the payload of each record).
    Missing prompts are computed in ``sort_key`` order (e.g. token length, to cut padding)
    and appended to the cache after every batch, so an interrupted run loses one batch.
    ``shard`` (a ``harness.sharding.Shard``, one per pytest-xdist worker): this worker computes
    its share and waits for the other workers' records (``harness.sharding.sharded_compute``).
    """
    from tqdm.auto import tqdm

    if shard is not None and shard.count > 1:
        from harness.sharding import sharded_compute

        return sharded_compute(cache, prompts, compute_batch, shard=shard, batch_size=batch_size, sort_key=sort_key, desc=desc)

    stats = CacheStats()
    with cache.locked():
        records = cache.load()
        keys = [prompt_key(p) for p in prompts]
        todo = sorted({k: p for k, p in zip(keys, prompts) if k not in records}.items(), key=lambda kv: sort_key(kv[1]) if sort_key else 0)
        stats.cached = len(set(keys)) - len(todo)
        start = time.perf_counter()
        if todo:
            with tqdm(total=len(todo), desc=desc, unit="item", dynamic_ncols=True) as bar:
                for i in range(0, len(todo), batch_size):
                    chunk = todo[i : i + batch_size]
                    payloads = compute_batch([p for _, p in chunk])
                    new = [{"key": k, **payload} for (k, _), payload in zip(chunk, payloads)]
                    cache.append(new)
                    records.update({r["key"]: r for r in new})
                    bar.update(len(chunk))
        stats.computed = len(todo)
        stats.computed_prompts = [p for _, p in todo]
        stats.seconds = time.perf_counter() - start
    return [records[k] for k in keys], stats


