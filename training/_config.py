"""The training config: one TOML file, loaded into frozen dataclasses and checked as it loads.

Every problem is gathered and reported together, each naming the file and the dotted key
(``train.learning_rate: expected float, got str 'fast'``); an unknown key is an error with a
did-you-mean. Defaults live in the dataclasses below and nowhere else.

Overrides (command line, ``train_from_config(**overrides)``) and sweep points use the same
keys: a dotted path (``lora.r``) or a bare field name when only one section has it
(``learning_rate`` is ``train.learning_rate``).

A ``[sweep]`` table turns one file into several runs: each key takes a list of values, and the
cartesian product of the lists gives one run per point, trained into
``<output>/<key>=<value>[,<key>=<value>...]``.
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import math
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path

from harness.models import DEFAULT_MODEL
from harness.prompts import SPIDER_TEMPLATES

DEVICES = ("auto", "cpu", "cuda")
CUDA_QUANTIZATION = ("nf4", "none")
# "auto": try 4-bit nf4 through bitsandbytes' CPU backend and fall back to fp32 if it fails;
# "nf4": 4-bit or an error; "fp32": unquantized.
CPU_QUANTIZATION = ("auto", "nf4", "fp32")
OVERLONG = ("drop", "truncate")
SWITCHES = ("auto", "on", "off")
LORA_BIASES = ("none", "all", "lora_only")
LR_SCHEDULERS = ("linear", "cosine", "constant", "constant_with_warmup")


class ConfigError(ValueError):
    """The training config is malformed; the message lists every problem, by file and key."""


@dataclass(frozen=True)
class DataSettings:
    """Which Spider train items become examples, and how long an example may be."""

    spider_dir: str = ""  # empty: $HARNESS_SPIDER_DIR, else ../shared/data/spider
    template: str = "schema"  # a harness.prompts.SPIDER_TEMPLATES name; the benchmark must use the same
    shots: int = 0  # solved train examples in each prompt (from the train split)
    max_examples: int = 0  # 0: every usable train item; else a seeded random subset of this many
    max_length: int = 0  # tokens of prompt + completion; 0: from the measured lengths (length_percentile)
    length_percentile: float = 100.0  # with max_length = 0: this percentile of the measured lengths
    overlong: str = "drop"  # an example longer than max_length: "drop" it, or "truncate" it (losing its EOS)


@dataclass(frozen=True)
class LoraSettings:
    """The adapter (peft.LoraConfig)."""

    r: int = 16
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    bias: str = "none"
    task_type: str = "CAUSAL_LM"


@dataclass(frozen=True)
class TrainSettings:
    """The optimisation (trl.SFTConfig)."""

    epochs: float = 1.0
    max_steps: int = 0  # optimizer steps; 0: as many as `epochs` takes
    learning_rate: float = 2e-4
    lr_scheduler: str = "linear"
    warmup_steps: int = 0
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    per_device_batch_size: int = 64
    gradient_accumulation_steps: int = 4
    gradient_checkpointing: str = "auto"  # "auto": on with CUDA, off on CPU (no memory to save there)
    # Batches of examples of similar length (transformers' LengthGroupedSampler): far less
    # padding when lengths vary, as schema prompts do (median 300 tokens, longest 2,100).
    group_by_length: bool = False
    logging_steps: int = 1  # the divergence guard and the loss curve see a loss this often
    time_budget_s: float = 0.0  # the whole run (load, data, train, save) ends within this; training stops early (and still succeeds); 0: none


@dataclass(frozen=True)
class HardwareSettings:
    device: str = "auto"  # "auto": CUDA when available, else CPU
    cuda_quantization: str = "nf4"  # "nf4": QLoRA, 4-bit nf4 base with bf16 compute; "none": bf16 base
    cpu_quantization: str = "auto"


@dataclass(frozen=True)
class GuardSettings:
    """When a run counts as diverged: a NaN/inf loss or gradient norm at once, or a loss above
    ``loss_factor`` x its start for ``patience`` logged steps in a row.

    The start is the first logged loss (``reference_logs = 1``: the only one measured on the
    untouched base model); a larger value averages the first few logs, steadier on tiny
    batches but blind to a run that blows up within them.
    """

    loss_factor: float = 3.0
    patience: int = 3
    reference_logs: int = 1


@dataclass(frozen=True)
class TrainingConfig:
    name: str = ""  # empty: the file's stem
    model: str = DEFAULT_MODEL  # harness.models.resolve_model: the default, an HF id, a folder or a .gguf
    output: str = ""  # the adapter folder; empty: adapters/<name>
    seed: int = 0  # data subset and order, adapter initialisation, dropout
    data: DataSettings = field(default_factory=DataSettings)
    lora: LoraSettings = field(default_factory=LoraSettings)
    train: TrainSettings = field(default_factory=TrainSettings)
    hardware: HardwareSettings = field(default_factory=HardwareSettings)
    guard: GuardSettings = field(default_factory=GuardSettings)
    source: str = ""  # the file it was loaded from (set by the loader)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class SweepPoint:
    """One run of a config: its settings and, in a sweep, the values that set it apart."""

    config: TrainingConfig
    values: tuple[tuple[str, object], ...] = ()  # ((dotted key, value), ...); empty outside a sweep

    @property
    def label(self) -> str:
        return ",".join(f"{key.rsplit('.', 1)[-1]}={_format_value(v)}" for key, v in self.values)


_SECTIONS = {"data": DataSettings, "lora": LoraSettings, "train": TrainSettings, "hardware": HardwareSettings, "guard": GuardSettings}
_TOP_FIELDS = [f.name for f in dataclasses.fields(TrainingConfig) if f.name not in _SECTIONS and f.name != "source"]


def _all_keys() -> list[str]:
    """Every settable dotted key: ``model``, ``seed``, ..., ``data.template``, ``lora.r``, ..."""
    keys = list(_TOP_FIELDS)
    for section, cls in _SECTIONS.items():
        keys += [f"{section}.{f.name}" for f in dataclasses.fields(cls)]
    return keys


def resolve_key(key: str) -> str:
    """The dotted key ``key`` names: itself, or the only section field called ``key``.

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
    close = difflib.get_close_matches(key, keys + bare, n=1)
    raise ConfigError(f"{key}: unknown key" + (f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(keys)})"))


def _format_value(value) -> str:
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "+".join(str(v) for v in value)
    return str(value)


def _coerce(value, annotation, key: str, errors: list[str]):
    """``value`` checked against a field's annotation (ints are accepted for floats)."""
    if typing.get_origin(annotation) is tuple:
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            errors.append(f"{key}: expected a list of strings, got {value!r}")
            return None
        return tuple(value)
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, annotation) or (annotation in (int, float) and isinstance(value, bool)):
        errors.append(f"{key}: expected {annotation.__name__}, got {type(value).__name__} {value!r}")
        return None
    if annotation is float and not math.isfinite(value):
        errors.append(f"{key}: expected a finite number, got {value!r}")
        return None
    return value


def _build(cls, raw, key: str, errors: list[str]):
    """A ``cls`` from the TOML table ``raw``; problems go to ``errors`` and give None."""
    if not isinstance(raw, dict):
        errors.append(f"{key or 'top level'}: expected a table, got {type(raw).__name__} {raw!r}")
        return None
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.name != "source"]
    kwargs, ok = {}, True
    for k, v in raw.items():
        dotted = f"{key}.{k}" if key else k
        if k not in names:
            close = difflib.get_close_matches(k, names, n=1)
            errors.append(f"{dotted}: unknown key" + (f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(names)})"))
            ok = False
            continue
        value = _build(hints[k], v, dotted, errors) if dataclasses.is_dataclass(hints[k]) else _coerce(v, hints[k], dotted, errors)
        ok = ok and value is not None
        kwargs[k] = value
    return cls(**kwargs) if ok else None


def _choice(value: str, choices, key: str, errors: list[str]) -> None:
    if value not in choices:
        close = difflib.get_close_matches(str(value), list(choices), n=1)
        errors.append(f"{key}: {value!r} is not one of {', '.join(choices)}" + (f"; did you mean {close[0]!r}?" if close else ""))


def validate(cfg: TrainingConfig) -> list[str]:
    """Checks that types alone cannot express; each message names its dotted key."""
    errors: list[str] = []
    d, lo, t, h, g = cfg.data, cfg.lora, cfg.train, cfg.hardware, cfg.guard
    _choice(d.template, sorted(SPIDER_TEMPLATES), "data.template", errors)
    _choice(d.overlong, OVERLONG, "data.overlong", errors)
    _choice(lo.bias, LORA_BIASES, "lora.bias", errors)
    _choice(lo.task_type, ("CAUSAL_LM",), "lora.task_type", errors)
    _choice(t.lr_scheduler, LR_SCHEDULERS, "train.lr_scheduler", errors)
    _choice(t.gradient_checkpointing, SWITCHES, "train.gradient_checkpointing", errors)
    _choice(h.device, DEVICES, "hardware.device", errors)
    _choice(h.cuda_quantization, CUDA_QUANTIZATION, "hardware.cuda_quantization", errors)
    _choice(h.cpu_quantization, CPU_QUANTIZATION, "hardware.cpu_quantization", errors)
    for key, value in [("data.shots", d.shots), ("data.max_examples", d.max_examples), ("data.max_length", d.max_length),
                       ("train.max_steps", t.max_steps), ("train.warmup_steps", t.warmup_steps)]:
        if value < 0:
            errors.append(f"{key}: must be >= 0, got {value}")
    for key, value in [("lora.r", lo.r), ("lora.lora_alpha", lo.lora_alpha), ("train.per_device_batch_size", t.per_device_batch_size),
                       ("train.gradient_accumulation_steps", t.gradient_accumulation_steps), ("train.logging_steps", t.logging_steps),
                       ("train.learning_rate", t.learning_rate), ("train.epochs", t.epochs), ("guard.patience", g.patience),
                       ("guard.reference_logs", g.reference_logs)]:
        if value <= 0:
            errors.append(f"{key}: must be positive, got {value}")
    if not 0 < d.length_percentile <= 100:
        errors.append(f"data.length_percentile: must be in (0, 100], got {d.length_percentile}")
    if not 0 <= lo.lora_dropout < 1:
        errors.append(f"lora.lora_dropout: must be in [0, 1), got {lo.lora_dropout}")
    if not lo.target_modules:
        errors.append("lora.target_modules: at least one module name is required")
    if g.loss_factor <= 1:
        errors.append(f"guard.loss_factor: must be > 1 (a bound above the first loss), got {g.loss_factor}")
    if t.time_budget_s < 0:
        errors.append(f"train.time_budget_s: must be >= 0, got {t.time_budget_s}")
    if t.weight_decay < 0 or t.max_grad_norm < 0:
        errors.append("train.weight_decay and train.max_grad_norm: must be >= 0")
    return errors


def _set(raw: dict, dotted: str, value) -> None:
    node = raw
    *parents, leaf = dotted.split(".")
    for p in parents:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{p}: expected a table")
    node[leaf] = value


def _finish(raw: dict, where: str) -> TrainingConfig:
    """Build and validate; a ConfigError lists every problem found, prefixed with ``where``."""
    errors: list[str] = []
    cfg = _build(TrainingConfig, raw, "", errors)
    if cfg is not None:
        errors += validate(cfg)
    if errors:
        raise ConfigError(f"{where}: invalid training config:\n  " + "\n  ".join(errors))
    return cfg


def _read_toml(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: training config not found") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from None


def load_sweep(path: str | Path, **overrides) -> list[SweepPoint]:
    """Every run a config file asks for: one point, or one per combination of its ``[sweep]``.

    ``overrides`` map keys (dotted or bare, see :func:`resolve_key`) to values and apply to
    every point; an override of a swept key replaces its list with that one value.

    Raises:
        ConfigError: naming the file and the dotted key of every problem, in the file or in
        any sweep point, before anything is trained.
    """
    path = Path(path)
    raw = _read_toml(path)
    sweep_raw = raw.pop("sweep", {})
    if not isinstance(sweep_raw, dict):
        raise ConfigError(f"{path}: sweep: expected a table of lists, got {sweep_raw!r}")
    raw.setdefault("name", path.stem)
    errors: list[str] = []
    axes: list[tuple[str, list]] = []
    for key, values in sweep_raw.items():
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
        raise ConfigError(f"{path}: invalid training config:\n  " + "\n  ".join(errors))
    axes = [(k, v) for k, v in axes if k not in resolved_overrides]
    for dotted, value in resolved_overrides.items():
        _set(raw, dotted, value)
    base = _finish(raw, str(path))
    base = dataclasses.replace(base, source=str(path), output=base.output or f"adapters/{base.name}")
    if not axes:
        return [SweepPoint(base)]
    points, problems = [], []
    for combo in itertools.product(*(values for _, values in axes)):
        point_raw = _deep_copy(raw)
        values = tuple((k, v) for (k, _), v in zip(axes, combo))
        for dotted, value in values:
            _set(point_raw, dotted, value)
        label = ",".join(f"{k.rsplit('.', 1)[-1]}={_format_value(v)}" for k, v in values)
        try:
            cfg = _finish(point_raw, f"{path} [sweep point {label}]")
        except ConfigError as e:
            problems.append(str(e))
            continue
        output = str(Path(base.output) / label.replace("/", "_").replace("\\", "_"))  # a swept hub id stays one folder
        points.append(SweepPoint(dataclasses.replace(cfg, source=str(path), output=output, name=f"{base.name}[{label}]"), values))
    if problems:
        raise ConfigError("\n".join(problems))
    return points


def load_config(path: str | Path, **overrides) -> TrainingConfig:
    """One run's config; a file with a ``[sweep]`` is refused (use :func:`load_sweep`)."""
    points = load_sweep(path, **overrides)
    if len(points) != 1 or points[0].values:
        raise ConfigError(f"{path}: holds a sweep of {len(points)} runs; load it with load_sweep")
    return points[0].config


def _deep_copy(raw):
    if isinstance(raw, dict):
        return {k: _deep_copy(v) for k, v in raw.items()}
    if isinstance(raw, list):
        return [_deep_copy(v) for v in raw]
    return raw


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
