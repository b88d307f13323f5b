"""Checks of a loaded experiment against the machine, before any model is converted or trained:
its data is there, its adapters belong to their variants' base models; and what a ``--model``
override left alone.
"""

from __future__ import annotations

from pathlib import Path

from harness.configfile import ConfigError
from harness.data.sources import DataNotFound, locate
from harness.models.loading import ModelLoadError, check_adapter_base, is_local_adapter


def required_data(exp) -> dict[str, str | None]:
    """The datasets the experiment's tasks read from disk, each with its configured folder."""
    needs: dict[str, str | None] = {}
    if "spider" in exp.tasks:
        needs["spider"] = exp.settings("spider").data_dir or None
    if "mmlu" in exp.tasks and exp.settings("mmlu").source != "hub":
        needs["mmlu"] = exp.settings("mmlu").data_dir or None
    return needs


def check_data(exp) -> None:
    """ConfigError, one line per dataset the experiment needs and the harness cannot find (where
    it looked, and the command that fetches it), before any model is converted or trained."""
    problems = []
    for name, explicit in required_data(exp).items():
        try:
            locate(name, explicit, option=f"--data-dir {name}=PATH")
        except DataNotFound as e:
            problems.append(str(e))
    if problems:
        raise ConfigError("\n".join(problems))


def check_adapters(exp) -> None:
    """ConfigError, one line per variant whose adapter (a folder already there) was trained on
    another base model than the variant's: refused before any case, naming both."""
    problems = []
    for v in exp.variants:
        if (
            v.adapter
            and is_local_adapter(v.adapter, v.adapter_revision or None)
            and (Path(v.adapter) / "adapter_config.json").is_file()
        ):
            try:
                check_adapter_base(v.name, v.model, v.adapter, v.adapter)
            except ModelLoadError as e:
                problems.append(str(e))
    if problems:
        raise ConfigError("\n".join(problems))


def model_note(exp) -> str:
    """What a --model override did not change, and why (empty when it changed every variant)."""
    if not exp.model_left_alone:
        return ""
    return (
        f"--model applies to the variants without an adapter; left alone, on the base their adapter "
        f"was trained on: {', '.join(exp.model_left_alone)}"
    )
