"""``python -m training --config FILE [--output DIR] [--max-steps N] [--dry-run] [key=value ...]``.

Exit status: 0 when every run succeeded, 1 when any run failed or diverged (its summary says
why, and an earlier adapter at its output is left as it was), 2 for a bad config or command line.

Several processes: ``torchrun --nproc_per_node N -m training --config FILE`` or
``accelerate launch --num_processes N -m training --config FILE`` (docs/multi_gpu.md); rank 0
logs, prints and writes, the other ranks log only warnings and errors.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Sequence

from training._config import ConfigError, SweepPoint, load_sweep, parse_override
from training._distributed import barrier_and_close, keep_multicast_off, world_from_env
from training._output import OutputError, write_json
from training._recipe import TrainingResult, run

log = logging.getLogger("training")


class TrainingFailed(RuntimeError):
    """At least one run of a config failed or diverged; ``results`` holds every run's result."""

    def __init__(self, results: list[TrainingResult]):
        self.results = results
        bad = [r for r in results if not r.ok]
        lines = [f"{r.summary['config']['name']}: {r.status} ({r.reason}); summary in {r.summary_path}" for r in bad]
        super().__init__(f"{len(bad)} of {len(results)} training runs did not succeed:\n  " + "\n  ".join(lines))


def train_from_config(path: str | Path, *, callbacks: Sequence = (), **overrides) -> list[TrainingResult]:
    """Train every run a config file asks for (one, or one per sweep point).

    Args:
        path: a training config (TOML), e.g. ``training/configs/default.toml``.
        callbacks: extra ``TrainerCallback``s for every run.
        **overrides: config keys, dotted or bare (``output="adapters/x"``, ``max_steps=5``,
            ``learning_rate=2e-2``, ``**{"lora.r": 8}``).

    Returns:
        One result per run, all succeeded.

    Raises:
        ConfigError: the config or an override is invalid (nothing was trained).
        TrainingFailed: a run failed or diverged; every run was still attempted, and each
            failure's summary is in ``<its output>.failed/training_summary.json``.
    """
    points = load_sweep(path, **overrides)
    results = []
    for i, point in enumerate(points, 1):
        if len(points) > 1:
            log.info("sweep run %d of %d: %s -> %s", i, len(points), point.label, point.config.output)
        results.append(run(point.config, callbacks=callbacks, sweep_values=dict(point.values) or None))
    if points[0].values and world_from_env().is_main:
        _write_sweep_summary(points, results)
    if not all(r.ok for r in results):
        raise TrainingFailed(results)
    return results


def _write_sweep_summary(points: list[SweepPoint], results: list[TrainingResult]) -> None:
    root = Path(points[0].config.output).parent
    write_json(root / "sweep_summary.json", {
        "config_file": points[0].config.source,
        "runs": [
            {"label": p.label, "values": dict(p.values), "status": r.status, "reason": r.reason,
             "output": str(r.output), "summary": str(r.summary_path), "final_loss": r.summary.get("final_loss")}
            for p, r in zip(points, results)
        ],
    })


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training", description="Train QLoRA adapters on the Spider train split.")
    parser.add_argument("--config", required=True, help="training config (TOML), e.g. training/configs/default.toml")
    parser.add_argument("--output", help="adapter folder (a sweep's root folder); overrides the config's output")
    parser.add_argument("--max-steps", type=int, help="stop after this many optimizer steps (train.max_steps)")
    parser.add_argument("--dry-run", action="store_true", help="check the config and list the runs, train nothing")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="config overrides, dotted or bare keys: learning_rate=2e-2 lora.r=8 data.max_examples=100")
    return parser


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"terminated by signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit status (0 ok, 1 a run failed or diverged, 2 bad config)."""
    args = build_parser().parse_args(argv)
    keep_multicast_off()  # before any process group: NCCL reads these when it starts
    # SIGTERM (a killed `make bench`, a CI timeout) unwinds like Ctrl-C, so the run in progress
    # removes its staging folder and records itself as failed; the old handler comes back after.
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        return _main(args)
    except KeyboardInterrupt as e:
        print(f"training: interrupted ({e or 'Ctrl-C'}); the summary of the run in progress is in <output>.failed/", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _main(args: argparse.Namespace) -> int:
    world = world_from_env()
    if not logging.getLogger().handlers and not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(f"training[rank {world.rank}]: %(message)s" if world.distributed else "training: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO if world.is_main else logging.WARNING)
    try:
        overrides = dict(parse_override(o) for o in args.overrides)
        if args.output is not None:
            overrides["output"] = args.output
        if args.max_steps is not None:
            overrides["max_steps"] = args.max_steps
        if args.dry_run:
            for point in load_sweep(args.config, **overrides):
                print(f"{point.config.name}: output {point.config.output}" + (f" ({point.label})" if point.values else ""))
            return 0
        results = train_from_config(args.config, **overrides)
        barrier_and_close()  # rank 0 may still be writing the adapter; then the process group ends
    except (ConfigError, OutputError) as e:
        print(f"training: {e}", file=sys.stderr)
        return 2
    except TrainingFailed as e:
        barrier_and_close()
        if world.is_main:
            print(f"training: {e}", file=sys.stderr)
        return 1
    if not world.is_main:
        return 0
    for r in results:
        print(f"training: {r.summary['config']['name']}: succeeded -> {r.output} "
              f"(final loss {r.summary.get('final_loss')}, {r.summary.get('tokens_per_s')} tokens/s)")
    return 0
