"""Several training processes (``torchrun`` / ``accelerate launch``, DDP or FSDP): who this
process is, the gradient accumulation that keeps the config's effective batch, and the
decisions every rank must take together.

The launchers set ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``; a plain ``python -m training``
sets none and is a world of one, so everything here is a no-op there. The config's batch is
the batch of one process: ``per_device_batch_size x gradient_accumulation_steps``. With N
processes each one accumulates N times fewer micro-batches, so an optimizer step still sees
that many examples (and the learning rate, warm-up and step count keep their meaning).

A rank that stops training while another goes on leaves the other waiting in a collective
forever, so the divergence guard and the time budget decide through :func:`any_rank`: all
ranks stop at the same step, for the same reason.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from harness.configfile import ConfigError


class BatchSplitError(ConfigError):
    """The config's effective batch cannot be split evenly over the launched processes (exit status 2)."""


@dataclass(frozen=True)
class World:
    """This process's place among the training processes."""

    rank: int = 0
    local_rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def world_from_env(env: Mapping[str, str] = os.environ) -> World:
    """The world the launcher describes (``torchrun`` and ``accelerate launch`` both set
    ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``); a world of one without them."""
    try:
        size = int(env.get("WORLD_SIZE", "1"))
        rank = int(env.get("RANK", "0"))
        local = int(env.get("LOCAL_RANK", str(rank)))
    except ValueError as e:
        raise RuntimeError(f"unreadable launcher variables (WORLD_SIZE, RANK, LOCAL_RANK): {e}") from None
    if size < 1 or not 0 <= rank < size:
        raise RuntimeError(f"launcher variables make no sense: RANK={rank}, WORLD_SIZE={size}")
    return World(rank=rank, local_rank=local, size=size)


def split_accumulation(per_device_batch_size: int, accumulation: int, world_size: int) -> int:
    """The gradient accumulation each of ``world_size`` processes uses so that
    ``per_device_batch_size x it x world_size == per_device_batch_size x accumulation``.

    Raises:
        BatchSplitError: ``accumulation`` is not a multiple of ``world_size``; the message
        names the keys and values that would work.
    """
    if accumulation % world_size == 0:
        return accumulation // world_size
    effective = per_device_batch_size * accumulation
    raise BatchSplitError(
        f"train.gradient_accumulation_steps = {accumulation} cannot be shared by {world_size} processes: "
        f"the effective batch {per_device_batch_size} x {accumulation} = {effective} is kept by giving "
        f"each process {accumulation}/{world_size} accumulation steps, which is not a whole number. "
        f"Launch a number of processes that divides {accumulation}, or set "
        f"train.gradient_accumulation_steps to a multiple of {world_size} and train.per_device_batch_size "
        f"so that their product stays {effective}"
    )


def any_rank(flag: bool, device) -> bool:
    """True on every rank when ``flag`` is true on any rank (a collective: every rank calls it
    at the same point); just ``flag`` outside a process group."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return flag
    t = torch.tensor([1 if flag else 0], dtype=torch.int32, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def barrier_and_close() -> None:
    """Wait for every rank (rank 0 may still be writing the adapter), then end the process group."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
