"""Per-task settings from the command line: ``--data-dir TASK=PATH`` and ``--set TASK.key=value``.

Any key of a task's table in the experiment file (``[TASK]``) can be set for one run, and is
checked as the option is parsed, by the task's own settings model: an unknown task or key, or a
value the model refuses, is one usage error naming the option, the task and the key, with a
did-you-mean. Nothing here names a task: the registry (harness/tasks/__init__.py) says which
exist and what their keys are. The options of earlier versions that named a task are aliases
declared in harness/plugins/legacy_options.py.

A value is read as a TOML value (``20``, ``true``, ``["a", "b"]``, ``"text"``); a bare word that
is not one (``full``, a path) is a string.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Callable
from typing import Any, Literal, get_args, get_origin

import pytest
from pydantic import ValidationError

from harness.configfile import describe_errors, unknown, unwrap_annotation
from harness.plugins.legacy_options import ALIASES
from harness.tasks import TASKS

DEST = "harness_task_settings"  # every option below appends (task, key, value) here, in order
DATA_DIR_KEY = "data_dir"
_TASK_NAME = re.compile(r"^[A-Za-z_][\w-]*$")

Setting = tuple[str, str, Any]  # (task, key, value)


def looks_like_task_path(text: str) -> bool:
    """Whether ``text`` reads ``TASK=PATH`` (a name, no path separator, before the first "=")
    rather than a folder: ``harness bench --data-dir`` takes both."""
    name, sep, _ = text.partition("=")
    return bool(sep) and bool(_TASK_NAME.match(name))


def _toml_value(text: str) -> Any:
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text


def _as_config(value: Any) -> Any:
    """Lists as tuples, as the config loader reads TOML arrays (the models are strict)."""
    if isinstance(value, list):
        return tuple(_as_config(v) for v in value)
    return value


def _refusal(task: str, key: str, value: Any) -> str:
    """Why the task's settings model refuses ``key = value`` ("" when it takes it). Checks that
    involve other keys are left to the experiment loader, which sees the file's values too."""
    model = TASKS[task].settings_model
    try:
        model.model_validate({key: _as_config(value)})
    except ValidationError as e:
        own = [err["msg"] for err in e.errors() if err["loc"][:1] == (key,)]
        if not own:
            return ""
        lines = [line for line in describe_errors(e, model) if re.match(rf"{re.escape(key)}\b[.:\[]", line)]
        return "; ".join(f"{task}.{line}" for line in lines) or f"{task}.{key}: {own[0]}"
    return ""


def checked_setting(option: str, task: str, key: str, text: str, *, literal: bool = False) -> Setting:
    """``(task, key, value)`` for ``option``, or a usage error naming ``option`` (as typed) that
    says which of the task, the key or the value is wrong. ``literal``: the value is the text
    itself (a path), not read as TOML."""
    if task not in TASKS:
        raise pytest.UsageError(f"{option}: {unknown('task', task, TASKS)}")
    fields = TASKS[task].settings_model.model_fields
    if key not in fields:
        raise pytest.UsageError(f"{option}: {unknown(f'{task} setting', key, fields)}")
    value = text if literal else _toml_value(text)
    problem = _refusal(task, key, value)
    if problem and not isinstance(value, str) and not _refusal(task, key, text):
        value, problem = text, ""  # a string key given a bare number, as a file name `123`
    if problem:
        raise pytest.UsageError(f"{option}: {problem}")
    return task, key, value


def parse_set(text: str) -> Setting:
    """``TASK.key=value`` (``--set``)."""
    option = f"--set {text}"
    target, sep, value = text.partition("=")
    task, dot, key = target.partition(".")
    if not sep or not dot or not task or not key:
        raise pytest.UsageError(f"{option}: expected TASK.key=value, e.g. --set TASK.limit=20")
    return checked_setting(option, task, key, value)


def parse_data_dir(text: str) -> Setting:
    """``TASK=PATH`` (``--data-dir``): the task's ``data_dir``."""
    option = f"--data-dir {text}"
    task, sep, path = text.partition("=")
    if not sep or not task or not path:
        raise pytest.UsageError(
            f"{option}: expected TASK=PATH (the folder of one task's data); "
            "`harness bench --data-dir DIR` takes the folder that holds every dataset"
        )
    return checked_setting(option, task, DATA_DIR_KEY, path, literal=True)


def _alias(option: str, task: str, key: str) -> Callable[[str], Setting]:
    def parse(text: str) -> Setting:
        return checked_setting(f"{option} {text}", task, key, text, literal=key == DATA_DIR_KEY)

    return parse


def add_task_options(group: Any) -> None:
    """``--data-dir``, ``--set`` and the aliases of the registered tasks, on a pytest option group."""
    group.addoption(
        "--data-dir",
        dest=DEST,
        action="append",
        default=[],
        type=parse_data_dir,
        metavar="TASK=PATH",
        help="the folder of one task's data (repeatable; the data_dir key of its experiment table)",
    )
    group.addoption(
        "--set",
        dest=DEST,
        action="append",
        default=[],
        type=parse_set,
        metavar="TASK.key=value",
        help="any key of a task's experiment table, for this run, e.g. --set TASK.limit=20 "
        "(repeatable; the value as in TOML, a bare word a string; tasks: " + ", ".join(TASKS) + ")",
    )
    for option, (task, key) in ALIASES.items():
        if task in TASKS:  # a task no longer registered takes its old option with it
            shown = f"--data-dir {task}=PATH" if key == DATA_DIR_KEY else f"--set {task}.{key}=VALUE"
            group.addoption(
                option,
                dest=DEST,
                action="append",
                default=[],
                type=_alias(option, task, key),
                metavar="PATH" if key == DATA_DIR_KEY else "VALUE",
                help=f"the same as {shown}" + _choices(task, key),
            )


def _choices(task: str, key: str) -> str:
    """ " (one of a, b, c)" for a key whose values are a fixed set, else "": what --help shows."""
    field = TASKS[task].settings_model.model_fields.get(key)
    annotation = unwrap_annotation(field.annotation) if field is not None else None
    if get_origin(annotation) is not Literal:
        return ""
    return " (one of " + ", ".join(str(a) for a in get_args(annotation)) + ")"


def task_settings_of(options: Any) -> dict[tuple[str, str], Any]:
    """``{(task, key): value}`` from pytest's parsed options (``config.option``), the last one
    given winning."""
    return {(task, key): value for task, key, value in getattr(options, DEST, None) or ()}


def data_dirs_of(settings: dict[tuple[str, str], Any]) -> dict[str, str]:
    """The tasks' data folders among ``settings``: ``{task: folder}``."""
    return {task: value for (task, key), value in settings.items() if key == DATA_DIR_KEY}


def settings_note(message: str, settings: dict[tuple[str, str], Any]) -> str:
    """For an experiment the file and the command line made invalid together (a check across
    keys, as a selection that needs a count): the ``--set`` options given for the tasks that
    ``message`` names, any key of them, since a check across keys may name another than the one
    set ("" if none)."""
    given = [
        f"{task}.{key}={value if isinstance(value, str) else json.dumps(value)}"
        for (task, key), value in settings.items()
        if f"{task}." in message
    ]
    return f"\n  (with --set {', --set '.join(given)} from the command line)" if given else ""
