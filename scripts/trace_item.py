"""Which files of this repository a task's items pass through, end to end.

Runs one task's benchmark file on a tiny model and tiny data (the unit tests' own, built in a
temporary folder) under pytest, with this file as a plugin that records every function of the
repository called from pytest's configuration to the last screen (imports left out), then
prints those files by package, the task's own first. The SQL sandbox's worker process is not traced;
its files are listed apart, from its module's imports.

    .venv/bin/python scripts/trace_item.py            # Spider
    .venv/bin/python scripts/trace_item.py mmlu
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import subprocess
import sys
import tempfile
import threading
import tomllib
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRACE_ENV = "HARNESS_TRACE_OUT"
WORKER = "harness/sql/sandbox_worker.py"

_seen: set[str] = set()


def _profile(frame, event, arg):
    if event == "call" and frame.f_code.co_name != "<module>":
        path = frame.f_code.co_filename
        if path.startswith(str(ROOT)) and "/.venv/" not in path and "/scripts/" not in path:
            _seen.add(os.path.relpath(path, ROOT))


def pytest_configure(config) -> None:
    sys.setprofile(_profile)
    threading.setprofile(_profile)


def pytest_unconfigure(config) -> None:
    sys.setprofile(None)
    threading.setprofile(None)
    Path(os.environ[TRACE_ENV]).write_text("".join(f"{p}\n" for p in sorted(_seen)))


def _imports(path: Path) -> set[str]:
    """The repository modules ``path`` imports, as file paths."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            for candidate in (f"{name.replace('.', '/')}.py", f"{name.replace('.', '/')}/__init__.py"):
                if name.startswith("harness") and (ROOT / candidate).exists():
                    found.add(candidate)
    return found


def _closure(start: str) -> set[str]:
    done: set[str] = set()
    todo = [start]
    while todo:
        path = todo.pop()
        if path not in done:
            done.add(path)
            todo += sorted(_imports(ROOT / path) - done)
    return {p for p in done if not p.endswith("__init__.py")} | {start}


def _task_alone(experiment: Path, task: str) -> None:
    """The tiny experiment cut to ``task``'s table and one variant: no other task's settings
    are checked and no other task's data is looked for."""
    tiny = tomllib.loads(experiment.read_text())
    table = "\n".join(f"{key} = {json.dumps(value)}" for key, value in tiny[task].items())
    model = json.dumps(tiny["variants"][0]["model"])
    experiment.write_text(
        f'[experiment]\nname = "trace"\nbaseline = "base"\ngates = ""\ntasks = ["{task}"]\n\n'
        f'[{task}]\n{table}\n\n[[variants]]\nname = "base"\nmodel = {model}\n'
    )


def _package(path: str) -> str:
    parts = path.split("/")
    return "/".join(parts[:2]) + "/" if parts[0] == "harness" and len(parts) > 2 else parts[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("task", nargs="?", default="spider", choices=("spider", "mmlu"))
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from tests.tiny_data import harness_options, write_tiny_experiment
    from tests.tiny_model import build_tiny_model

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        experiment = write_tiny_experiment(
            tmp, build_tiny_model(tmp / "model"), spider_batch_size=2, per_subject=2
        )
        _task_alone(experiment, args.task)
        out = tmp / "trace.txt"
        env = {
            **os.environ,
            TRACE_ENV: str(out),
            "HARNESS_CACHE_DIR": str(tmp / "hcache"),
            "PYTHONPATH": os.pathsep.join([str(ROOT / "scripts"), str(ROOT)]),
        }
        command = [sys.executable, "-m", "pytest", "-p", "trace_item", f"benchmarks/test_{args.task}.py"]
        command += [*harness_options(tmp, experiment, "trace"), "-q"]
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            print(done.stdout[-3000:] + done.stderr[-3000:], file=sys.stderr)
            return done.returncode
        traced = out.read_text().split()

    by_package: dict[str, list[str]] = defaultdict(list)
    for path in traced:
        package = _package(path)
        by_package[package].append(path.removeprefix(package).lstrip("/") or path)
    own = [
        p
        for p in traced
        if f"/{args.task}/" in p or Path(p).stem.startswith((args.task, f"test_{args.task}"))
    ]
    print(f"{args.task}, one variant on tiny data: {len(traced)} files run code in the pytest process")
    print(f"  the task's own: {', '.join(own)}")
    for package, names in by_package.items():
        print(f"  {package} ({len(names)}): {', '.join(names)}")
    if args.task == "spider":
        worker = sorted(_closure(WORKER) - set(traced))
        print(
            f"  and the SQL sandbox's worker process: {WORKER} and {len(worker) - 1} more it imports: ",
            end="",
        )
        print(", ".join(Path(p).name for p in worker if p != WORKER))
    return 0


if __name__ == "__main__":
    sys.exit(main())
