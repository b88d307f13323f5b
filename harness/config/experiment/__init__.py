"""The experiment config: one TOML file declares the variants, the tasks and their sizes.

    [experiment]                      # name, seed, baseline, gates, cache_dir, report_dir, tasks
    name = "default"
    tasks = ["spider", "mmlu"]        # which registered tasks run (harness/tasks/__init__.py)

    [spider]                          # one table per task: its settings (harness/tasks/<task>.py)
    limit = 50

    [[variants]]                      # the model variants under test
    name = "ft-3shot"
    model = "smollm2-135m-instruct"   # the default, an HF id, a local folder or a .gguf file
    revision = ""                     # a hub model's branch, tag or commit (recorded as the commit)
    load = "fp32"                     # fp32, bf16, int8, nf4, or auto (bf16 on a CUDA GPU that has it)
    adapter = "adapters/default"      # a PEFT adapter: a folder or a hub id (optional)
    adapter_revision = ""             # a hub adapter's branch, tag or commit
    train_config = "training/configs/default.toml"   # trains the adapter when it is absent
    spider = {shots = 3}              # the variant's own options per task
    backend = "hf"                    # what computes its answers (harness.models.backends)
    trust_remote_code = false         # run the model repository's own code (off unless asked)
    attn_implementation = ""          # "sdpa", "eager", "flash_attention_2", ...; empty: transformers'
    device_map = ""                   # "auto": spread a model larger than one GPU; empty: one device

Loaded into frozen pydantic models by the one config loader (harness/configfile.py): every
problem is reported at once, naming the file and the dotted key, with a did-you-mean. The models
are built from the task registry, so a new task brings its table and variant options with it.
``harness schema`` prints this schema as JSON Schema (generated, not kept in the repository).

The package, one job a module: ``schema`` (the models and the JSON Schema), ``load`` (the file,
its overrides and sweeps) and ``checks`` (data and adapters on this machine). Import from here.
"""

from harness.config.experiment.checks import check_adapters, check_data, model_note, required_data
from harness.config.experiment.load import Overrides, load_experiment
from harness.config.experiment.schema import (
    ExperimentConfig,
    Origin,
    SweepConfig,
    VariantConfig,
    json_schema,
    marker_name,
)
from harness.configfile import ConfigError

__all__ = [
    "ConfigError",
    "ExperimentConfig",
    "VariantConfig",
    "SweepConfig",
    "Origin",
    "Overrides",
    "load_experiment",
    "json_schema",
    "marker_name",
    "required_data",
    "check_data",
    "check_adapters",
    "model_note",
]
