"""Progress bars that suit where the output goes.

On a terminal: a live bar (items done, rate, time left). Elsewhere (a CI log, a file): the
same bar redrawn at most every 30 s, in plain characters. Never two bars at once, so no
cursor-movement codes end up in a log.
"""

from __future__ import annotations

import sys


def bar(total: int, desc: str, unit: str = "item", disable: bool = False):
    from tqdm.auto import tqdm

    live = sys.stderr.isatty()
    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        disable=disable,
        dynamic_ncols=live,
        ascii=not live,
        mininterval=0.5 if live else 30.0,
        file=sys.stderr,
    )


def library_bars_only_on_a_terminal() -> None:
    """Turn off transformers', huggingface_hub's and datasets' own bars ("Loading weights",
    "Tokenizing train dataset") when the output is not a terminal: they open inside one of ours,
    where tqdm moves the cursor, and a log would keep every redraw."""
    if sys.stderr.isatty():
        return
    from huggingface_hub.utils import disable_progress_bars
    from transformers.utils import logging as hf_logging

    disable_progress_bars()
    hf_logging.disable_progress_bar()
    if "datasets" in sys.modules:  # imported by training only; not worth importing otherwise
        sys.modules["datasets"].disable_progress_bars()
