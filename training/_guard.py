"""The divergence guard: stop a run whose loss turns NaN/inf or stays above a bound.

The verdict is a pure function of the logged losses (:func:`divergence`), tested on its own;
:class:`DivergenceGuard` is the thin ``TrainerCallback`` that feeds it and stops the trainer.
The recipe reads ``guard.reason`` after training and marks the run "diverged" when it is set.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from transformers import TrainerCallback

from training._distributed import any_rank


def divergence(
    losses: Sequence[float],
    *,
    factor: float,
    patience: int,
    reference_logs: int = 1,
    grad_norm: float | None = None,
) -> str | None:
    """Why the run whose logged losses are ``losses`` (oldest first) has diverged, or None.

    A non-finite last loss or gradient norm diverges at once. Otherwise the run diverges when
    the last ``patience`` losses all exceed ``factor`` x the reference, the mean of the first
    ``reference_logs`` losses (1: the loss of the untouched model; more: steadier on tiny
    batches, but a run that blows up inside the window raises its own bound); only losses
    after the reference window count.
    """
    if not losses:
        return None
    last = losses[-1]
    if not math.isfinite(last):
        return f"loss became {last} at log {len(losses)}"
    if grad_norm is not None and not math.isfinite(grad_norm):
        return f"gradient norm became {grad_norm} at log {len(losses)} (loss {last:.4g})"
    if len(losses) < reference_logs + patience:
        return None
    reference = sum(losses[:reference_logs]) / reference_logs
    bound = factor * reference
    recent = losses[-patience:]
    if all(x > bound for x in recent):
        start = (
            "the first logged loss"
            if reference_logs == 1
            else f"the mean of the first {reference_logs} logged losses"
        )
        return (
            f"loss stayed above {factor:g} x {start} ({reference:.4g}) = {bound:.4g} "
            f"for {patience} logged steps: {', '.join(f'{x:.4g}' for x in recent)}"
        )
    return None


class DivergenceGuard(TrainerCallback):
    """Stops training at the first log that :func:`divergence` condemns on any rank; ``reason`` says why."""

    def __init__(self, *, factor: float, patience: int, reference_logs: int = 1):
        self.factor = factor
        self.patience = patience
        self.reference_logs = reference_logs
        self.losses: list[float] = []
        self.reason: str | None = None
        self.step: int | None = None

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or "loss" not in logs or self.reason is not None:
            return control
        self.losses.append(float(logs["loss"]))
        grad_norm = logs.get("grad_norm")
        verdict = divergence(
            self.losses,
            factor=self.factor,
            patience=self.patience,
            reference_logs=self.reference_logs,
            grad_norm=None if grad_norm is None else float(grad_norm),
        )
        # Under DDP every rank logs the same all-gathered loss, so the verdicts agree; the vote
        # makes sure of it: a rank that stopped alone would leave the others waiting forever.
        if any_rank(verdict is not None, args.device) and verdict is None:
            verdict = (
                f"another training process found the run diverged at log {len(self.losses)} "
                f"(loss here {self.losses[-1]:.4g})"
            )
        self.reason = verdict
        if self.reason is not None:
            self.step = state.global_step
            control.should_training_stop = True
        return control
