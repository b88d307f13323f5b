"""A small JSON Schema validator for the keywords pydantic's schemas use (no package needed).

It knows the keywords below and refuses a schema with any other validation keyword, so a
schema it cannot read fails the test rather than passing unchecked. ``problems`` returns one
line per violation, each naming its dotted path.
"""

from __future__ import annotations

from typing import Any

ANNOTATIONS = {"title", "description", "default", "examples", "$defs", "deprecated"}
TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def _path(at: str, key: Any) -> str:
    return f"{at}[{key}]" if isinstance(key, int) else (f"{at}.{key}" if at else str(key))


def problems(schema: dict, value: Any, root: dict | None = None, at: str = "") -> list[str]:
    root = schema if root is None else root
    out: list[str] = []
    for keyword, rule in schema.items():
        if keyword in ANNOTATIONS:
            continue
        check = _KEYWORDS.get(keyword)
        if check is None:
            raise ValueError(f"{at or 'top level'}: schema keyword {keyword!r} not known to this checker")
        out += check(rule, schema, value, root, at)
    return out


def _ref(rule, schema, value, root, at):
    target = root
    for part in rule.removeprefix("#/").split("/"):
        target = target[part]
    return problems(target, value, root, at)


def _type(rule, schema, value, root, at):
    names = rule if isinstance(rule, list) else [rule]
    return [] if any(TYPES[n](value) for n in names) else [f"{at}: expected {rule}, got {value!r}"]


def _properties(rule, schema, value, root, at):
    if not isinstance(value, dict):
        return []
    return [p for k, sub in rule.items() if k in value for p in problems(sub, value[k], root, _path(at, k))]


def _additional(rule, schema, value, root, at):
    if not isinstance(value, dict):
        return []
    extra = [k for k in value if k not in schema.get("properties", {})]
    if rule is False:
        return [f"{_path(at, k)}: unknown key" for k in extra]
    if isinstance(rule, dict):
        return [p for k in extra for p in problems(rule, value[k], root, _path(at, k))]
    return []


def _required(rule, schema, value, root, at):
    return [f"{_path(at, k)}: required" for k in rule if isinstance(value, dict) and k not in value]


def _items(rule, schema, value, root, at):
    if not isinstance(value, list):
        return []
    start = len(schema.get("prefixItems", ()))
    return [p for i, v in enumerate(value) if i >= start for p in problems(rule, v, root, _path(at, i))]


def _prefix_items(rule, schema, value, root, at):
    if not isinstance(value, list):
        return []
    return [p for i, (sub, v) in enumerate(zip(rule, value)) for p in problems(sub, v, root, _path(at, i))]


def _any_of(rule, schema, value, root, at):
    if any(not problems(sub, value, root, at) for sub in rule):
        return []
    return [f"{at}: {value!r} matches none of {len(rule)} alternatives"]


def _bound(name, ok):
    def check(rule, schema, value, root, at):
        number = TYPES["number"](value)
        return [] if not number or ok(value, rule) else [f"{at}: {value!r} fails {name} {rule}"]

    return check


def _count(name, ok):
    def check(rule, schema, value, root, at):
        return [] if not isinstance(value, list) or ok(len(value), rule) else [f"{at}: {name} {rule}"]

    return check


_KEYWORDS = {
    "$ref": _ref,
    "type": _type,
    "properties": _properties,
    "additionalProperties": _additional,
    "required": _required,
    "items": _items,
    "prefixItems": _prefix_items,
    "anyOf": _any_of,
    "enum": lambda rule, s, value, r, at: [] if value in rule else [f"{at}: {value!r} is not one of {rule}"],
    "const": lambda rule, s, value, r, at: [] if value == rule else [f"{at}: {value!r} is not {rule!r}"],
    "minimum": _bound("minimum", lambda v, b: v >= b),
    "maximum": _bound("maximum", lambda v, b: v <= b),
    "exclusiveMinimum": _bound("exclusiveMinimum", lambda v, b: v > b),
    "exclusiveMaximum": _bound("exclusiveMaximum", lambda v, b: v < b),
    "minItems": _count("minItems", lambda n, b: n >= b),
    "maxItems": _count("maxItems", lambda n, b: n <= b),
}
