"""What ``harness bench`` checks before it trains or loads anything: the command line as deepeval
and pytest will read it, the experiment with its overrides, the data, and the marker expression.

The arguments for the benchmarks are parsed by pytest's own parser, with the same plugins and
conftest a run loads (deepeval's options are taken off first, as ``deepeval test run`` does), so
an option neither knows fails here, in seconds, with a did-you-mean, instead of after training.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from harness.config.experiment import (
    ConfigError,
    ExperimentConfig,
)
from harness.configfile import suggestion
from harness.plugins.session import checked_experiment, describe_markers, overrides_of, selected_variants

# `deepeval test run`'s own options (deepeval/cli/test/command.py), each with whether it takes a
# value; what it does not know goes to pytest.
DEEPEVAL_OPTIONS = {
    "--exit-on-first-failure": False,
    "-x": False,
    "-X": False,
    "--show-warnings": False,
    "-w": False,
    "-W": False,
    "--identifier": True,
    "-id": True,
    "--num-processes": True,
    "-n": True,
    "--repeat": True,
    "-r": True,
    "--use-cache": False,
    "-c": False,
    "--ignore-errors": False,
    "-i": False,
    "--skip-on-missing-params": False,
    "-s": False,
    "--verbose": False,
    "-v": False,
    "--display": True,
    "-d": True,
    "--mark": True,
    "-m": True,
    "--official": False,
    "-o": False,
    "--color": True,
    "--durations": True,
    "--pdb": False,
}
# deepeval hands these to pytest under pytest's name.
_TO_PYTEST = {"-n": "-n", "--num-processes": "-n", "-x": "-x", "--exit-on-first-failure": "-x"}


class PreflightError(ValueError):
    """The command line, the experiment or the data would fail the run: one message, nothing done."""


@dataclass(frozen=True)
class Preflight:
    experiment: ExperimentConfig
    options: Any  # pytest's option namespace (model, load, limit, run_id, report_dir, ...)
    variants: tuple  # the variants the marker expression selects


def pytest_arguments(extra: list[str]) -> list[str]:
    """``extra`` as pytest receives it from ``deepeval test run``: deepeval's own options off,
    those it passes on (``-n``, ``-x``) under pytest's names."""
    out: list[str] = []
    i = 0
    while i < len(extra):
        arg = extra[i]
        name, eq, value = arg.partition("=")
        if name in DEEPEVAL_OPTIONS:
            takes = DEEPEVAL_OPTIONS[name]
            if takes and not eq:
                value = extra[i + 1] if i + 1 < len(extra) else ""
                i += 1
            if name in _TO_PYTEST:
                out += [_TO_PYTEST[name], value] if takes else [_TO_PYTEST[name]]
        else:
            out.append(arg)
        i += 1
    return out


def _unrecognized(message: str, known: list[str]) -> str:
    """pytest's "unrecognized arguments: --limt 5" as one line per option, with a did-you-mean."""
    _, _, rest = message.rpartition("unrecognized arguments:")
    words = rest.split("\n")[0].split()
    options = [w.split("=")[0] for w in words if w.startswith("-")]
    if not options:
        return message.strip().splitlines()[-1]
    return (
        "; ".join(f"unknown option {o}{suggestion(o, known)}" for o in options)
        + " (harness bench --help; pytest benchmarks/ --help lists the harness's options)"
    )


def _parse(arguments: list[str]):
    from _pytest.config import get_config

    config = get_config(list(arguments))
    try:
        config.parse(list(arguments))
    except pytest.UsageError as e:
        text = str(e)
        if "unrecognized arguments" in text:
            parser = getattr(config._parser, "optparser", None)
            known = list(getattr(parser, "_option_string_actions", {})) + list(DEEPEVAL_OPTIONS)
            raise PreflightError(_unrecognized(text, known)) from None
        raise PreflightError(text.strip().splitlines()[-1]) from None
    finally:
        config._ensure_unconfigure()
    return config


def preflight(extra: list[str], *, experiment: str, variants: list[str], mark: str | None) -> Preflight:
    """Everything ``harness bench`` can check before any work, or PreflightError."""
    arguments = ["benchmarks/", "--experiment", experiment, *pytest_arguments(extra)]
    for name in variants:
        arguments += ["--variant", name]
    config = _parse(arguments)
    try:
        exp = checked_experiment(experiment, overrides_of(config))
    except ConfigError as e:
        raise PreflightError(str(e)) from None
    chosen = selected_variants(exp, mark)
    if not chosen:
        raise PreflightError(f"-m {mark!r} selects no benchmark case; {describe_markers(exp)}")
    return Preflight(exp, config.option, tuple(chosen))
