"""Options of earlier versions that named a task, kept so old command lines still work.

Each is an alias of a generic option (harness/plugins/task_options.py): ``--spider-dir D`` is
``--data-dir spider=D``, ``--mmlu-selection full`` is ``--set mmlu.selection=full``. A new task
needs no entry here; an entry whose task is no longer registered is simply not offered.
"""

from __future__ import annotations

# option -> (task, key of the task's experiment table)
ALIASES: dict[str, tuple[str, str]] = {
    "--spider-dir": ("spider", "data_dir"),
    "--mmlu-dir": ("mmlu", "data_dir"),
    "--mmlu-selection": ("mmlu", "selection"),
}
