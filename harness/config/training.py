"""The training config: one TOML file per run or sweep of runs, read by the project's one loader.

    name = "default"                  # empty: the file's stem
    model = "smollm2-135m-instruct"   # the default, an HF id, a folder, a .gguf (resolve_model)
    output = "adapters/default"       # the adapter folder (a sweep's root folder); empty: adapters/<name>
    seed = 0
    [data]  ...  [lora]  ...  [train]  ...  [hardware]  ...  [guard]  ...   (the models below)

    [checkpoints]                     # optional: adapters saved part-way, published with the run
    at = [0.25, 0.5, 1.0]             # fractions of the planned optimizer steps; sorted, in (0, 1]

    [sweep]                           # optional: one run per combination of the lists
    learning_rate = [2e-4, 2e-2]      # a dotted key ("lora.r") or a bare one that only one table has
    "lora.r" = [8, 16]

Loaded into frozen pydantic models by ``harness.configfile``: every problem is reported at once,
naming the file and the dotted key (``train.learnig_rate: unknown key; did you mean
'learning_rate'?``). Defaults live in the models below and nowhere else.

Overrides (command line, ``train_from_config(**overrides)``) and sweep keys are the same keys:
a dotted path (``lora.r``) or a bare field name when only one table has it (``learning_rate``
is ``train.learning_rate``). A sweep point trains into ``<output>/<key>=<value>[,...]``.

Where a run's adapters land, so the harness can plan and check them without importing the
``training`` package (which it never does):

* the final adapter: ``<run output>/`` (adapter_config.json, adapter_model.safetensors,
  training_summary.json), published by a rename when the whole run succeeded;
* a checkpoint at fraction f < 1: ``<run output>/checkpoints/<format(f, "g")>/``, the same
  three files, published inside the run's folder, so it exists only when the run succeeded
  (fraction 1 is the final adapter itself: no ``checkpoints/1`` copy is written);
* a run that failed or diverged: ``<run output>.failed/training_summary.json`` only.

:func:`training_plan` lists those adapters for a config, :func:`run_status` reads what a run
left behind, and :func:`config_fingerprint` says whether it was trained with the same config.
"""

from __future__ import annotations

import copy
import decimal
import hashlib
import itertools
import json
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, model_validator

from harness.configfile import (
    ConfigError,
    Problems,
    Strict,
    read_toml,
    suggestion,
    unwrap_annotation,
    validate,
)
from harness.models.loading import DEFAULT_MODEL
from harness.tasks.spider import TemplateName

__all__ = [
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
    "SUMMARY_NAME",
]

KIND = "training config"
SUMMARY_NAME = "training_summary.json"
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
        0  # tokens of prompt + completion; 0: from the measured lengths (length_percentile)
    )
    length_percentile: Annotated[float, Field(gt=0, le=100)] = (
        100.0  # with max_length = 0: this percentile of the lengths
    )
    overlong: Literal["drop", "truncate"] = (
        "drop"  # an example longer than max_length: drop it, or truncate it (losing its EOS)
    )
    # "validation": leave out the databases of the validation split carved from train
    # (harness.tasks.spider.split_validation), so a sweep can choose its point on them unseen
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

    The start is the first logged loss (``reference_logs = 1``: the only one measured on the
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


@dataclass(frozen=True)
class SweepPoint:
    """One run of a config: its settings and, in a sweep, the values that set it apart."""

    config: TrainingConfig
    values: tuple[tuple[str, Any], ...] = ()  # ((dotted key, value), ...); empty outside a sweep
    label: str = ""  # "learning_rate=0.0002,r=8"; empty outside a sweep

    def __post_init__(self):
        if not self.label and self.values:
            object.__setattr__(self, "label", _label(self.values))


# --- keys ----------------------------------------------------------------------------------------

_IDENTITY = ("name", "output", "source")  # where and under which name a run is kept, not how it trains


def _sections() -> dict[str, type[BaseModel]]:
    out = {}
    for name, field in TrainingConfig.model_fields.items():
        cls = unwrap_annotation(field.annotation)
        if isinstance(cls, type) and issubclass(cls, BaseModel):
            out[name] = cls
    return out


def _all_keys() -> list[str]:
    """Every settable dotted key: ``model``, ``seed``, ..., ``data.template``, ``lora.r``, ..."""
    sections = _sections()
    keys = [k for k in TrainingConfig.model_fields if k not in sections and k != "source"]
    for section, cls in sections.items():
        keys += [f"{section}.{k}" for k in cls.model_fields]
    return keys


def resolve_key(key: str) -> str:
    """The dotted key ``key`` names: itself, or the only table field called ``key``.

    Raises:
        ConfigError: unknown (with a did-you-mean) or ambiguous.
    """
    keys = _all_keys()
    if key in keys:
        return key
    owners = [k for k in keys if k.rsplit(".", 1)[-1] == key]
    if len(owners) == 1:
        return owners[0]
    if len(owners) > 1:
        raise ConfigError(f"{key}: ambiguous; write one of {', '.join(owners)}")
    bare = sorted({k.rsplit(".", 1)[-1] for k in keys})
    hint = suggestion(key, keys + bare) or f" (known: {', '.join(keys)})"
    raise ConfigError(f"{key}: unknown key{hint}")


def parse_override(text: str) -> tuple[str, object]:
    """``key=value`` from the command line; the value is read as TOML (``2e-2``, ``true``,
    ``["q_proj"]``, ``"text"``) and, failing that, taken as a bare string."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r}: expected key=value, e.g. learning_rate=2e-2 or lora.r=8")
    try:
        parsed = tomllib.loads(f"v = {value.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value.strip()
    return key.strip(), parsed


def _format_value(value) -> str:
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "+".join(str(v) for v in value)
    return str(value)


def _label(values) -> str:
    return ",".join(f"{key.rsplit('.', 1)[-1]}={_format_value(v)}" for key, v in values)


def _set(raw: dict, dotted: str, value) -> None:
    node = raw
    *parents, leaf = dotted.split(".")
    for p in parents:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{p}: expected a table")
    node[leaf] = value


def _frozen(value):
    """A swept value as a hashable one (a TOML list becomes a tuple)."""
    return tuple(_frozen(v) for v in value) if isinstance(value, list) else value


# --- loading -------------------------------------------------------------------------------------


def load_sweep(path: str | Path, **overrides) -> list[SweepPoint]:
    """Every run a config file asks for: one point, or one per combination of its ``[sweep]``.

    ``overrides`` map keys (dotted or bare, see :func:`resolve_key`) to values and apply to
    every point; an override of a swept key replaces its list with that one value.

    Raises:
        ConfigError: naming the file and the dotted key of every problem, in the file or in
        any sweep point, before anything is trained.
    """
    path = Path(path)
    raw = read_toml(path, KIND)
    errors: list[str] = []
    if "source" in raw:
        errors.append("source: unknown key (set by the loader)")
    sweep_raw = raw.pop("sweep", {})
    if not isinstance(sweep_raw, dict):
        raise ConfigError(f"{path}: invalid {KIND}:\n  sweep: expected a table of lists, got {sweep_raw!r}")
    raw.setdefault("name", path.stem)
    axes: list[tuple[str, list]] = []
    for key, values in sweep_raw.items():
        if key == "seeds":  # `seeds = [0, 1, 2]`: the seed as a sweep axis, each point trained with each
            key = "seed"
        try:
            dotted = resolve_key(key)
        except ConfigError as e:
            errors.append(f"sweep.{e}")
            continue
        if not isinstance(values, list) or not values:
            errors.append(f"sweep.{key}: expected a non-empty list of values, got {values!r}")
            continue
        axes.append((dotted, values))
    resolved_overrides = {}
    for key, value in overrides.items():
        try:
            resolved_overrides[resolve_key(key)] = value
        except ConfigError as e:
            errors.append(f"override {e}")
    if errors:
        raise ConfigError(f"{path}: invalid {KIND}:\n  " + "\n  ".join(errors))
    axes = [(k, v) for k, v in axes if k not in resolved_overrides]
    try:
        for dotted, value in resolved_overrides.items():
            _set(raw, dotted, value)
        for dotted, _ in axes:
            _set(copy.deepcopy(raw), dotted, None)  # each swept key's table is a table
    except ConfigError as e:
        raise ConfigError(f"{path}: invalid {KIND}:\n  {e}") from None
    base = validate(TrainingConfig, raw, source=str(path), kind=KIND)
    base = base.model_copy(update={"source": str(path), "output": base.output or f"adapters/{base.name}"})
    if not axes:
        return [SweepPoint(base)]
    points, problems = [], []
    for combo in itertools.product(*(values for _, values in axes)):
        point_raw = copy.deepcopy(raw)
        values = tuple((k, _frozen(v)) for (k, _), v in zip(axes, combo))
        for dotted, value in values:
            _set(point_raw, dotted, value)
        label = _label(values)
        try:
            cfg = validate(TrainingConfig, point_raw, source=f"{path} [sweep point {label}]", kind=KIND)
        except ConfigError as e:
            problems.append(str(e))
            continue
        output = str(
            Path(base.output) / label.replace("/", "_").replace("\\", "_")
        )  # a swept hub id stays one folder
        cfg = cfg.model_copy(update={"source": str(path), "output": output, "name": f"{base.name}[{label}]"})
        points.append(SweepPoint(cfg, values, label))
    if problems:
        raise ConfigError("\n".join(problems))
    return points


def load_config(path: str | Path, **overrides) -> TrainingConfig:
    """One run's config; a file with a ``[sweep]`` is refused (use :func:`load_sweep`)."""
    points = load_sweep(path, **overrides)
    if len(points) != 1 or points[0].values:
        raise ConfigError(f"{path}: holds a sweep of {len(points)} runs; load it with load_sweep")
    return points[0].config


def config_fingerprint(cfg: TrainingConfig) -> str:
    """sha256 of the config's canonical JSON (sorted keys), without where the run is kept
    (``name``, ``output``, ``source``): equal fingerprints mean the same training."""
    data = {k: v for k, v in cfg.to_dict().items() if k not in _IDENTITY}
    if data["data"].get("hold_out") == "none":  # a key added later: its default trains as before,
        del data["data"]["hold_out"]  # so adapters trained before it keep their fingerprint
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


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
        return _format_value(value)
    if isinstance(value, int):
        return str(value)
    plain = format(value, "g")
    if float(plain) != value:
        plain = repr(value)
    if not math.isfinite(value) or value == 0:
        return plain
    sign, digits, exponent = decimal.Decimal(repr(value)).normalize().as_tuple()
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
