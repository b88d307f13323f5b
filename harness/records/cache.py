"""The on-disk prediction cache: append-only JSONL files, one per (namespace, fingerprint).

Generate in batches, assert per item: a variant's predictions are computed once and appended
to a JSONL file as each batch finishes. A repeated run with the same fingerprint computes
nothing; an interrupted run resumes where it stopped. The fingerprint holds what can change a
number (model and adapter hashes, load mode, generation or scoring settings); each record is
keyed by a hash of its exact prompt, so template, shots and seed are covered too, and two
variants that send the same prompt to the same model share the record (e.g. base zero-shot and
base 3-shot on MMLU).

Each record also carries ``sum``, a hash of everything else it holds: a record whose payload
was changed after it was written (one character flipped in a cached ``raw`` output, say) is
skipped with a warning naming the file and line, and its item computed again, never scored.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.files import atomic_write, locked
from harness.progress import bar as progress_bar

log = logging.getLogger(__name__)

# 2: records carry ``sum`` (see record_sum); format 1 files, without it, are never read.
CACHE_FORMAT_VERSION = 2


def record_sum(record: dict) -> str:
    """The hash of a record's content (every key but ``sum``), as written in its ``sum``."""
    body = {k: v for k, v in record.items() if k != "sum"}
    blob = json.dumps(body, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def prompt_key(prompt: str) -> str:
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:20]


def fingerprint_key(fingerprint: dict) -> str:
    blob = json.dumps({"cache_format": CACHE_FORMAT_VERSION, **fingerprint}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class CacheError(RuntimeError):
    """A cache file does not hold what its name says; the message names it and the fix."""


class PredictionCache:
    """An append-only JSONL file of records for one (namespace, fingerprint).

    The file sits at ``root/<namespace>/<fingerprint-hash>.jsonl`` with the fingerprint
    itself beside it in ``.json``, so a person can tell what a cache file holds; every record
    carries the hash too (``fp``). ``required`` names the payload keys a record must have
    (``raw`` for a generation): a line without them is skipped, never trusted.
    """

    def __init__(self, root: Path, namespace: str, fingerprint: dict, required: Sequence[str] = ()):
        self.fingerprint = fingerprint
        self.key = fingerprint_key(fingerprint)
        self.path = Path(root) / namespace / f"{self.key}.jsonl"
        self.required = tuple(required)

    def check_sidecar(self) -> None:
        """Refuse a cache whose recorded fingerprint is not this one (edited, or copied over)."""
        meta = self.path.with_suffix(".json")
        if not meta.is_file():
            return
        try:
            recorded = json.loads(meta.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise CacheError(
                f"{meta}: unreadable fingerprint ({e}); delete it and {self.path.name}"
            ) from None
        if json.loads(json.dumps(recorded, sort_keys=True)) != json.loads(
            json.dumps(self.fingerprint, sort_keys=True)
        ):
            raise CacheError(
                f"{meta}: this cache was written for another fingerprint than its name says "
                f"({recorded} vs {self.fingerprint}); delete {meta.name} and {self.path.name}"
            )

    def parse(self, line: bytes, where: str) -> dict | None:
        """The record on one line of the file, or None (with a warning naming the file and line)
        when it is torn, not JSON, of another fingerprint, or lacks a required key."""
        try:
            rec = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            log.warning("%s: unreadable cache line skipped (interrupted write?)", where)
            return None
        if not isinstance(rec, dict) or "key" not in rec:
            log.warning("%s: cache line without a record key skipped", where)
            return None
        if rec.get("fp", self.key) != self.key:
            log.warning("%s: cache line of another fingerprint (%s) skipped", where, rec.get("fp"))
            return None
        missing = [k for k in self.required if k not in rec]
        if missing:
            log.warning("%s: cache line without %s skipped", where, ", ".join(missing))
            return None
        if rec.get("sum") != record_sum(rec):
            log.warning(
                "%s: cache line whose content does not match its hash skipped (changed on disk?)", where
            )
            return None
        del rec["sum"]  # checked: the record reads as it was computed
        return rec

    def load(self) -> dict[str, dict]:
        """Every good record, keyed by prompt key; the first good record of a key wins (a later
        bad or torn one never replaces it). A bad line is skipped, its item computed again."""
        self.check_sidecar()
        records: dict[str, dict] = {}
        if not self.path.exists():
            return records
        with open(self.path, "rb") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                rec = self.parse(line, f"{self.path}:{n}")
                if rec is not None:
                    records.setdefault(rec["key"], rec)
        return records

    def append(self, records: Sequence[dict]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        meta = self.path.with_suffix(".json")
        if not meta.exists():  # read by other workers without the lock: never half written
            atomic_write(meta, json.dumps(self.fingerprint, indent=2, sort_keys=True))
        with open(self.path, "a", encoding="utf-8") as f:
            # A torn previous line must not swallow the next record. (Only the last byte is read:
            # reading the whole file at every append makes a long run quadratic.)
            if f.tell() > 0 and not _ends_with_newline(self.path):
                f.write("\n")
            for rec in records:
                body = {k: v for k, v in rec.items() if k != "sum"}
                body["fp"] = self.key
                f.write(json.dumps({**body, "sum": record_sum(body)}, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold an exclusive lock, so parallel workers (pytest -n) compute each item once:
        the second waits, then finds the first one's records."""
        with locked(self.path.with_suffix(".lock")):
            yield


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


class Ticker:
    """Moves a bar as a batch's items finish, never past the batch (``finish`` adds the rest)."""

    def __init__(self, bar, size: int):
        self.bar, self.left = bar, size

    def __call__(self, n: int) -> None:
        n = max(0, min(n, self.left))
        self.left -= n
        self.bar.update(n)

    def finish(self) -> None:
        self(self.left)


# ``compute_batch(prompts, tick)``: one payload dict per prompt, ``tick(n)`` as n more finish.
BatchCompute = Callable[[list[str], Ticker], list[dict]]
# The order missing prompts are computed in (token length, a shared prefix): a number or a text.
SortKey = Callable[[str], int | str]


def cached_compute(
    cache: PredictionCache,
    prompts: Sequence[str],
    compute_batch: BatchCompute,
    *,
    batch_size: int,
    sort_key: SortKey | None = None,
    desc: str = "computing",
) -> tuple[list[dict], CacheStats]:
    """One record per prompt, from the cache when present, else computed in batches.

    ``compute_batch(prompts, tick)`` maps a list of prompts to a list of dicts (the payload of each
    record), calling ``tick(n)`` as ``n`` more of them finish, so the bar moves inside a batch.
    Missing prompts are computed in ``sort_key`` order (e.g. token length, to cut padding)
    and appended to the cache after every batch, so an interrupted run loses one batch.
    """
    stats = CacheStats()
    with cache.locked():
        records = cache.load()
        keys = [prompt_key(p) for p in prompts]
        missing = {k: p for k, p in zip(keys, prompts) if k not in records}
        todo = sorted(missing.items(), key=lambda kv: sort_key(kv[1]) if sort_key else 0)
        stats.cached = len(set(keys)) - len(todo)
        start = time.perf_counter()
        if todo:
            with progress_bar(len(todo), desc) as bar:
                for i in range(0, len(todo), batch_size):
                    chunk = todo[i : i + batch_size]
                    ticked = Ticker(bar, len(chunk))
                    payloads = compute_batch([p for _, p in chunk], ticked)
                    new = [{"key": k, **payload, "fp": cache.key} for (k, _), payload in zip(chunk, payloads)]
                    cache.append(new)
                    records.update({r["key"]: r for r in new})
                    ticked.finish()
        stats.computed = len(todo)
        stats.computed_prompts = [p for _, p in todo]
        stats.seconds = time.perf_counter() - start
    return [records[k] for k in keys], stats
