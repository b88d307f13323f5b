"""Progress bars that suit where the output goes.

On a terminal: a live bar (items done, rate, time left). Elsewhere (a CI log, a file): the
same bar redrawn at most twice a minute, in plain characters. Never two bars at once, so no
cursor-movement codes end up in a log. A bar never starts on the line of pytest's progress
letters: the pytest plugin registers, with :func:`before_each_bar`, what ends that line.
"""

from __future__ import annotations

import sys

_BEFORE_A_BAR: list = []


def before_each_bar(end_the_line) -> None:
    """Call ``end_the_line()`` before each bar is drawn (the one registered last counts)."""
    _BEFORE_A_BAR[:] = [end_the_line]


def bar(total: int, desc: str, unit: str = "item", disable: bool = False):
    from tqdm.auto import tqdm

    if not disable:
        for end_the_line in _BEFORE_A_BAR:
            end_the_line()

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
    _gguf_conversion_bar_off()


def _gguf_conversion_bar_off() -> None:
    """transformers' GGUF conversion draws its tqdm bar whatever its own progress-bar switch says."""
    try:
        from transformers import modeling_gguf_pytorch_utils as gguf_utils
    except ImportError:  # no gguf package: no GGUF conversion
        return
    from functools import partial

    from tqdm.auto import tqdm

    current = getattr(gguf_utils, "tqdm", None)
    if current is not None and current is tqdm:  # not replaced already
        gguf_utils.tqdm = partial(current, disable=True)
