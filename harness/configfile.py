"""One loader for every TOML file of the harness: experiments, gates and training configs.

A config is a tree of pydantic models (:class:`Strict`: unknown keys refused, frozen, no type
coercion beyond int -> float, no NaN). This module reads the TOML, validates it and turns
pydantic's errors into the harness's wording: every problem at once, each naming the file and
the dotted key (``variants[2].load``), with a did-you-mean for an unknown key or choice::

    experiments/x.toml: invalid experiment config:
      variants[0].load: 'fp16' is not one of fp32, bf16, int8, nf4; did you mean 'bf16'?
      spider.limt: unknown key; did you mean 'limit'?

Cross-field checks are ``model_validator(mode="after")`` methods that raise :class:`Problems`
(one line per problem, each starting with its dotted key).
"""

from __future__ import annotations

import difflib
import tomllib
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

M = TypeVar("M", bound=BaseModel)


class ConfigError(ValueError):
    """A config file is missing or malformed; the message lists every problem found."""


class Strict(BaseModel):
    """The base of every config model: strict types, unknown keys refused, immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)
    # Keys of older files, each by the key that replaced it: refused like any unknown key (a
    # silently read renamed key would be a guess), the problem naming the new key; the other
    # problems of the file are reported beside it
    renamed_keys: ClassVar[Mapping[str, str]] = {}


class Problems(ValueError):
    """Raised by a model's cross-field validator: ``lines`` are "dotted.key: message" each."""

    def __init__(self, lines: Iterable[str]):
        self.lines = list(lines)
        super().__init__("\n".join(self.lines))


def suggestion(name: str, choices: Iterable[str]) -> str:
    """ "; did you mean 'x'?" for the choice closest to ``name`` (difflib), else ""."""
    close = difflib.get_close_matches(str(name), list(choices), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """ "; did you mean 'x'?" for the closest choice, else the list of choices."""
    choices = list(choices)
    return suggestion(name, choices) or f" (known: {', '.join(choices) or 'none'})"


def unknown(kind: str, name: str, choices: Iterable[str]) -> str:
    """ "unknown variant 'bse'; did you mean 'base'? (available: ...)"."""
    choices = list(choices)
    return f"unknown {kind} {name!r}{suggestion(name, choices)} (available: {', '.join(choices) or 'none'})"


def read_toml(path: str | Path, kind: str) -> dict:
    """The parsed TOML of ``path``; a missing or unparsable file is a :class:`ConfigError`."""
    path = Path(path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: {kind} not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not a {kind} (TOML file)") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text ({e})") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from None


def validate(model: type[M], raw: dict, *, source: str, kind: str) -> M:
    """``model`` built from the TOML table ``raw``; a :class:`ConfigError` lists every problem,
    prefixed with ``source`` ("<file>: invalid <kind>:")."""
    try:
        return model.model_validate(_tuples(raw))
    except ValidationError as e:
        lines = describe_errors(e, model)
    raise ConfigError(f"{source}: invalid {kind}:\n  " + "\n  ".join(lines))


def load(path: str | Path, model: type[M], *, kind: str) -> M:
    """Read and validate one file (``kind`` names it in messages: "experiment config")."""
    return validate(model, read_toml(path, kind), source=str(path), kind=kind)


def _tuples(value: Any) -> Any:
    """TOML arrays as tuples: the models hold tuples (immutable), and strict mode wants them so."""
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value


# -- pydantic's errors in the harness's words ---------------------------------------------------


def dotted(loc: Iterable) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


_TYPE_WORDS = {
    "int_type": "a whole number",
    "float_type": "a number",
    "string_type": "a string",
    "bool_type": "true or false",
    "tuple_type": "a list",
    "model_type": "a table",
    "dict_type": "a table",
    "model_attributes_type": "a table",
}


def describe_errors(error: ValidationError, model: type[BaseModel]) -> list[str]:
    lines: list[str] = []
    errors = error.errors(include_url=False)
    for e in errors:
        loc = tuple(p for p in e["loc"] if not _is_union_tag(p))
        if e["type"] == "too_short" and any(
            len(o["loc"]) > len(e["loc"]) and o["loc"][: len(e["loc"])] == e["loc"] for o in errors
        ):
            continue  # "no items left" only repeats the items' own errors
        key = dotted(loc) or "top level"
        kind, value = e["type"], e.get("input")
        if kind == "value_error" and isinstance(e.get("ctx", {}).get("error"), Problems):
            prefix = f"{dotted(loc)}." if loc else ""
            lines += [prefix + line for line in e["ctx"]["error"].lines]
        elif kind == "extra_forbidden":
            lines.append(f"{key}: unknown key" + _unknown_key_hint(model, loc))
        elif kind == "missing":
            lines.append(f"{key}: required")
        elif kind == "literal_error":
            choices = _literal_choices(model, loc)
            lines.append(f"{key}: {value!r} is not one of {', '.join(choices)}" + suggestion(value, choices))
        elif kind == "tuple_type" and _holds_tables(model, loc):
            lines.append(f"{key}: expected [[{loc[-1]}]] tables, got {type(value).__name__} {value!r}")
        elif kind in _TYPE_WORDS:
            lines.append(f"{key}: expected {_TYPE_WORDS[kind]}, got {type(value).__name__} {value!r}")
        elif kind in ("finite_number",):
            lines.append(f"{key}: expected a finite number, got {value!r}")
        elif kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
            lines.append(f"{key}: must be {e['msg'].removeprefix('Input should be ')}, got {value!r}")
        else:
            lines.append(f"{key}: {e['msg'].removeprefix('Value error, ')}")
    return lines


def _is_union_tag(part) -> bool:
    return isinstance(part, str) and ("[" in part or part.startswith("function-"))


def _annotation_at(model: type[BaseModel], loc: tuple) -> Any:
    """The annotation of the field that ``loc`` points to (None if it cannot be followed)."""
    node: Any = model
    for part in loc:
        node = unwrap_annotation(node)
        if isinstance(part, int):
            args = typing.get_args(node)
            node = args[0] if args else None
        elif isinstance(node, type) and issubclass(node, BaseModel):
            field = node.model_fields.get(part)
            node = field.annotation if field else None
        elif typing.get_origin(node) is dict:
            node = typing.get_args(node)[1]
        else:
            return None
    return node


def unwrap_annotation(annotation: Any) -> Any:
    """``X | None`` -> ``X``; ``Annotated[X, ...]`` -> ``X``."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return annotation
            annotation = args[0]
        else:
            return annotation


def _model_at(model: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    node = unwrap_annotation(_annotation_at(model, loc)) if loc else model
    return node if isinstance(node, type) and issubclass(node, BaseModel) else None


def _fields_at(model: type[BaseModel], loc: tuple) -> list[str]:
    node = _model_at(model, loc)
    return list(node.model_fields) if node is not None else []


def _unknown_key_hint(model: type[BaseModel], loc: tuple) -> str:
    """The key that replaced a renamed one (:attr:`Strict.renamed_keys`), else a did-you-mean."""
    node = _model_at(model, loc[:-1])
    new = node.renamed_keys.get(loc[-1]) if node is not None and issubclass(node, Strict) else None
    if new:
        return f"; did you mean {new!r}? ({loc[-1]!r} was renamed {new!r})"
    return did_you_mean(str(loc[-1]), _fields_at(model, loc[:-1]))


def _holds_tables(model: type[BaseModel], loc: tuple) -> bool:
    """Whether the field at ``loc`` is a list of tables (``[[name]]`` in TOML)."""
    node = unwrap_annotation(_annotation_at(model, loc))
    args = typing.get_args(node) if typing.get_origin(node) is tuple else ()
    inner = unwrap_annotation(args[0]) if args else None
    return isinstance(inner, type) and issubclass(inner, BaseModel)


def _literal_choices(model: type[BaseModel], loc: tuple) -> list[str]:
    node = unwrap_annotation(_annotation_at(model, loc))
    if typing.get_origin(node) is tuple:  # a list of choices: the element's annotation
        node = unwrap_annotation(typing.get_args(node)[0])
    if typing.get_origin(node) is Literal:
        return [str(a) for a in typing.get_args(node)]
    return []
