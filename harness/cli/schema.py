"""``harness schema``: the experiment file's JSON Schema, generated from the config models.

The schema is not kept in the repository: it follows the task registry and the config models,
so it is printed when wanted (an editor's TOML completion, a CI check of other files).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

NAME = "schema"


def schema_text() -> str:
    from harness.config.experiment import json_schema  # the task registry: deepeval, torch

    return json.dumps(json_schema(), indent=1) + "\n"


def run(args: argparse.Namespace, extra: list[str]) -> int:
    text = schema_text()
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"harness schema: {args.output}")
    else:
        print(text, end="")
    return 0


def add_parser(sub) -> None:
    schema = sub.add_parser(
        NAME,
        help="print the experiment file's JSON Schema",
        description="Print the JSON Schema of an experiment file (experiments/*.toml), generated "
        "from the config models and the registered tasks: every key, its type, default and choices.",
    )
    schema.add_argument("--output", "-o", default=None, help="write it to this file instead")
    schema.set_defaults(func=run)
