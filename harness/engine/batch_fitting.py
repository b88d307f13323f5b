"""Batch sizes found by trying: a batch halved while the accelerator runs out of memory.

``batch_size = "auto"`` is decided by the model pool (harness.models.pool.ModelPool.batch_size):
a fixed size on a CPU, a cap on CUDA that :func:`split_on_oom` halves until a batch fits; the size
that fit is kept in the pool for the session, under a key per (model, device, task, request kind).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

log = logging.getLogger(__name__)


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


def resolved_batch_size(batch_size: int | str) -> int:
    """A batch size once the engine has decided "auto" (Engine._sized): a number of rows."""
    if isinstance(batch_size, str):
        raise ValueError(
            f"batch_size {batch_size!r} reached a batch undecided: only 'auto' or a number is valid"
        )
    return batch_size
