"""Reading a training config file: its keys, command-line overrides, and the ``[sweep]`` that
turns one file into several runs (:class:`SweepPoint`), each validated against the schema.

Overrides and sweep keys are the same keys: a dotted path (``lora.r``) or a bare field name when
only one table has it (``learning_rate`` is ``train.learning_rate``). A sweep point trains into
``<output>/<key>=<value>[,...]``. :func:`config_fingerprint` says whether two configs train alike.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from harness.config.training.schema import KIND, TrainingConfig
from harness.configfile import ConfigError, read_toml, suggestion, unwrap_annotation, validate


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


def format_value(value) -> str:
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "+".join(str(v) for v in value)
    return str(value)


def _label(values) -> str:
    return ",".join(f"{key.rsplit('.', 1)[-1]}={format_value(v)}" for key, v in values)


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
