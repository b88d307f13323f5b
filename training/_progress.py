"""A progress bar with the loss and tokens/s, the loss curve the summary keeps, the time
budget that stops a run before it overruns, and the checkpoints saved part-way.

:class:`ProgressRecorder` replaces the trainer's own progress bar and log printer (the recipe
passes ``disable_tqdm=True`` and removes ``PrinterCallback``), so one line shows where a run is.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tqdm.auto import tqdm
from transformers import TrainerCallback

from harness.config.training import checkpoint_step
from training._distributed import any_rank


class ProgressRecorder(TrainerCallback):
    """Counts tokens and time, keeps one row per log, and draws the bar.

    ``curve``: ``{"step", "loss", "grad_norm", "learning_rate", "tokens", "elapsed_s"}`` per
    log; ``tokens`` are the non-padding input tokens seen so far (prompt and completion).
    """

    def __init__(self, *, desc: str = "training"):
        self.desc = desc
        self.curve: list[dict] = []
        self.started: float | None = None
        self.ended: float | None = None
        self.cpu_started: float | None = None
        # CPU time of this process while training, all threads: steadier than wall time on a shared machine
        self.cpu_seconds = 0.0
        self.tokens = 0
        self.steps = 0
        self.max_steps: int | None = None
        self._bar = None

    @property
    def train_seconds(self) -> float:
        if self.started is None:
            return 0.0
        return (self.ended or time.perf_counter()) - self.started

    @property
    def tokens_per_s(self) -> float:
        s = self.train_seconds
        return self.tokens / s if s > 0 else 0.0

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = time.perf_counter()
        self.cpu_started = time.process_time()
        self.max_steps = state.max_steps
        interactive = sys.stderr.isatty()
        self._bar = tqdm(
            total=state.max_steps,
            desc=self.desc,
            unit="step",
            dynamic_ncols=True,
            ascii=not interactive,  # a log keeps plain characters, as harness/progress.py's bars
            mininterval=0.5 if interactive else 10.0,
            disable=not state.is_world_process_zero,  # one bar for a multi-process run
        )
        return control

    def on_step_end(self, args, state, control, **kwargs):
        self.tokens = int(state.num_input_tokens_seen)
        self.steps = state.global_step
        if self._bar is not None:
            self._bar.update(state.global_step - self._bar.n)
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or "loss" not in logs:
            return control
        self.tokens = int(state.num_input_tokens_seen)
        row = {
            "step": state.global_step,
            "loss": _number(logs["loss"]),
            "grad_norm": _number(logs.get("grad_norm")),
            "learning_rate": _number(logs.get("learning_rate")),
            "tokens": self.tokens,
            "elapsed_s": round(self.train_seconds, 2),
        }
        self.curve.append(row)
        if self._bar is not None:
            self._bar.set_postfix(loss=f"{logs['loss']:.4f}", tok_s=f"{self.tokens_per_s:.0f}", refresh=False)
        return control

    def on_train_end(self, args, state, control, **kwargs):
        self.tokens = int(state.num_input_tokens_seen)
        self.steps = state.global_step
        self.close()
        return control

    def close(self) -> None:
        """Stop the clock and the bar (also after an exception, when on_train_end never comes)."""
        if self.ended is None and self.started is not None and self.cpu_started is not None:
            self.ended = time.perf_counter()
            self.cpu_seconds = time.process_time() - self.cpu_started
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _number(value):
    """A JSON-safe float: NaN and inf become strings ("nan", "inf"), so the summary stays valid JSON."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else str(value)


class TimeBudget(TrainerCallback):
    """A safety stop: ends training early enough for the whole run to finish by ``deadline``
    (a ``time.perf_counter()`` value): after each step it stops when one more step, as long as
    the longest so far, would pass the deadline (on a shared CPU one step can take twice the
    mean, so the mean would overrun).

    A run stopped this way still succeeds (its adapter is usable), but ``stopped_at`` and the
    summary (``cut_short``, a warning) say how far it got, so a short run is never mistaken
    for a full one.
    """

    def __init__(self, deadline: float):
        self.deadline = deadline
        self.stopped_at: int | None = None
        self.step_s: float = 0.0  # the longest step so far
        self._last: float | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self._last = time.perf_counter()
        return control

    def on_step_end(self, args, state, control, **kwargs):
        if self._last is None:
            return control
        now = time.perf_counter()
        self.step_s = max(self.step_s, now - self._last)
        self._last = now
        late = state.global_step < state.max_steps and now + self.step_s > self.deadline
        # Every rank votes at every step: the ranks stop together or not at all.
        if any_rank(late, args.device):
            self.stopped_at = state.global_step
            control.should_training_stop = True
        return control


class CheckpointSaver(TrainerCallback):
    """Saves the adapter at fractions of the planned optimizer steps (step = ceil(fraction x
    planned), from ``harness.config.training.checkpoint_step``), through ``save(folder)``, into
    ``folder_of(fraction)``: folders inside the run's staging folder, published with the run.

    Fraction 1 is left to the recipe, which saves the final adapter at the end anyway.
    ``reached`` holds ``{"fraction", "step", "tokens_seen", "elapsed_s", "folder"}`` per saved
    checkpoint, in order. ``save`` runs on every rank (an FSDP adapter is gathered by all).
    """

    def __init__(self, fractions, folder_of: Callable[[float], Path], save: Callable[[Path], None]):
        self.fractions = tuple(f for f in fractions if f < 1.0)
        self.folder_of = folder_of
        self.save = save
        self.steps: dict[float, int] = {}
        self.reached: list[dict] = []
        self._started = 0.0  # perf_counter() when training begins

    def on_train_begin(self, args, state, control, **kwargs):
        self.steps = {f: checkpoint_step(f, state.max_steps) for f in self.fractions}
        self._started = time.perf_counter()
        return control

    def on_step_end(self, args, state, control, **kwargs):
        # After the optimizer step and before this step's log: the weights are those of step
        # ``global_step``; the loss logged for it lands in the curve right after.
        done = {r["fraction"] for r in self.reached}
        for fraction, step in self.steps.items():
            if step == state.global_step and fraction not in done:
                folder = self.folder_of(fraction)
                self.save(folder)
                self.reached.append(
                    {
                        "fraction": fraction,
                        "step": step,
                        "tokens_seen": int(state.num_input_tokens_seen),
                        "elapsed_s": round(time.perf_counter() - self._started, 2),
                        "folder": folder,
                    }
                )
        return control
