"""A run's ``training_summary.json``: what it was asked, what it ran on, how training went, and
how it ended, and the summaries of the checkpoints it saved part-way.

:class:`RunSummary` is filled in as the run goes (setup, training, then publication or failure)
and written as JSON by :meth:`RunSummary.to_dict`: a key appears once the run has reached the
step that sets it, so a run that failed while loading its model has no ``data`` or
``loss_curve``, and the keys keep the order in which a run reaches them.
"""

from __future__ import annotations

import math
import os
import platform
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.config.training import TrainingConfig, checkpoint_dir, checkpoint_step, config_fingerprint
from harness.files import file_sha256
from harness.records.manifest import library_versions
from training._output import SUMMARY_NAME

if TYPE_CHECKING:
    from training._guard import DivergenceGuard
    from training._progress import CheckpointSaver, ProgressRecorder

_LIBRARIES = (
    "torch",
    "transformers",
    "peft",
    "trl",
    "accelerate",
    "datasets",
    "bitsandbytes",
    "tokenizers",
    "safetensors",
)
# Setup keys a checkpoint's summary shares with its run's.
_SETUP_KEYS = (
    "config",
    "config_file",
    "config_fingerprint",
    "sweep_point",
    "seed",
    "started_at",
    "device",
    "base_model",
    "quantization",
    "data",
    "distributed",
    "libraries",
    "python",
)


@dataclass
class TrainingRecord:
    """How far training went and how the loss moved (the summary's keys, in this order)."""

    load_average_at_end: list[float] | None
    steps_planned: int | None
    steps_done: int
    fraction_done: float
    epochs_done: float
    tokens_seen: int
    train_time_s: float
    train_cpu_s: float
    tokens_per_s: float
    first_loss: Any  # a logged loss: a float, or a JSON-safe stand-in for NaN or inf
    final_loss: Any
    min_loss: float | None
    loss_curve: list[dict]

    @classmethod
    def of(cls, progress: ProgressRecorder, cfg: TrainingConfig) -> TrainingRecord:
        steps = progress.steps
        fraction = steps / progress.max_steps if progress.max_steps else 0.0
        return cls(
            load_average_at_end=load_average(),
            steps_planned=progress.max_steps,
            steps_done=steps,
            fraction_done=round(fraction, 6),
            epochs_done=round(fraction * cfg.planned_epochs, 6),  # as training_plan's names count epochs
            tokens_seen=progress.tokens,
            train_time_s=round(progress.train_seconds, 2),
            train_cpu_s=round(progress.cpu_seconds, 2),
            tokens_per_s=round(progress.tokens_per_s, 2),
            **loss_facts(progress.curve),
            loss_curve=progress.curve,
        )


@dataclass
class RunSummary:
    """One run's summary. The fields down to ``python`` are set when the run starts and always
    written; each later one is written once set (not None)."""

    config: dict
    config_fingerprint: str
    config_file: str
    sweep_point: dict | None
    seed: int
    output: str
    status: str = "failed"
    reason: str | None = "did not finish"
    cut_short: bool = False
    warnings: list[str] = field(default_factory=list)
    started_at: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    # tokens/s on a shared CPU means little without it
    load_average_at_start: list[float] | None = field(default_factory=lambda: load_average())
    libraries: dict[str, str | None] = field(default_factory=lambda: library_versions(_LIBRARIES))
    python: str = field(default_factory=platform.python_version)
    # setup
    device: str | None = None
    base_model: dict | None = None
    quantization: dict | None = None
    data: dict | None = None
    distributed: dict | None = None
    # training
    training: TrainingRecord | None = None
    examples_seen: int | None = None
    data_passes: float | None = None  # examples seen / examples: the passes made, for max_steps runs
    diverged_at_step: int | None = None
    # the end
    adapter_sha256: str | None = None
    wall_time_s: float | None = None
    checkpoints: list[dict] | None = None
    checkpoints_discarded: list[float] | None = None

    # The JSON's key order: as a run reaches them (the status first, then the run's identity).
    _ORDER = (
        "status",
        "reason",
        "cut_short",
        "warnings",
        "config",
        "config_fingerprint",
        "config_file",
        "sweep_point",
        "seed",
        "output",
        "started_at",
        "load_average_at_start",
        "libraries",
        "python",
    )

    @classmethod
    def start(cls, cfg: TrainingConfig, sweep_values: dict | None) -> RunSummary:
        return cls(
            config=cfg.to_dict(),
            config_fingerprint=config_fingerprint(cfg),
            config_file=cfg.source,
            sweep_point=sweep_values or None,
            seed=cfg.seed,
            output=cfg.output,
        )

    def to_dict(self) -> dict:
        out = {key: getattr(self, key) for key in self._ORDER}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in out or value is None:
                continue
            if isinstance(value, TrainingRecord):
                out.update((g.name, getattr(value, g.name)) for g in fields(value))
            else:
                out[f.name] = value
        return out

    def warn(self, warning: str) -> None:
        self.warnings.append(warning)

    def end(self, status: str, reason: str | None, wall_time_s: float) -> None:
        self.status, self.reason, self.wall_time_s = status, reason, wall_time_s

    def record_training(
        self,
        progress: ProgressRecorder,
        guard: DivergenceGuard | None,
        n_examples: int | None,
        cfg: TrainingConfig,
    ) -> None:
        """How training went, from the progress recorder and the guard; ``n_examples`` (None when
        the run failed before it knew them) gives the examples and passes seen."""
        self.training = TrainingRecord.of(progress, cfg)
        if n_examples is not None:
            self.examples_seen = examples_seen(
                progress.steps,
                n_examples,
                cfg.train.per_device_batch_size,
                cfg.train.gradient_accumulation_steps,
            )
            self.data_passes = round(self.examples_seen / n_examples, 6)
        if guard is not None and guard.reason is not None:
            self.diverged_at_step = guard.step

    @property
    def steps_planned(self) -> int | None:
        return self.training.steps_planned if self.training is not None else None

    @property
    def steps_done(self) -> int | None:
        return self.training.steps_done if self.training is not None else None


def examples_seen(steps: int, n: int, batch: int, accumulation: int) -> int:
    """Examples consumed by ``steps`` optimizer steps over ``n`` examples (no drop_last)."""
    per_epoch = max(1, math.ceil(math.ceil(n / batch) / accumulation))
    full, rest = divmod(steps, per_epoch)
    return full * n + min(rest * batch * accumulation, n)


def loss_warnings(curve: list[dict], cfg: TrainingConfig) -> list[str]:
    """What a reader of a succeeded run should not miss: it ended worse than it started, or it
    spiked past the divergence bound for fewer logs than ``guard.patience``."""
    losses = [r["loss"] for r in curve if isinstance(r["loss"], float)]
    if len(losses) < 2:
        return []
    warnings = []
    first, last, peak = losses[0], losses[-1], max(losses)
    if last > first:
        warnings.append(
            f"the last logged loss ({last:.4g}) is above the first ({first:.4g}): "
            "the run left the model worse on its own training batches"
        )
    if peak > cfg.guard.loss_factor * first:
        warnings.append(
            f"the loss peaked at {peak:.4g}, above the divergence bound "
            f"{cfg.guard.loss_factor:g} x {first:.4g}, "
            f"for fewer than guard.patience = {cfg.guard.patience} logs in a row"
        )
    return warnings


def checkpoint_list(
    cfg: TrainingConfig,
    output: Path,
    saver: CheckpointSaver | None,
    steps_planned: int | None,
    steps_done: int | None,
    *,
    published: bool,
) -> list[dict]:
    """The summary's ``checkpoints``: per fraction of ``[checkpoints] at``, its step, folder and
    whether it was saved (published with this run); fraction 1 is the final adapter at ``output``."""
    reached = {r["fraction"] for r in (saver.reached if saver is not None else [])}
    rows = []
    for fraction in cfg.checkpoint_fractions:
        step = checkpoint_step(fraction, steps_planned) if steps_planned else None
        if fraction >= 1.0:
            saved = published and step is not None and (steps_done or 0) >= step
        else:
            saved = published and fraction in reached
        rows.append(
            {
                "fraction": fraction,
                "step": step,
                "path": str(checkpoint_dir(output, fraction)),
                "saved": saved,
            }
        )
    return rows


def loss_facts(curve: list[dict]) -> dict[str, Any]:
    """The first, final and least finite loss of a loss curve (None where it has none)."""
    finite = [r["loss"] for r in curve if isinstance(r["loss"], float)]
    return {
        "first_loss": curve[0]["loss"] if curve else None,
        "final_loss": curve[-1]["loss"] if curve else None,
        "min_loss": min(finite) if finite else None,
    }


def checkpoint_summary(
    run: dict, reached: dict, progress: ProgressRecorder, cfg: TrainingConfig, output: Path
) -> dict:
    """The ``training_summary.json`` of one checkpoint: the run's setup (``run``, the run's
    summary as written), and its training up to the checkpoint's step."""
    step, fraction = reached["step"], reached["fraction"]
    curve = [r for r in progress.curve if r["step"] <= step]
    n = run["data"]["examples"]
    examples = examples_seen(step, n, cfg.train.per_device_batch_size, cfg.train.gradient_accumulation_steps)
    return {
        "status": "succeeded",
        "reason": None,
        "cut_short": False,
        "warnings": [],
        "checkpoint": {
            "fraction": fraction,
            "step": step,
            "run_output": str(output),
            "run_summary": str(output / SUMMARY_NAME),
        },
        "output": str(checkpoint_dir(output, fraction)),
        **{k: run[k] for k in _SETUP_KEYS if k in run},
        "fraction_done": fraction,
        "epochs_done": float(f"{fraction * cfg.planned_epochs:.12g}"),
        "steps_done": step,
        "steps_planned": run["steps_planned"],
        "examples_seen": examples,
        "data_passes": round(examples / n, 6),
        "tokens_seen": reached["tokens_seen"],
        "train_time_s": reached["elapsed_s"],
        **loss_facts(curve),
        "loss_curve": curve,
        "adapter_sha256": file_sha256(reached["folder"] / "adapter_model.safetensors"),
    }


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None
