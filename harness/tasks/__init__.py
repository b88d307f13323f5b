"""The registry of tasks: one entry per benchmark, each a module of this package.

Config, fixtures, report and gates read this table; nothing else names the tasks. Adding a
task: a module here ending in ``TASK = ...`` (see harness/tasks/base.py for the shape), one
line below, and a thin ``benchmarks/test_<name>.py``.
"""

from __future__ import annotations

from harness.deepeval_env import import_deepeval

import_deepeval()  # before the tasks import deepeval: its environment, and no line printed on import

from harness.configfile import unknown  # noqa: E402
from harness.tasks import mmlu, spider, text2sql  # noqa: E402
from harness.tasks.base import Task  # noqa: E402

TASKS: dict[str, Task] = {
    spider.TASK.name: spider.TASK,
    mmlu.TASK.name: mmlu.TASK,
    text2sql.TASK.name: text2sql.TASK,
}

DEFAULT_TASKS = ("spider", "mmlu")  # what an experiment runs when it names none


def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(unknown("task", name, TASKS)) from None
