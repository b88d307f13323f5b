"""The command line of ``harness``: the top-level help, and each command's parser from its module."""

from __future__ import annotations

import argparse

from harness.cli import bench, data, schema, score_spider, train

DESCRIPTION = """\
Measure what fine-tuning buys (Spider execution accuracy) and what it costs (MMLU accuracy).

commands:
  data           fetch the evaluation data (Spider, MMLU) and check a data folder
  bench          train the adapters the experiment needs and lacks, run the benchmarks, write the report
  train          train adapters from a training config (python -m training)
  score-spider   score a file of Spider dev predictions, one SQL query per line
  schema         print the experiment file's JSON Schema

examples:
  harness data fetch                               # Spider and MMLU into ./data ($HARNESS_DATA_DIR)
  harness data check                               # is the data there, complete, the known release?
  harness bench                                    # the default experiment (make bench)
  harness bench -m "spider and base" --limit 20    # 20 Spider items, the base variant only
  harness bench --experiment experiments/paper_full.toml -n 8    # the whole study on a GPU
  harness train --config training/configs/default.toml --max-steps 5
  harness score-spider reports/<run-id>/predictions/ft.spider.sql
  harness schema > experiment.schema.json          # for an editor's TOML completion
"""

COMMANDS = (data, bench, train, score_spider, schema)  # in the order --help lists them


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="harness", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    names = ",".join(command.NAME for command in COMMANDS)
    sub = parser.add_subparsers(dest="command", required=True, metavar=f"{{{names}}}")
    for command in COMMANDS:
        command.add_parser(sub)
    _mark_commands(parser)
    return parser


def _mark_commands(parser: argparse.ArgumentParser) -> None:
    """Each (sub)command's parser in its own defaults, so that an error about its arguments
    shows its usage line (``harness schema [-h] ...``), not the top-level one."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command_parser in action.choices.values():
                command_parser.set_defaults(command_parser=command_parser)
                _mark_commands(command_parser)
