"""The registry of tasks: one entry per benchmark, each a module of this package.

Config, fixtures, report and gates read this table; nothing else names the tasks. Adding a
task is three files: a module here ending in ``TASK = ...`` (see harness/tasks/base.py for the
contract), its name on one line of ``TASK_MODULES`` below, and a thin
``benchmarks/test_<name>.py`` (tests/test_new_task.py does exactly that, and nothing more).
"""

from __future__ import annotations

from harness.deepeval_env import import_deepeval

import_deepeval()  # before the tasks import deepeval: its environment, and no line printed on import

from importlib import import_module  # noqa: E402

from harness.numbers.summary import MEASURE_KINDS, Measure  # noqa: E402
from harness.tasks.base import AnyTask, missing_members  # noqa: E402

# The task modules of this package, one per line, in the order of the report's tables.
TASK_MODULES = (
    "spider",
    "mmlu",
    "text2sql",
)


def _registered(modules: tuple[str, ...]) -> dict[str, AnyTask]:
    tasks: dict[str, AnyTask] = {}
    for module in modules:
        task: AnyTask = import_module(f"{__name__}.{module}").TASK
        if missing := missing_members(task):
            raise TypeError(
                f"harness/tasks/{module}: its TASK lacks {', '.join(missing)} (harness/tasks/base.py)"
            )
        if task.name in tasks:
            raise ValueError(f"harness/tasks/{module}: task name {task.name!r} is taken by another module")
        tasks[task.name] = task
    return tasks


TASKS: dict[str, AnyTask] = _registered(TASK_MODULES)

DEFAULT_TASKS = ("spider", "mmlu")  # what an experiment runs when it names none


def declared_measures() -> dict[str, Measure]:
    """Every task's continuous measures (``Report.measures``), by name: the changes first, then
    the sizes. Two tasks may share a measure only if they declare it alike."""
    out: dict[str, Measure] = {}
    for task in TASKS.values():
        for name, measure in task.report.measures.items():
            if out.setdefault(name, measure) != measure:
                raise ValueError(f"task {task.name!r} declares measure {name!r} unlike another task")
    return dict(sorted(out.items(), key=lambda kv: MEASURE_KINDS.index(kv[1].how)))


def subgroup_fields() -> dict[str, str]:
    """task -> the extra field of its finer grouping (``Report.subgroup_field``), where it has one."""
    return {name: task.report.subgroup_field for name, task in TASKS.items() if task.report.subgroup_field}
