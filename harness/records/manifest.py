"""A run's manifest: everything needed to tell two runs' numbers apart (code, libraries, machine,
the prediction phases' own records), as ``results.json`` keeps it under ``manifest``."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path

from harness.files import file_sha256

LIBRARIES = (
    "torch",
    "transformers",
    "peft",
    "trl",
    "bitsandbytes",
    "accelerate",
    "deepeval",
    "pytest",
    "pytest-xdist",
    "statsmodels",
)


def library_versions(names: Sequence[str] = LIBRARIES) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def read_phases(run_dir: Path) -> dict[str, dict]:
    """The prediction phases' own records (``phases/<task>-<variant>.json``), by name.
    An unreadable file is kept as ``{"unreadable": reason}``, never dropped silently."""
    out: dict[str, dict] = {}
    for path in sorted((run_dir / "phases").glob("*.json")):
        try:
            out[path.stem] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            out[path.stem] = {"unreadable": f"{type(e).__name__}: {e}"}
    return out


def _git_commit(cwd: Path) -> str | None:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip() or None


def _sha256(path: str) -> str | None:
    try:
        return file_sha256(Path(path))
    except OSError:
        return None


def _devices(phases: Mapping[str, dict]) -> list[str]:
    found = {str(p["device"]) for p in phases.values() if isinstance(p, dict) and p.get("device")}
    torch = sys.modules.get("torch")  # only if the run already imported it: no import here
    if not found and torch is not None:
        found.add("cuda" if torch.cuda.is_available() else "cpu")
    return sorted(found)


def collect_manifest(
    run_dir: Path,
    *,
    run_id: str,
    experiment: Mapping,
    gates_file: str,
    command: Sequence[str],
    started: float,
    finished: float,
    command_record: Mapping | None = None,
) -> dict:
    """Everything needed to tell two runs' numbers apart: code, libraries, machine, phases; and,
    under ``harness bench``, the whole command's time and its parts (``command_record``)."""
    phases = read_phases(run_dir)
    return {
        "run_id": run_id,
        "experiment": {**experiment, "sha256": _sha256(experiment.get("source", ""))},
        "gates_file": gates_file,
        "command": list(command),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(finished)),
        "wall_s": round(finished - started, 2),
        "git_commit": _git_commit(Path.cwd()),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "libraries": library_versions(),
        "devices": _devices(phases),
        "phases": phases,
        "bench": dict(command_record or {}),
    }
