"""The training config's schema: frozen pydantic models of its tables, with their defaults.

Defaults live in these models and nowhere else; ``harness.config.training.sweep`` reads a file
into them, reporting every problem at once with the file and the dotted key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field, model_validator

from harness.configfile import Problems, Strict
from harness.models.loading import DEFAULT_MODEL

if TYPE_CHECKING:  # a Literal of the registered template names, built at import time: mypy sees a str
    TemplateName = str
else:
    from harness.tasks.sql_prompts import TemplateName

KIND = "training config"
CHECKPOINTS_DIR = "checkpoints"

NonNegative = Annotated[int, Field(ge=0)]
Positive = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]
Fraction = Annotated[float, Field(gt=0, le=1)]


class DataSettings(Strict):
    """Which Spider train items become examples, and how long an example may be."""

    spider_dir: str = ""  # empty: looked up as harness.data.sources says ($HARNESS_SPIDER_DIR, ./data, ...)
    template: TemplateName = (
        "schema"  # a harness.tasks.spider template; the benchmark must prompt with the same
    )
    shots: NonNegative = 0  # solved train examples in each prompt (from the train split)
    max_examples: NonNegative = 0  # 0: every usable train item; else a seeded random subset of this many
    max_length: NonNegative = (
        0  # tokens of prompt + completion; 0: from the examples' lengths (length_percentile)
    )
    length_percentile: Annotated[float, Field(gt=0, le=100)] = (
        100.0  # with max_length = 0: this percentile of the lengths
    )
    overlong: Literal["drop", "truncate"] = (
        "drop"  # an example longer than max_length: drop it, or truncate it (losing its EOS)
    )
    # "validation": leave out the databases of the validation split carved from train
    # (harness.tasks.spider_data.split_validation), so a sweep can choose its point on them unseen
    hold_out: Literal["none", "validation"] = "none"


class LoraSettings(Strict):
    """The adapter (peft.LoraConfig)."""

    r: Positive = 16
    lora_alpha: Positive = 16
    lora_dropout: Annotated[float, Field(ge=0, lt=1)] = 0.05
    target_modules: tuple[str, ...] = (
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    )
    bias: Literal["none", "all", "lora_only"] = "none"
    task_type: Literal["CAUSAL_LM"] = "CAUSAL_LM"

    @model_validator(mode="after")
    def _check(self):
        if not self.target_modules:
            raise Problems(["target_modules: at least one module name is required"])
        return self


class TrainSettings(Strict):
    """The optimisation (trl.SFTConfig)."""

    epochs: PositiveFloat = 1.0
    max_steps: NonNegative = 0  # optimizer steps; 0: as many as `epochs` takes
    learning_rate: PositiveFloat = 2e-4
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "linear"
    warmup_steps: NonNegative = 0
    weight_decay: NonNegativeFloat = 0.0
    max_grad_norm: NonNegativeFloat = 1.0  # 0: no clipping
    per_device_batch_size: Positive = 64
    gradient_accumulation_steps: Positive = 4
    gradient_checkpointing: Literal["auto", "on", "off"] = (
        "auto"  # "auto": on with CUDA, off on CPU (no memory to save there)
    )
    # Batches of examples of similar length (transformers' LengthGroupedSampler): far less
    # padding when lengths vary, as schema prompts do.
    group_by_length: bool = False
    logging_steps: Positive = 1  # the divergence guard and the loss curve see a loss this often
    # A safety stop for the whole run (load, data, train, save), in seconds; 0: none. A run it
    # stops still succeeds, but its summary says cut_short = true and warns.
    time_budget_s: NonNegativeFloat = 0.0


class HardwareSettings(Strict):
    device: Literal["auto", "cpu", "cuda"] = "auto"  # "auto": CUDA when available, else CPU
    cuda_quantization: Literal["nf4", "none"] = (
        "nf4"  # "nf4": QLoRA, 4-bit nf4 base with bf16 compute; "none": bf16 base
    )
    # "auto": try 4-bit nf4 through bitsandbytes' CPU backend and fall back to fp32 if it fails;
    # "nf4": 4-bit or an error; "fp32": unquantized.
    cpu_quantization: Literal["auto", "nf4", "fp32"] = "auto"


class GuardSettings(Strict):
    """When a run counts as diverged: a NaN/inf loss or gradient norm at once, or a loss above
    ``loss_factor`` x its start for ``patience`` logged steps in a row.

    The start is the first logged loss (``reference_logs = 1``: the only one taken on the
    untouched base model); a larger value averages the first few logs, steadier on tiny
    batches but blind to a run that blows up within them.
    """

    loss_factor: Annotated[float, Field(gt=1)] = 3.0  # a bound above the first loss
    patience: Positive = 3
    reference_logs: Positive = 1


class CheckpointSettings(Strict):
    """Adapters saved part-way through a run, at fractions of its planned optimizer steps."""

    at: tuple[Fraction, ...]  # e.g. [0.25, 0.5, 1.0]; step = ceil(fraction x planned steps)

    @model_validator(mode="after")
    def _check(self):
        if not self.at:
            raise Problems(["at: at least one fraction is required (or leave out [checkpoints])"])
        if any(b <= a for a, b in zip(self.at, self.at[1:])):
            raise Problems([f"at: fractions must be sorted and distinct, got {list(self.at)}"])
        return self


class TrainingConfig(Strict):
    name: str = ""  # empty: the file's stem
    model: str = (
        DEFAULT_MODEL  # harness.models.loading.resolve_model: the default, an HF id, a folder or a .gguf
    )
    revision: str = ""  # a hub model's branch, tag or commit (the summary records the commit); empty: main
    output: str = ""  # the adapter folder; empty: adapters/<name>
    seed: int = 0  # data subset and order, adapter initialisation, dropout
    data: DataSettings = DataSettings()
    lora: LoraSettings = LoraSettings()
    train: TrainSettings = TrainSettings()
    hardware: HardwareSettings = HardwareSettings()
    guard: GuardSettings = GuardSettings()
    checkpoints: CheckpointSettings | None = None  # None: only the final adapter
    source: str = ""  # the file it was loaded from (set by the loader, not a key of the file)

    def to_dict(self) -> dict:
        """Plain JSON-ready values (lists for tuples), as the training summary records them."""
        return self.model_dump(mode="json")

    @property
    def checkpoint_fractions(self) -> tuple[float, ...]:
        return self.checkpoints.at if self.checkpoints is not None else ()

    @property
    def planned_epochs(self) -> float:
        """The passes over the data the run plans: ``train.epochs``, or with ``train.max_steps``
        and ``data.max_examples`` both set, max_steps x per_device_batch_size x
        gradient_accumulation_steps / max_examples (what the trainer then does, whatever
        ``epochs`` says). With max_steps but every example, the number of examples is unknown
        until the data is read, and ``epochs`` stands (the summary's ``data_passes`` measures it)."""
        t = self.train
        if t.max_steps and self.data.max_examples:
            passes = (
                t.max_steps * t.per_device_batch_size * t.gradient_accumulation_steps / self.data.max_examples
            )
            return float(f"{passes:.12g}")
        return t.epochs
