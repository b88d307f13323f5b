"""Where a run writes: a staging folder next to the output, moved into place only on success.

An adapter at the output path is never touched by a run that fails or diverges: the new
adapter is written into a hidden staging folder beside it, and only a complete, successful
one replaces it (rename the old one aside, rename the new one in, then delete the old one).
A failed run leaves its summary in ``<output>.failed/training_summary.json`` instead.

The run's checkpoints (``checkpoints/<fraction>/``) are written inside the staging folder too,
so they appear with the run's final adapter or not at all: a killed run leaves only a hidden
staging folder, which the next run beside it deletes (:func:`recover`).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from harness.config.training import failed_dir
from harness.files import write_json
from harness.models.adapters import SUMMARY_NAME

__all__ = [
    "SUMMARY_NAME",
    "OutputError",
    "failed_dir",
    "check_output",
    "make_staging",
    "recover",
    "publish",
    "record_failure",
    "discard",
]


class OutputError(RuntimeError):
    """The output path cannot take an adapter; the message names it and the fix."""


def check_output(output: Path) -> None:
    """Refuse an output path that holds something other than an adapter of ours: replacing
    it on success would delete a folder this recipe did not write."""
    if output.exists() and not output.is_dir():
        raise OutputError(f"output {str(output)!r} is a file; give a folder for the adapter")
    if output.is_dir() and any(output.iterdir()):
        ours = (output / "adapter_config.json").is_file() or (output / SUMMARY_NAME).is_file()
        if not ours:
            raise OutputError(
                f"output {str(output)!r} is a non-empty folder "
                f"without adapter_config.json or {SUMMARY_NAME}; "
                "a successful run would replace it, so choose another --output or empty it"
            )


def make_staging(output: Path) -> Path:
    """A fresh hidden folder beside ``output`` (same file system, so the final move is a rename)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    recover(output)
    staging = output.with_name(f".{output.name}.staging-{os.getpid()}-{time.time_ns()}")
    staging.mkdir()
    return staging


def recover(output: Path) -> None:
    """Clean up after a run that was killed (no ``finally`` ran): delete its staging folder, and
    if it died between the two renames of :func:`publish`, put the earlier adapter back."""
    for kind in ("old", "staging"):
        for path in sorted(output.parent.glob(f".{output.name}.{kind}-*")):
            pid = path.name.rsplit(f".{kind}-", 1)[-1].split("-")[0]
            if not pid.isdigit() or _alive(int(pid)):
                continue
            if kind == "old" and not output.exists():
                os.rename(path, output)
            else:
                shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def portable_adapter_configs(folder: Path) -> None:
    """Make every adapter_config.json under ``folder`` name its base model as it can be found
    elsewhere: the hub id and the commit trained on (for the default model, the hub model its GGUF
    file was made from), or the name the config gave; never a path into this machine's cache.

    The base comes from the run's training summary (``base_model``), written beside the adapter.
    """
    try:
        base = json.loads((folder / SUMMARY_NAME).read_text(encoding="utf-8")).get("base_model") or {}
    except (OSError, ValueError):
        return
    name = base.get("hub_id") or base.get("name")
    if not name:
        return
    for path in folder.rglob("adapter_config.json"):
        config = json.loads(path.read_text(encoding="utf-8"))
        config["base_model_name_or_path"] = name
        config["revision"] = base.get("revision") if base.get("hub_id") else None
        write_json(path, config, indent=2)


def publish(staging: Path, output: Path) -> None:
    """Move the complete adapter in ``staging`` to ``output``, replacing any earlier one; its
    adapter configs name the base portably first (:func:`portable_adapter_configs`).

    The earlier adapter is renamed aside first and deleted only once the new one is in place;
    if the second rename fails, it is put back.
    """
    portable_adapter_configs(staging)
    old = None
    if output.exists():
        old = output.with_name(f".{output.name}.old-{os.getpid()}-{time.time_ns()}")
        os.rename(output, old)
    try:
        os.rename(staging, output)
    except BaseException:
        if old is not None:
            os.rename(old, output)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    stale = failed_dir(output)
    if stale.is_dir():  # an earlier failure's report no longer describes what is at ``output``
        shutil.rmtree(stale, ignore_errors=True)


def record_failure(output: Path, summary: dict) -> Path:
    """Write a failed run's summary to ``<output>.failed/``, leaving ``output`` as it was."""
    target = failed_dir(output)
    target.mkdir(parents=True, exist_ok=True)
    path = target / SUMMARY_NAME
    write_json(path, summary)
    return path


def discard(staging: Path | None) -> None:
    if staging is not None and staging.exists():
        shutil.rmtree(staging, ignore_errors=True)
