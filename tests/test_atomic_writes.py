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
