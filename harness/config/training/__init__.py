"""The training config: one TOML file per run or sweep of runs, read by the project's one loader.

    name = "default"                  # empty: the file's stem
    model = "smollm2-135m-instruct"   # the default, an HF id, a folder, a .gguf (resolve_model)
    output = "adapters/default"       # the adapter folder (a sweep's root folder); empty: adapters/<name>
    seed = 0
    [data]  ...  [lora]  ...  [train]  ...  [hardware]  ...  [guard]  ...   (schema.py)

    [checkpoints]                     # optional: adapters saved part-way, published with the run
    at = [0.25, 0.5, 1.0]             # fractions of the planned optimizer steps; sorted, in (0, 1]

    [sweep]                           # optional: one run per combination of the lists
    learning_rate = [2e-4, 2e-2]      # a dotted key ("lora.r") or a bare one that only one table has
    "lora.r" = [8, 16]

Loaded into frozen pydantic models by ``harness.configfile``: every problem is reported at
once, naming the file and the dotted key (``train.learnig_rate: unknown key; did you mean
'learning_rate'?``). Defaults live in the models of ``schema`` and nowhere else.

Overrides (command line, ``train_from_config(**overrides)``) and sweep keys are the same keys:
a dotted path (``lora.r``) or a bare field name when only one table has it (``learning_rate``
is ``train.learning_rate``). A sweep point trains into ``<output>/<key>=<value>[,...]``.

The package, one job a module: ``schema`` (the tables and their defaults), ``sweep`` (keys,
overrides, a ``[sweep]``'s points, the config's fingerprint) and ``runs`` (where a run's adapters
land, the adapters a config plans, what a run left behind). Import from here.
"""

from harness.config.training.runs import (
    PlannedAdapter,
    checkpoint_dir,
    checkpoint_step,
    failed_dir,
    run_status,
    short_name,
    short_number,
    training_plan,
)
from harness.config.training.schema import (
    CHECKPOINTS_DIR,
    KIND,
    CheckpointSettings,
    DataSettings,
    GuardSettings,
    HardwareSettings,
    LoraSettings,
    TrainingConfig,
    TrainSettings,
)
from harness.config.training.sweep import (
    SweepPoint,
    config_fingerprint,
    load_config,
    load_sweep,
    parse_override,
    resolve_key,
)
from harness.configfile import ConfigError

__all__ = [
    "CHECKPOINTS_DIR",
    "KIND",
    "ConfigError",
    "TrainingConfig",
    "DataSettings",
    "LoraSettings",
    "TrainSettings",
    "HardwareSettings",
    "GuardSettings",
    "CheckpointSettings",
    "SweepPoint",
    "PlannedAdapter",
    "load_sweep",
    "load_config",
    "resolve_key",
    "parse_override",
    "config_fingerprint",
    "training_plan",
    "run_status",
    "checkpoint_dir",
    "checkpoint_step",
    "failed_dir",
    "short_name",
    "short_number",
]
