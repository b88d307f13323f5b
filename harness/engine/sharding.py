"""Data-parallel predictions: several pytest-xdist workers, one GPU each, share the work of a
(variant, benchmark) phase through the on-disk cache, then all read every record.

``pytest benchmarks/ -n N``: worker ``gwK`` is pinned to one GPU before torch starts CUDA
(:func:`worker_gpu`) and loads its models once. The prompts of a phase, in their stable order,
are dealt out by position: prompt ``i`` belongs to shard ``i % N``. Each shard's prompts are
cut into batches the same way on every worker (:func:`plan_batches`), so a batch has one number
everywhere. A worker computes the missing records of its own shard's batches, appending to the
shared cache, then waits until the cache holds every record of the phase; its test cases then
look their predictions up as in a single-process run, so the report is the same.

A worker may never come to a phase (xdist gives each worker only some of the cases), or may
come late (busy on another phase) or die. So a batch is claimed, while it is computed, with a
POSIX lock on its byte of ``<cache>.claims`` (the kernel drops the lock of a dead process), and
a worker that has finished its own shard and sees no other worker make progress on the phase for
``patience_s`` takes the missing batches of the other shards, from the back (their owner works
from the front). A phase therefore always completes, each record is computed once, and with every
worker present each computes its own shard only. Each computed record says which shard computed
it (``computed_by``).
"""

from __future__ import annotations

import fcntl
import os
import re
import time
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.progress import bar as progress_bar
from harness.records.cache import BatchCompute, CacheStats, PredictionCache, SortKey, Ticker, prompt_key

# NVLink multicast stays off in every process that may touch a GPU (NCCL, torch symmetric
# memory, NVSHMEM); evaluation workers use no collective, this is a guard for what they import.
MULTICAST_OFF = {
    "NCCL_NVLS_ENABLE": "0",
    "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1",
    "NVSHMEM_DISABLE_NVLS": "1",
}

PATIENCE_S = (
    30.0  # how long a finished worker waits for an idle phase's other workers before taking their batches
)
POLL_S = 0.2


@dataclass(frozen=True)
class Shard:
    """Worker ``index`` of ``count``."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(f"shard {self.index} of {self.count}: need 0 <= index < count")

    @classmethod
    def of_worker(cls, worker_id: str, count: int) -> Shard:
        """The shard of xdist worker ``gwK`` among ``count`` workers."""
        m = re.fullmatch(r"gw(\d+)", worker_id)
        if not m:
            raise ValueError(f"not an xdist worker id: {worker_id!r} (expected gw0, gw1, ...)")
        return cls(int(m.group(1)), count)

    @property
    def label(self) -> str:
        return f"{self.index + 1}/{self.count}"


# --- GPUs -------------------------------------------------------------------------------------


def visible_gpus(env: Mapping[str, str], count: Callable[[], int]) -> list[str]:
    """The GPUs this machine lets us use: ``CUDA_VISIBLE_DEVICES`` when set (ids, UUIDs or MIG
    names, kept as written), else ``0 .. count()-1``."""
    listed = env.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [g.strip() for g in listed.split(",") if g.strip() and g.strip() != "-1"]
    return [str(i) for i in range(count())]


def worker_gpu(shard: Shard, gpus: Sequence[str]) -> str | None:
    """The GPU worker ``shard.index`` uses: the ``index``-th visible one, round robin when
    there are more workers than GPUs (they then share a GPU, each with its own model copy);
    None without GPUs."""
    return gpus[shard.index % len(gpus)] if gpus else None


def keep_multicast_off(env: MutableMapping[str, str] = os.environ) -> None:
    """Turn NVLink multicast off for NCCL, torch and NVSHMEM unless the caller set these already:
    before any process group exists (NCCL reads them when a communicator is made)."""
    for key, value in MULTICAST_OFF.items():
        env.setdefault(key, value)


def pin_worker(gpu: str | None, env: MutableMapping[str, str] = os.environ) -> None:
    """In a worker, before torch initialises CUDA: see only ``gpu``; NVLink multicast off."""
    keep_multicast_off(env)
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpu


# --- the plan ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Batch:
    number: int  # the same on every worker: its claim is this byte of the claims file
    owner: int  # the shard it belongs to
    keys: tuple[str, ...]
    prompts: tuple[str, ...]


def plan_batches(
    prompts: Sequence[str], count: int, batch_size: int, sort_key: SortKey | None = None
) -> list[Batch]:
    """Every distinct prompt in one batch: prompt ``i`` (first occurrence order) goes to shard
    ``i % count``; each shard's prompts are sorted by ``sort_key`` (stable) and cut into
    batches of ``batch_size``. Shard 0's batches come first, then shard 1's, and so on; a pure
    function of its arguments, so every worker makes the same plan."""
    unique = list(dict((prompt_key(p), p) for p in prompts).items())
    plan: list[Batch] = []
    for owner in range(count):
        mine = unique[owner::count]
        if sort_key is not None:
            mine = sorted(mine, key=lambda kp: sort_key(kp[1]))
        for i in range(0, len(mine), batch_size):
            chunk = mine[i : i + batch_size]
            plan.append(Batch(len(plan), owner, tuple(k for k, _ in chunk), tuple(p for _, p in chunk)))
    return plan


# --- claims and the cache's new lines ------------------------------------------------------------


class _Claims:
    """One POSIX record lock per batch, on byte ``batch.number`` of ``<cache>.claims``: held
    while the batch is computed and appended; released by the kernel if the process dies."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)

    def try_claim(self, number: int) -> bool:
        try:
            fcntl.lockf(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, number)
        except OSError:
            return False
        return True

    def release(self, number: int) -> None:
        fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, number)

    def held_elsewhere(self, number: int) -> bool:
        """Whether another process is computing this batch now (a probe: claim and let go)."""
        if self.try_claim(number):
            self.release(number)
            return False
        return True

    def close(self) -> None:
        os.close(self._fd)


class _Tail:
    """The cache file's records, read incrementally: only complete new lines, as they appear."""

    def __init__(self, cache: PredictionCache):
        self.cache = cache
        self.path = cache.path
        self.records: dict[str, dict] = {}
        self._offset = 0
        self._line = 0

    def refresh(self) -> dict[str, dict]:
        if not self.path.exists():
            return self.records
        with open(self.path, "rb") as f:
            f.seek(self._offset)
            data = f.read()
        end = data.rfind(b"\n") + 1  # a line still being written waits for its newline
        for line in data[:end].splitlines():
            self._line += 1
            if line.strip():
                rec = self.cache.parse(line, f"{self.path}:{self._line}")
                if rec is not None:
                    self.records.setdefault(rec["key"], rec)
        self._offset += end
        return self.records


# --- the computation ----------------------------------------------------------------------------


class _Worker:
    """This worker's side of one sharded phase: which records it has computed, how it claims,
    computes and appends a batch, and how it waits for (or takes over) the other shards'."""

    def __init__(self, cache: PredictionCache, shard: Shard, compute_batch: BatchCompute):
        self.cache, self.shard, self.compute_batch = cache, shard, compute_batch
        self.tail = _Tail(cache)
        self.claims = _Claims(cache.path.with_suffix(".claims"))
        self.mine: set[str] = set()
        self.computed_prompts: list[str] = []
        self.bar = None  # the progress bar, while this worker computes

    def missing(self, batch: Batch) -> list[int]:
        return [i for i, k in enumerate(batch.keys) if k not in self.tail.records]

    def work(self, batch: Batch) -> bool:
        """Claim ``batch`` and compute what it still lacks; False if another worker holds it."""
        if not self.claims.try_claim(batch.number):
            return False
        try:
            self.tail.refresh()  # after the claim: a batch finished by its last holder is complete here
            todo = self.missing(batch)
            if todo:
                todo_prompts = [batch.prompts[i] for i in todo]
                ticked = Ticker(self.bar, len(todo_prompts))
                payloads = self.compute_batch(todo_prompts, ticked)
                by = f"shard {self.shard.label}"
                new = [
                    {"key": batch.keys[i], **payload, "computed_by": by, "fp": self.cache.key}
                    for i, payload in zip(todo, payloads)
                ]
                with self.cache.locked():
                    self.cache.append(new)
                self.tail.records.update({r["key"]: r for r in new})
                self.mine.update(r["key"] for r in new)
                self.computed_prompts.extend(todo_prompts)
                ticked.finish()
        finally:
            self.claims.release(batch.number)
        return True

    def others_records(self) -> int:
        return len(self.tail.records) - len(self.mine)

    def finish_phase(self, plan: list[Batch], patience_s: float, poll_s: float) -> None:
        """Wait until the cache holds every batch of ``plan``, taking over batches nobody works on."""
        others_seen = self.others_records()
        idle_since = time.perf_counter()
        while True:
            self.tail.refresh()
            pending = [b for b in plan if self.missing(b)]
            if not pending:
                return
            now = time.perf_counter()
            if self.others_records() > others_seen or any(
                self.claims.held_elsewhere(b.number) for b in pending
            ):
                others_seen, idle_since = self.others_records(), now
            # One of ours left behind (another worker's probe held it for a moment): take it back.
            if any(self.work(b) for b in pending if b.owner == self.shard.index):
                continue
            # Nobody else has worked on this phase for a while: take the others' batches, last first.
            if now - idle_since >= patience_s and any(self.work(b) for b in reversed(pending)):
                continue
            time.sleep(poll_s)


def sharded_compute(
    cache: PredictionCache,
    prompts: Sequence[str],
    compute_batch: BatchCompute,
    *,
    shard: Shard,
    batch_size: int,
    sort_key: SortKey | None = None,
    desc: str = "generating",
    patience_s: float = PATIENCE_S,
    poll_s: float = POLL_S,
) -> tuple[list[dict], CacheStats]:
    """``cached_compute`` for worker ``shard``: compute the missing records of this shard (and of
    absent workers' shards), wait for the others', and return one record per prompt.

    ``stats.computed`` counts the records this worker computed; ``stats.cached`` the others,
    read from the cache (present before, or written by another worker meanwhile).
    """
    plan = plan_batches(prompts, shard.count, batch_size, sort_key)
    cache.check_sidecar()
    worker = _Worker(cache, shard, compute_batch)
    start = time.perf_counter()
    try:
        worker.tail.refresh()
        n_missing = sum(len(worker.missing(b)) for b in plan if b.owner == shard.index)
        with progress_bar(n_missing, f"{desc} [shard {shard.label}]", disable=n_missing == 0) as bar:
            worker.bar = bar
            for batch in plan:
                if batch.owner == shard.index and worker.missing(batch):
                    worker.work(batch)
            worker.finish_phase(plan, patience_s, poll_s)
    finally:
        worker.claims.close()
    stats = CacheStats(
        cached=len({prompt_key(p) for p in prompts}) - len(worker.mine),
        computed=len(worker.mine),
        seconds=time.perf_counter() - start,
        computed_prompts=worker.computed_prompts,
    )
    return [worker.tail.records[prompt_key(p)] for p in prompts], stats
