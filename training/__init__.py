"""QLoRA adapters on the Spider train split: TRL SFTTrainer + PEFT LoRA + bitsandbytes 4-bit.

One config file (``training/configs/*.toml``) is one run, or a sweep of runs, read by
``harness.training_config`` (the project's one config loader; the harness plans adapters from
the same file without importing this package). Examples are formatted by ``harness.tasks.spider``
exactly as the benchmarks prompt, and every target ends with the end-of-sequence token. A run that
diverges or fails never replaces a good adapter, and publishes none of its checkpoints.

Example::

    from training import train_from_config
    results = train_from_config("training/configs/default.toml", output="adapters/default")
    results[0].summary["tokens_per_s"]

The names below are imported on first use, so that reading a config (or ``--help``) does not
pay for importing transformers, peft and bitsandbytes (about 10 s on a small CPU).
"""

from __future__ import annotations

import importlib

import harness  # noqa: F401  (installs harness/noise.py's filter before anything imports bitsandbytes)

_EXPORTS = {
    "main": "training._cli",
    "train_from_config": "training._cli",
    "build_parser": "training._cli",
    "TrainingFailed": "training._cli",
    "ConfigError": "harness.training_config",
    "TrainingConfig": "harness.training_config",
    "SweepPoint": "harness.training_config",
    "PlannedAdapter": "harness.training_config",
    "load_config": "harness.training_config",
    "load_sweep": "harness.training_config",
    "parse_override": "harness.training_config",
    "resolve_key": "harness.training_config",
    "config_fingerprint": "harness.training_config",
    "training_plan": "harness.training_config",
    "run_status": "harness.training_config",
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
