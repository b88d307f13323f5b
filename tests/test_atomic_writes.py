"""A write that fails (a full disk) leaves the old file or none, no temporary file, and one line
naming the path."""

from __future__ import annotations

import builtins
import errno
import io
from pathlib import Path

import pytest

from harness import files
from harness.files import OutputError, atomic_write, write_json


class _FullDisk(io.StringIO):
    def write(self, text):
        raise OSError(errno.ENOSPC, "No space left on device")


@pytest.fixture()
def full_disk(monkeypatch):
    real_open = builtins.open

    def fake_open(path, mode="r", *args, **kwargs):
        if "w" in mode and Path(path).name.endswith(".tmp"):
            real_open(path, mode, *args, **kwargs).close()  # the file exists, as it would
            return _FullDisk()
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", fake_open)


def test_a_full_disk_leaves_no_results_json_and_says_one_line(tmp_path, full_disk):
    target = tmp_path / "run" / "results.json"
    with pytest.raises(OutputError) as caught:
        write_json(target, {"cases": [1, 2, 3]})
    message = str(caught.value)
    assert message == f"cannot write {target}: No space left on device"
    assert caught.value.errno == errno.ENOSPC
    assert sorted(p.name for p in target.parent.iterdir()) == []


def test_a_failed_rewrite_keeps_the_old_file(tmp_path, monkeypatch):
    target = atomic_write(tmp_path / "report.md", "old\n")

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", no_space)
    with pytest.raises(OutputError, match="report.md: No space left on device"):
        atomic_write(target, "new\n")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]


def test_a_folder_that_cannot_be_made_is_one_line(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match=r"cannot write .*file/sub/x.json: "):
        write_json(tmp_path / "file" / "sub" / "x.json", {})


FULL_DISK_PLUGIN = """
import builtins, errno

_open = builtins.open


class _Full:
    def __init__(self, f):
        self.f = f

    def write(self, text):
        raise OSError(errno.ENOSPC, "No space left on device")

    def __getattr__(self, name):
        return getattr(self.f, name)


def fake_open(path, mode="r", *args, **kwargs):
    f = _open(path, mode, *args, **kwargs)
    return _Full(f) if str(path).endswith("results.jsonl") and "a" in mode else f


def pytest_configure(config):
    builtins.open = fake_open
"""


def test_a_full_disk_mid_run_is_one_line_and_no_results_json(tmp_path, tiny_model_dir):
    import json
    import os
    import subprocess
    import sys

    from tests.test_task_text2sql import ROWS, make_db
    from tests.tiny_data import harness_options

    root = Path(__file__).resolve().parents[1]
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "full_disk.py").write_text(FULL_DISK_PLUGIN)
    make_db(tmp_path / "dbs" / "music.sqlite")
    questions = tmp_path / "q.jsonl"
    questions.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    exp = tmp_path / "exp.toml"
    exp.write_text(
        f'[experiment]\nname = "own"\ntasks = ["text2sql"]\ngates = ""\n\n'
        f'[text2sql]\npath = "{questions}"\ndatabases = "{tmp_path / "dbs"}"\nmax_new_tokens = 4\n\n'
        f'[[variants]]\nname = "base"\nmodel = "{tiny_model_dir}"\n'
    )
    env = {
        **os.environ,
        "HARNESS_CACHE_DIR": str(tmp_path / "hcache"),
        "PYTHONPATH": f"{root}{os.pathsep}{tmp_path / 'plugins'}",
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "benchmarks/",
            "-p",
            "full_disk",
            *harness_options(tmp_path, exp, "full"),
        ],
        cwd=root,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 3, out[-3000:]
    run_dir = tmp_path / "reports" / "full"
    assert f"harness: cannot write {run_dir / 'results.jsonl'}: No space left on device" in out
    assert "Traceback" not in out and "INTERNALERROR" not in out
    assert not (run_dir / "results.json").exists()
