"""Where a run's adapters land and what a run left behind, so the harness can plan and check
adapters without importing the ``training`` package (which it never does):

* the final adapter: ``<run output>/`` (adapter_config.json, adapter_model.safetensors,
  training_summary.json), published by a rename when the whole run succeeded;
* a checkpoint at fraction f < 1: ``<run output>/checkpoints/<format(f, "g")>/``, the same
  three files, published inside the run's folder, so it exists only when the run succeeded
  (fraction 1 is the final adapter itself: no ``checkpoints/1`` copy is written);
* a run that failed or diverged: ``<run output>.failed/training_summary.json`` only.

:func:`training_plan` lists those adapters for a config and :func:`run_status` reads what a run
left behind.
"""

from __future__ import annotations

import decimal
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.config.training.schema import CHECKPOINTS_DIR
from harness.config.training.sweep import config_fingerprint, format_value, load_sweep
from harness.models.adapters import SUMMARY_NAME

# --- where a run's adapters are ------------------------------------------------------------------


def failed_dir(output: str | Path) -> Path:
    """Where a run that failed or diverged leaves its summary: ``<output>.failed/``."""
    output = Path(output)
    return output.with_name(output.name + ".failed")


def checkpoint_dir(output: str | Path, fraction: float) -> Path:
    """The adapter folder of fraction ``fraction`` of a run: ``<output>`` itself for 1, else
    ``<output>/checkpoints/<format(fraction, "g")>``."""
    if fraction >= 1.0:
        return Path(output)
    return Path(output) / CHECKPOINTS_DIR / format(fraction, "g")


def checkpoint_step(fraction: float, planned_steps: int) -> int:
    """The optimizer step at which the checkpoint of ``fraction`` is saved: ceil(fraction x
    planned), at least 1 (a hair below the product first, so 0.3 x 10 is step 3, not 4)."""
    return max(1, math.ceil(fraction * planned_steps - 1e-9))


_ALIASES = {
    "train.learning_rate": "lr",
    "lora.r": "r",
    "lora.lora_alpha": "alpha",
    "train.epochs": "ep",
    "data.max_examples": "n",
}


def short_number(value) -> str:
    """A number as short as it reads: ints as they are; floats as ``format(v, "g")`` (``repr``
    where "g" would round), or a plain exponent when that is shorter, or as short and below 1
    (2e-4 and 2e-2 rather than 0.0002 and 0.02; 0.5, 1 and 16 stay as they are)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return format_value(value)
    if isinstance(value, int):
        return str(value)
    plain = format(value, "g")
    if float(plain) != value:
        plain = repr(value)
    if not math.isfinite(value) or value == 0:
        return plain
    sign, digits, exponent = decimal.Decimal(repr(value)).normalize().as_tuple()
    assert isinstance(exponent, int)  # a finite value's exponent ('n', 'N', 'F' are NaN and inf)
    text = "".join(map(str, digits))
    mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
    compact = ("-" if sign else "") + f"{mantissa}e{exponent + len(text) - 1}"
    if len(compact) < len(plain) or (len(compact) == len(plain) and abs(value) < 1):
        return compact
    return plain


def short_name(values, epochs_at: float) -> str:
    """A variant name for a planned adapter: ``lr=2e-4,r=8@0.5ep``; ``@1ep`` without a sweep."""
    parts = [f"{_ALIASES.get(k, k.rsplit('.', 1)[-1])}={short_number(v)}" for k, v in values]
    return ",".join(parts) + f"@{short_number(float(epochs_at))}ep"


@dataclass(frozen=True)
class PlannedAdapter:
    """One adapter a training config produces: a checkpoint of a sweep point, or its final adapter."""

    point_label: str  # the sweep point's label ("learning_rate=0.0002"); "" without a sweep
    values: tuple[tuple[str, Any], ...]  # the swept (dotted key, value) pairs of the point
    fraction: float  # of the planned optimizer steps; 1.0 for the final adapter
    epochs_at: float  # fraction x the run's planned epochs (TrainingConfig.planned_epochs)
    adapter_dir: str  # <run_output> for the final adapter, <run_output>/checkpoints/<fraction> otherwise
    run_output: str  # the run's output folder
    failed_summary: str  # <run_output>.failed/training_summary.json
    short_name: str  # a variant name: "lr=2e-4@0.5ep", "@1ep"
    config_file: str = ""  # the training config it comes from
    config_fingerprint: str = ""  # compare with run_status(run_output)["config_fingerprint"]
    model: str = ""  # the base model the point trains (a sweep may vary it)

    @property
    def is_final(self) -> bool:
        return self.fraction >= 1.0


def training_plan(path: str | Path, **overrides) -> list[PlannedAdapter]:
    """Every adapter the config at ``path`` produces: for each sweep point, one per checkpoint
    fraction (fraction 1 is the final adapter at the run's output), and the final adapter
    when 1.0 is not among the fractions. Nothing is read but the config.

    Raises:
        ConfigError: the config is invalid.
    """
    plan = []
    for point in load_sweep(path, **overrides):
        cfg = point.config
        fractions = list(cfg.checkpoint_fractions)
        if 1.0 not in fractions:
            fractions.append(1.0)
        fingerprint = config_fingerprint(cfg)
        for fraction in fractions:
            epochs_at = float(
                f"{fraction * cfg.planned_epochs:.12g}"
            )  # 0.1 x 3 is 0.3, not 0.30000000000000004
            plan.append(
                PlannedAdapter(
                    point_label=point.label,
                    values=point.values,
                    fraction=fraction,
                    epochs_at=epochs_at,
                    adapter_dir=str(checkpoint_dir(cfg.output, fraction)),
                    run_output=cfg.output,
                    failed_summary=str(failed_dir(cfg.output) / SUMMARY_NAME),
                    short_name=short_name(point.values, epochs_at),
                    config_file=cfg.source,
                    config_fingerprint=fingerprint,
                    model=cfg.model,
                )
            )
    return plan


_STATUS_KEYS = (
    "status",
    "reason",
    "steps_done",
    "steps_planned",
    "cut_short",
    "final_loss",
    "config_fingerprint",
)


def _status_of(path: Path, published: bool) -> dict | None:
    if not path.is_file():
        return None
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(summary, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as e:
        return {
            **dict.fromkeys(_STATUS_KEYS),
            "status": "failed",
            "reason": f"unreadable summary ({e})",
            "published": published,
            "summary": str(path),
            "checkpoints": [],
            "warnings": [],
        }
    out = {k: summary.get(k) for k in _STATUS_KEYS}
    out["cut_short"] = bool(summary.get("cut_short"))
    saved = [
        c["fraction"] for c in summary.get("checkpoints") or [] if isinstance(c, dict) and c.get("saved")
    ]
    out.update(
        published=published,
        summary=str(path),
        checkpoints=saved if published else [],
        checkpoints_discarded=summary.get("checkpoints_discarded") or [],
        warnings=summary.get("warnings") or [],
    )
    return out


def run_status(run_output: str | Path) -> dict | None:
    """What the run at ``run_output`` left behind; None when it never ran.

    From its published summary (``<run_output>/training_summary.json``) when there is one,
    else from its failure summary (``<run_output>.failed/training_summary.json``). Keys:
    ``status`` ("succeeded", "diverged", "failed"), ``reason``, ``steps_done``,
    ``steps_planned``, ``cut_short``, ``final_loss``, ``config_fingerprint`` (None in a summary
    older than fingerprints), ``published`` (an adapter is at ``run_output``), ``summary`` (the
    path read), ``checkpoints`` (the fractions of ``[checkpoints] at`` published at their planned
    step: a run cut short by its time budget lists only those it reached, and its final adapter
    at ``run_output`` is then not fraction 1),
    ``checkpoints_discarded``, ``warnings``; and ``failure``, the same keys for a later attempt
    that failed while an earlier adapter stayed published.
    """
    output = Path(run_output)
    published = _status_of(output / SUMMARY_NAME, True)
    failure = _status_of(failed_dir(output) / SUMMARY_NAME, False)
    if published is None:
        return failure
    if failure is not None:
        published["failure"] = failure
    return published
