"""``harness train``: the training package's own command line (python -m training), as a process."""

from __future__ import annotations

import argparse
import subprocess
import sys

NAME = "train"


def run(args: argparse.Namespace, extra: list[str]) -> int:
    return subprocess.call([sys.executable, "-m", "training", *extra])


def add_parser(sub) -> None:
    train = sub.add_parser(
        NAME, help="train adapters from a training config (python -m training)", add_help=False
    )
    train.set_defaults(func=run, passes_arguments_on=True)
