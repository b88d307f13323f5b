"""QLoRA adapters on the Spider train split: TRL SFTTrainer + PEFT LoRA + bitsandbytes 4-bit.

One config file (``training/configs/*.toml``) is one run, or a sweep of runs, read by
``harness.config.training`` (the project's one config loader; the harness plans adapters from
the same file without importing this package). Examples are formatted by ``harness.tasks.spider``
exactly as the benchmarks prompt, and every target ends with the end-of-sequence token. A run that
diverges or fails never replaces a good adapter, and publishes none of its checkpoints.

Example::

    from training import train_from_config
    results = train_from_config("training/configs/default.toml", output="adapters/default")
    results[0].summary["tokens_per_s"]

The names below are imported on first use, so that reading a config (or ``--help``) does not
pay for importing transformers, peft and bitsandbytes (slow on a small CPU).
"""

from __future__ import annotations

import importlib

import harness  # noqa: F401  (installs harness/models/noise.py's filter before anything imports bitsandbytes)

_EXPORTS = {
    "main": "training._cli",
    "train_from_config": "training._cli",
    "build_parser": "training._cli",
    "TrainingFailed": "training._cli",
    "ConfigError": "harness.config.training",
    "TrainingConfig": "harness.config.training",
    "SweepPoint": "harness.config.training",
    "PlannedAdapter": "harness.config.training",
    "load_config": "harness.config.training",
    "load_sweep": "harness.config.training",
    "parse_override": "harness.config.training",
    "resolve_key": "harness.config.training",
    "config_fingerprint": "harness.config.training",
    "training_plan": "harness.config.training",
    "run_status": "harness.config.training",
    "Examples": "training._data",
    "build_examples": "training._data",
    "DivergenceGuard": "training._guard",
    "divergence": "training._guard",
    "SUMMARY_NAME": "training._output",
    "OutputError": "training._output",
    "STATUSES": "training._recipe",
    "TrainingResult": "training._recipe",
    "run": "training._recipe",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'training' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
