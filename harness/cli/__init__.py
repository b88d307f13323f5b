"""The harness command: one module per command (data, bench, train, score-spider, schema).

It sits above the harness library and the training package: training runs as its own process
(python -m training), as it does under torchrun, so nothing here imports it. ``harness --help``
imports no model library: each command imports what it needs when it runs.
"""

from __future__ import annotations

import sys

from harness.cli.parser import build_parser

__all__ = ["build_parser", "main"]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "passes_arguments_on", False):
        (getattr(args, "command_parser", None) or parser).error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return args.func(args, extra)
    except (ValueError, RuntimeError, OSError) as e:  # config, data and model errors carry their own message
        print(f"harness: error: {e}", file=sys.stderr)
        return 2
