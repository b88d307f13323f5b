"""The registry of tasks: one entry per benchmark, each a module of this package.

Config, fixtures, report and gates read this table; nothing else names the tasks. Adding a
task: a module here ending in ``TASK = ...`` (see harness/tasks/base.py for the shape), one
line below, and a thin ``benchmarks/test_<name>.py``.
"""

from __future__ import annotations

from harness.deepeval_env import import_deepeval

import_deepeval()  # before the tasks import deepeval: its environment, and no line printed on import

from harness.configfile import unknown  # noqa: E402
from harness.numbers.summary import Measure  # noqa: E402
from harness.tasks import mmlu, spider, text2sql  # noqa: E402
from harness.tasks.base import AnyTask  # noqa: E402

TASKS: dict[str, AnyTask] = {
    spider.TASK.name: spider.TASK,
    mmlu.TASK.name: mmlu.TASK,
    text2sql.TASK.name: text2sql.TASK,
}

DEFAULT_TASKS = ("spider", "mmlu")  # what an experiment runs when it names none


def get_task(name: str) -> AnyTask:
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(unknown("task", name, TASKS)) from None


_MEASURE_ORDER = ("paired", "kl", "mean")  # changes first, then sizes


def declared_measures() -> dict[str, Measure]:
    """Every task's continuous measures (``Report.measures``), by name: the changes first, then
    the sizes. Two tasks may share a measure only if they declare it alike."""
    out: dict[str, Measure] = {}
    for task in TASKS.values():
        for name, measure in task.report.measures.items():
            if out.setdefault(name, measure) != measure:
                raise ValueError(f"task {task.name!r} declares measure {name!r} unlike another task")
    return dict(sorted(out.items(), key=lambda kv: _MEASURE_ORDER.index(kv[1].how)))


def subgroup_fields() -> dict[str, str]:
    """task -> the extra field of its finer grouping (``Report.subgroup_field``), where it has one."""
    return {name: task.report.subgroup_field for name, task in TASKS.items() if task.report.subgroup_field}
