"""``python -m training --config FILE [--output DIR] [--max-steps N] [--missing-only] [--dry-run]
[key=value ...]``.

Exit status: 0 when every run succeeded, 1 when any run failed or diverged (its summary says
why, and an earlier adapter at its output is left as it was), 2 for a bad config or command line.

``--missing-only`` trains only what is missing: a run whose output already holds a succeeded
run of the same config (``config_fingerprint`` in its summary) is skipped as succeeded, and one
whose last attempt with the same config diverged is skipped as diverged (it would diverge
again; exit status 1 all the same). A run whose config changed is trained again.

Several processes: ``torchrun --nproc_per_node N -m training --config FILE`` or
``accelerate launch --num_processes N -m training --config FILE`` (docs/multi_gpu.md); rank 0
logs, prints and writes, the other ranks log only warnings and errors.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.config.training import (
    ConfigError,
    SweepPoint,
    config_fingerprint,
    load_sweep,
    parse_override,
    run_status,
)
from harness.engine.sharding import keep_multicast_off
from harness.files import write_json
from harness.tasks.spider_data import SpiderDataError, find_spider_dir
from training._distributed import barrier_and_close, split_accumulation, world_from_env
from training._output import SUMMARY_NAME, OutputError
from training._recipe import TrainingResult, format_loss, run

log = logging.getLogger("training")


class TrainingFailed(RuntimeError):
    """At least one run of a config failed or diverged; ``results`` holds every run's result."""

    def __init__(self, results: list[TrainingResult]):
        self.results = results
        bad = [r for r in results if not r.ok]
        lines = [
            f"{r.summary['config']['name']}: {r.status} ({r.reason}); "
            + (
                "skipped: its last attempt with this config did the same, "
                "so training it again would too; change the config to retry; "
                if r.skipped
                else ""
            )
            + f"summary in {r.summary_path}"
            for r in bad
        ]
        super().__init__(
            f"{len(bad)} of {len(results)} training runs did not succeed:\n  " + "\n  ".join(lines)
        )


def train_from_config(
    path: str | Path, *, callbacks: Sequence = (), missing_only: bool = False, **overrides
) -> list[TrainingResult]:
    """Train every run a config file asks for (one, or one per sweep point).

    Args:
        path: a training config (TOML), e.g. ``training/configs/default.toml``.
        callbacks: extra ``TrainerCallback``s for every run.
        missing_only: skip a run already trained with the same config, and one whose last
            attempt with the same config diverged (see :func:`decide`); their results have
            ``skipped = True`` and the earlier run's status and summary.
        **overrides: config keys, dotted or bare (``output="adapters/x"``, ``max_steps=5``,
            ``learning_rate=2e-2``, ``**{"lora.r": 8}``).

    Returns:
        One result per run, all succeeded.

    Raises:
        ConfigError: the config or an override is invalid (nothing was trained).
        TrainingFailed: a run failed or diverged (or, with ``missing_only``, was skipped as
            diverged); every run was still attempted, and each failure's summary is in
            ``<its output>.failed/training_summary.json``.
    """
    return train_points(load_sweep(path, **overrides), callbacks=callbacks, missing_only=missing_only)


def train_points(
    points: Sequence[SweepPoint], *, callbacks: Sequence = (), missing_only: bool = False
) -> list[TrainingResult]:
    """Train the runs of a loaded config (:func:`train_from_config`, which says what is returned
    and raised, less the ConfigError: the config was read already)."""
    results = []
    for i, point in enumerate(points, 1):
        if missing_only:
            skipped = _skip(point)
            if skipped is not None:
                results.append(skipped)
                continue
        if len(points) > 1:
            log.info("sweep run %d of %d: %s -> %s", i, len(points), point.label, point.config.output)
        results.append(run(point.config, callbacks=callbacks, sweep_values=dict(point.values) or None))
    if points[0].values and world_from_env().is_main:
        _write_sweep_summary(list(points), results)
    if not all(r.ok for r in results):
        raise TrainingFailed(results)
    return results


def decide(point: SweepPoint) -> tuple[str, dict | None, str]:
    """What ``--missing-only`` does with a run, and why: ``("train", status, why)``,
    ``("succeeded", status, why)`` (its output holds a succeeded run of the same config),
    ``("diverged", status, why)`` (its last attempt with the same config diverged) or
    ``("foreign", None, why)`` (its output holds an adapter without a training summary: not
    this recipe's, so it is kept); ``status`` is :func:`run_status` of the attempt that decided
    it (None when the run never ran)."""
    fingerprint = config_fingerprint(point.config)
    output = point.config.output
    status = run_status(output)
    if status is None:
        if (Path(output) / "adapter_config.json").is_file():
            return (
                "foreign",
                None,
                (
                    f"keeping the adapter at {output}: it has no {SUMMARY_NAME}, "
                    "so this recipe did not train it and its config is unknown; "
                    "move it away to train this config there"
                ),
            )
        return "train", None, f"nothing trained at {output} yet"
    if (
        status["published"]
        and status["status"] == "succeeded"
        and status["config_fingerprint"] == fingerprint
    ):
        cut = " (cut short by its time budget)" if status["cut_short"] else ""
        return "succeeded", status, f"already trained with this config at {output}{cut}"
    last = status.get("failure") if status["published"] else status
    if last is not None and last["config_fingerprint"] == fingerprint:
        if last["status"] == "diverged":
            return (
                "diverged",
                last,
                (
                    f"its last attempt with this config diverged ({last['reason']}); training it again "
                    f"would diverge again; change the config to retry (summary in {last['summary']})"
                ),
            )
        return (
            "train",
            last,
            f"its last attempt with this config {last['status']} ({last['reason']}); trying again",
        )
    if status["config_fingerprint"] is None:
        return (
            "train",
            status,
            f"{status['summary']} records no config fingerprint (an older run); training again",
        )
    return "train", status, f"its config changed since the run at {output}; training again"


def _skip(point: SweepPoint) -> TrainingResult | None:
    """The result of a run ``--missing-only`` skips (logged with the reason), or None to train it."""
    action, status, why = decide(point)
    if action == "train":
        log.info("%s: %s", point.config.name, why)
        return None
    if action == "succeeded":
        log.info("%s: skipped, %s", point.config.name, why)
    else:
        log.warning("%s: skipped: %s", point.config.name, why)
    if status is None:  # an adapter from elsewhere
        summary = {
            "status": "succeeded",
            "reason": None,
            "note": why,
            "config": point.config.to_dict(),
            "final_loss": None,
        }
        return TrainingResult(
            "succeeded",
            Path(point.config.output),
            Path(point.config.output) / SUMMARY_NAME,
            summary,
            skipped=True,
        )
    path = Path(status["summary"])
    summary = json.loads(path.read_text(encoding="utf-8"))
    return TrainingResult(
        summary.get("status", action), Path(point.config.output), path, summary, skipped=True
    )


def _write_sweep_summary(points: list[SweepPoint], results: list[TrainingResult]) -> None:
    root = Path(points[0].config.output).parent
    write_json(
        root / "sweep_summary.json",
        {
            "config_file": points[0].config.source,
            "runs": [
                {
                    "label": p.label,
                    "values": dict(p.values),
                    "status": r.status,
                    "reason": r.reason,
                    "skipped": r.skipped,
                    "cut_short": bool(r.summary.get("cut_short")),
                    "output": str(r.output),
                    "summary": str(r.summary_path),
                    "final_loss": r.summary.get("final_loss"),
                }
                for p, r in zip(points, results)
            ],
        },
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training", description="Train QLoRA adapters on the Spider train split."
    )
    parser.add_argument(
        "--config", required=True, help="training config (TOML), e.g. training/configs/default.toml"
    )
    parser.add_argument(
        "--output", help="adapter folder (a sweep's root folder); overrides the config's output"
    )
    parser.add_argument(
        "--max-steps", type=int, help="stop after this many optimizer steps (train.max_steps)"
    )
    parser.add_argument(
        "--missing-only",
        action="store_true",
        help="skip runs already trained with the same config, and runs whose last attempt with it diverged",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="check the config and list the runs, train nothing"
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="config overrides, dotted or bare keys: learning_rate=2e-2 lora.r=8 data.max_examples=100",
    )
    return parser


def check_data(points: Sequence[SweepPoint]) -> None:
    """SpiderDataError (where it looked, and the command that fetches the data) when a run's
    Spider folder is missing: before any model is converted or loaded, and before any output
    folder is made."""
    world = world_from_env()
    for point in points:  # the config's own problems first: a batch the processes cannot share
        split_accumulation(
            point.config.train.per_device_batch_size,
            point.config.train.gradient_accumulation_steps,
            world.size,
        )
    for spider_dir in dict.fromkeys(p.config.data.spider_dir for p in points):
        find_spider_dir(spider_dir or None, option="data.spider_dir=PATH")


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
        print(
            f"training: interrupted ({e or 'Ctrl-C'}); "
            "the summary of the run in progress is in <output>.failed/",
            file=sys.stderr,
        )
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _main(args: argparse.Namespace) -> int:
    world = world_from_env()
    if not logging.getLogger().handlers and not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            logging.Formatter(
                f"training[rank {world.rank}]: %(message)s" if world.distributed else "training: %(message)s"
            )
        )
        log.addHandler(handler)
        log.setLevel(logging.INFO if world.is_main else logging.WARNING)
    try:
        overrides: dict[str, Any] = dict(parse_override(o) for o in args.overrides)
        if args.output is not None:
            overrides["output"] = args.output
        if args.max_steps is not None:
            overrides["max_steps"] = args.max_steps
        points = load_sweep(args.config, **overrides)  # once: the checks and the runs share it
        if args.dry_run:
            for point in points:
                action, _, why = decide(point) if args.missing_only else ("train", None, "")
                note = f" [skip: {why}]" if action != "train" else ""
                print(
                    f"{point.config.name}: output {point.config.output}"
                    + (f" ({point.label})" if point.values else "")
                    + note
                )
            return 0
        check_data(points)
        results = train_points(points, missing_only=args.missing_only)
        barrier_and_close()  # rank 0 may still be writing the adapter; then the process group ends
    except (ConfigError, OutputError, SpiderDataError) as e:
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
        s = r.summary
        done = "already trained with this config (skipped)" if r.skipped else "succeeded"
        cut = (
            f", cut short at step {s.get('steps_done')} of {s.get('steps_planned')} by the time budget"
            if s.get("cut_short")
            else ""
        )
        print(
            f"training: {s['config']['name']}: {done} -> {r.output} "
            f"(final loss {format_loss(s.get('final_loss'))}, {s.get('tokens_per_s') or 0:.0f} tokens/s{cut})"
        )
    return 0
