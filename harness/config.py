"""The experiment config: one TOML file declares the variants, benchmarks and their sizes.

Loaded into frozen dataclasses and validated as it loads: every problem is gathered and
reported together, each naming the file and the dotted key (``variants[2].adapter``), and an
unknown key is an error with a did-you-mean. Defaults live in the dataclasses below; no code
outside this module reads a raw dict with ``.get(key, default)``.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path

SPIDER_TEMPLATES = ("paper", "schema")
LOAD_MODES = ("fp32", "bf16", "int8", "nf4")
MMLU_SCORING = ("loglik", "generate")
DATA_SOURCES = ("disk", "hub")
BENCHMARKS = ("spider", "mmlu")
_VARIANT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")


class ConfigError(ValueError):
    """The experiment config is malformed; the message lists every problem found."""


@dataclass(frozen=True)
class SpiderSettings:
    data_dir: str = ""  # empty: $HARNESS_SPIDER_DIR, else ../shared/data/spider
    source: str = "disk"  # "disk": official layout; "hub": xlangai/spider (databases still from data_dir)
    split: str = "dev"
    limit: int = 0  # 0: the whole split; the paper used 200
    template: str = "schema"
    timeout_s: float = 5.0  # per query, gold and predicted
    max_new_tokens: int = 128
    batch_size: int = 8


@dataclass(frozen=True)
class MMLUSettings:
    data_dir: str = ""  # empty: $HARNESS_MMLU_DIR, else ../shared/data/mmlu
    source: str = "disk"
    split: str = "test"
    selection: str = "paper"  # "paper" (50 STEM/50 humanities/50 social sciences), "full", or "per_subject"
    per_subject: int = 0  # with selection = "per_subject": this many questions of every subject
    subjects: tuple[str, ...] = ()  # restrict to these subjects (any selection)
    shots: int = 4
    batch_size: int = 8  # loglik: prompts per forward pass; generate: prompts per generate() call
    # loglik: a forward pass also holds at most this many tokens, padding included, so a long
    # question does not pad a batch of short ones; raise it (with batch_size) on a GPU.
    max_batch_tokens: int = 2048
    # loglik: run a subject's shared few-shot prefix once and reuse its KV cache. "auto": on a
    # CPU only. Measured (scripts/bench_mmlu_vs_lmeval.py, 570 questions, 4-shot): 1.5x faster
    # on this 2-core CPU, but 4x slower on an H200 (175 against 43 q/s), where the small
    # per-subject batches it forces leave the GPU idle.
    reuse_prefix: str = "auto"


@dataclass(frozen=True)
class VariantConfig:
    """One model variant under test: a base model, optionally an adapter, a load mode and
    the prompting it gets on each benchmark."""

    name: str
    model: str = "smollm2-135m-instruct"
    load: str = "fp32"
    adapter: str = ""  # a PEFT adapter folder; empty: the base model
    train_config: str = ""  # training config that produces ``adapter`` when it is absent
    spider_shots: int = 0
    mmlu_shots: int = -1  # -1: mmlu.shots
    mmlu_scoring: str = "loglik"
    benchmarks: tuple[str, ...] = BENCHMARKS


@dataclass(frozen=True)
class ExperimentConfig:
    name: str = "experiment"
    seed: int = 0
    baseline: str = ""  # the variant others are compared with; empty: the first
    cache_dir: str = ".cache/predictions"
    report_dir: str = "reports"
    gates: str = ""  # a gates TOML file; empty: no gates
    spider: SpiderSettings = field(default_factory=SpiderSettings)
    mmlu: MMLUSettings = field(default_factory=MMLUSettings)
    variants: tuple[VariantConfig, ...] = ()
    source: str = ""  # the file it was loaded from (set by the loader)

    def variant(self, name: str) -> VariantConfig:
        for v in self.variants:
            if v.name == name:
                return v
        raise ConfigError(_unknown("variant", name, [v.name for v in self.variants], self.source))

    @property
    def baseline_variant(self) -> str:
        return self.baseline or (self.variants[0].name if self.variants else "")

    def mmlu_shots_of(self, variant: VariantConfig) -> int:
        return self.mmlu.shots if variant.mmlu_shots < 0 else variant.mmlu_shots


def _unknown(kind: str, name: str, choices: list[str], where: str = "") -> str:
    close = difflib.get_close_matches(name, choices, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    prefix = f"{where}: " if where else ""
    return f"{prefix}unknown {kind} {name!r}{hint} (available: {', '.join(choices) or 'none'})"


def _coerce(value, annotation, key: str, errors: list[str]):
    """Check ``value`` against a field's annotation; returns the converted value."""
    origin = typing.get_origin(annotation)
    if origin is tuple:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            errors.append(f"{key}: expected a list of strings, got {value!r}")
            return ()
        return tuple(value)
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation in (int, float, str, bool):
        if not isinstance(value, annotation) or (annotation is int and isinstance(value, bool)):
            errors.append(f"{key}: expected {annotation.__name__}, got {type(value).__name__} {value!r}")
        return value
    return value


def _build(cls, raw, key: str, errors: list[str]):
    """A ``cls`` instance from the TOML table ``raw``; problems go to ``errors``."""
    if not isinstance(raw, dict):
        errors.append(f"{key or 'top level'}: expected a table, got {type(raw).__name__}")
        return None
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.name != "source"]
    kwargs = {}
    for k, v in raw.items():
        dotted = f"{key}.{k}" if key else k
        if k not in names:
            close = difflib.get_close_matches(k, names, n=1)
            errors.append(f"{dotted}: unknown key" + (f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(names)})"))
            continue
        ann = hints[k]
        if dataclasses.is_dataclass(ann):
            kwargs[k] = _build(ann, v, dotted, errors)
        elif k == "variants":
            if not isinstance(v, list):
                errors.append(f"{dotted}: expected [[variants]] tables")
                continue
            kwargs[k] = tuple(_build(VariantConfig, item, f"variants[{i}]", errors) for i, item in enumerate(v))
        else:
            kwargs[k] = _coerce(v, ann, dotted, errors)
    missing = [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING and f.name not in kwargs]
    for m in missing:
        errors.append(f"{key + '.' if key else ''}{m}: required")
    if missing or any(v is None for v in kwargs.values()):
        return None
    return cls(**kwargs)


def _check_choice(value: str, choices: tuple[str, ...], key: str, errors: list[str]) -> None:
    if value not in choices:
        close = difflib.get_close_matches(value, choices, n=1)
        errors.append(f"{key}: {value!r} is not one of {', '.join(choices)}" + (f"; did you mean {close[0]!r}?" if close else ""))


def validate(cfg: ExperimentConfig, base_dir: Path) -> list[str]:
    """Cross-field checks that types alone cannot express."""
    errors: list[str] = []
    _check_choice(cfg.spider.template, SPIDER_TEMPLATES, "spider.template", errors)
    _check_choice(cfg.spider.source, DATA_SOURCES, "spider.source", errors)
    _check_choice(cfg.mmlu.source, DATA_SOURCES, "mmlu.source", errors)
    _check_choice(cfg.mmlu.selection, ("paper", "full", "per_subject"), "mmlu.selection", errors)
    _check_choice(cfg.mmlu.reuse_prefix, ("auto", "on", "off"), "mmlu.reuse_prefix", errors)
    if cfg.mmlu.selection == "per_subject" and cfg.mmlu.per_subject <= 0:
        errors.append("mmlu.per_subject: must be positive when mmlu.selection = 'per_subject'")
    for key, value in [("spider.limit", cfg.spider.limit), ("mmlu.shots", cfg.mmlu.shots)]:
        if value < 0:
            errors.append(f"{key}: must be >= 0, got {value}")
    for key, value in [("spider.batch_size", cfg.spider.batch_size), ("mmlu.batch_size", cfg.mmlu.batch_size),
                       ("mmlu.max_batch_tokens", cfg.mmlu.max_batch_tokens), ("spider.max_new_tokens", cfg.spider.max_new_tokens)]:
        if value <= 0:
            errors.append(f"{key}: must be positive, got {value}")
    if cfg.spider.timeout_s <= 0:
        errors.append(f"spider.timeout_s: must be positive, got {cfg.spider.timeout_s}")
    if not cfg.variants:
        errors.append("variants: at least one [[variants]] table is required")
    seen: set[str] = set()
    for i, v in enumerate(cfg.variants):
        key = f"variants[{i}]"
        if not _VARIANT_NAME.match(v.name):
            errors.append(f"{key}.name: {v.name!r} must start with a letter and hold only letters, digits, - and _")
        if v.name in seen:
            errors.append(f"{key}.name: {v.name!r} is declared twice")
        seen.add(v.name)
        _check_choice(v.load, LOAD_MODES, f"{key}.load", errors)
        _check_choice(v.mmlu_scoring, MMLU_SCORING, f"{key}.mmlu_scoring", errors)
        for b in v.benchmarks:
            _check_choice(b, BENCHMARKS, f"{key}.benchmarks", errors)
        if v.spider_shots < 0:
            errors.append(f"{key}.spider_shots: must be >= 0, got {v.spider_shots}")
        if v.train_config and not (base_dir / v.train_config).is_file():
            errors.append(f"{key}.train_config: no such file {v.train_config!r}")
        if v.adapter and not v.train_config and not (base_dir / v.adapter / "adapter_config.json").is_file():
            errors.append(f"{key}.adapter: no adapter_config.json in {v.adapter!r} and no train_config to produce it")
    if cfg.baseline and cfg.baseline not in seen:
        errors.append(_unknown("variant", cfg.baseline, sorted(seen), "baseline"))
    return errors


def load_experiment(path: str | Path, **overrides) -> ExperimentConfig:
    """Load, override and validate an experiment config.

    ``overrides`` replace top-level or section keys: ``spider_limit=10`` sets
    ``spider.limit``; ``model="org/name"`` sets the model of every variant; ``variants=[...]``
    keeps only the named variants (an unknown name is an error).
    """
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: experiment config not found") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from None
    errors: list[str] = []
    # The [experiment] table holds the top-level keys (name, seed, baseline, ...); it reads
    # better in a file than bare keys above the first table.
    if isinstance(raw.get("experiment"), dict):
        head = raw.pop("experiment")
        clash = sorted(set(head) & set(raw))
        if clash:
            errors.append(f"experiment: {', '.join(clash)} given both in [experiment] and at top level")
        raw = {**head, **raw}
    cfg = _build(ExperimentConfig, raw, "", errors)
    if cfg is None or errors:
        raise ConfigError(f"{path}: invalid experiment config:\n  " + "\n  ".join(errors))
    cfg = dataclasses.replace(cfg, source=str(path))
    cfg = apply_overrides(cfg, **overrides)
    # Relative paths in the config (adapters, training configs) are relative to the directory
    # the harness runs in (the repository root), like every other path a user types.
    errors = validate(cfg, Path.cwd())
    if errors:
        raise ConfigError(f"{path}: invalid experiment config:\n  " + "\n  ".join(errors))
    return cfg


def apply_overrides(
    cfg: ExperimentConfig,
    *,
    variants: list[str] | None = None,
    model: str | None = None,
    spider_limit: int | None = None,
    spider_dir: str | None = None,
    mmlu_dir: str | None = None,
    mmlu_selection: str | None = None,
    load: str | None = None,
) -> ExperimentConfig:
    """Command-line options win over the file."""
    spider, mmlu, chosen = cfg.spider, cfg.mmlu, cfg.variants
    if spider_limit is not None:
        spider = dataclasses.replace(spider, limit=spider_limit)
    if spider_dir:
        spider = dataclasses.replace(spider, data_dir=spider_dir)
    if mmlu_dir:
        mmlu = dataclasses.replace(mmlu, data_dir=mmlu_dir)
    if mmlu_selection:
        mmlu = dataclasses.replace(mmlu, selection=mmlu_selection)
    if variants:
        names = [v.name for v in cfg.variants]
        for n in variants:
            if n not in names:
                raise ConfigError(_unknown("variant", n, names, f"{cfg.source} (--variant)"))
        chosen = tuple(v for v in cfg.variants if v.name in variants)
    if model:
        chosen = tuple(dataclasses.replace(v, model=model) for v in chosen)
    if load:
        chosen = tuple(dataclasses.replace(v, load=load) for v in chosen)
    # A baseline left out by --variant falls back to the first chosen variant.
    baseline = cfg.baseline if not variants or cfg.baseline in {v.name for v in chosen} else ""
    return dataclasses.replace(cfg, spider=spider, mmlu=mmlu, variants=chosen, baseline=baseline)
