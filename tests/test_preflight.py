"""Run ids and run folders checked before anything is written, one run per id at a time, and
the experiment's problems caught once before the first case (harness/plugins/preflight.py)."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness.cli import main as harness_main
from harness.plugins.preflight import (
    PreflightError,
    check_before_first_case,
    release_run_locks,
    safetensors_problem,
)
from harness.records.run_folder import RUN_ID_MAX, RunFolderError, RunLock, check_run_id, is_locked
from tests.tiny_data import harness_options

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _release():
    yield
    release_run_locks()


@pytest.mark.parametrize(
    "run_id, message",
    [
        ("/tmp/x", "not a path"),
        ("../../x", "not a path"),
        ("ok\n", "not a path"),
        ("a\tb", "not a path"),
        (".hidden", "not a path"),
        ("", "not a path"),
        ("x" * (RUN_ID_MAX + 1), f"{RUN_ID_MAX + 1} characters, at most {RUN_ID_MAX}"),
    ],
)
def test_a_run_id_that_is_not_a_plain_name_is_refused_in_one_line(run_id, message):
    with pytest.raises(RunFolderError, match=message) as caught:
        check_run_id(run_id)
    assert "\n" not in str(caught.value)


def test_plain_run_ids_pass():
    for run_id in ("20260101-120000-ab12", "ft_v2.1", "a" * RUN_ID_MAX):
        assert check_run_id(run_id) == run_id


@pytest.mark.parametrize("run_id", ["/tmp/x", "../../x", "ok\n", "y" * 300])
def test_harness_bench_refuses_a_bad_run_id_before_writing_anything(tmp_path, run_id, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exp = tmp_path / "exp.toml"
    exp.write_text('[experiment]\nname = "x"\n[[variants]]\nname = "base"\nmodel = "m"\n')
    before = sorted(p for p in tmp_path.rglob("*"))
    rc = harness_main(
        ["bench", "--experiment", str(exp), "--run-id", run_id, "--report-dir", str(tmp_path / "r")]
    )
    err = capsys.readouterr().err
    assert rc == 4 and err.count("\n") == 1 and "--run-id" in err  # a usage error, as pytest says
    assert sorted(p for p in tmp_path.rglob("*")) == before
    assert not Path("/tmp/x/command.json").exists() or run_id != "/tmp/x"


def test_one_run_per_folder_at_a_time(tmp_path):
    run_dir = tmp_path / "reports" / "r1"
    first = RunLock(run_dir).acquire()
    assert is_locked(run_dir)
    with pytest.raises(RunFolderError, match="another run is writing into this folder now"):
        RunLock(run_dir).acquire()
    # Another process sees it too.
    probe = "import sys; from harness.records.run_folder import is_locked; print(is_locked(sys.argv[1]))"
    out = subprocess.run(
        [sys.executable, "-c", probe, str(run_dir)], capture_output=True, text=True, cwd=ROOT
    )
    assert out.stdout.strip() == "True"
    first.release()
    assert not is_locked(run_dir)
    RunLock(run_dir).acquire().release()


def _exp(tmp_path, variants=(), tasks=("spider",)):
    return SimpleNamespace(source=str(tmp_path / "exp.toml"), variants=tuple(variants), tasks=tuple(tasks))


def _variant(name, adapter):
    return SimpleNamespace(name=name, adapter=str(adapter))


def _adapter(folder: Path, *, weights: bytes | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "adapter_config.json").write_text('{"peft_type": "LORA"}')
    (folder / "training_summary.json").write_text('{"status": "succeeded"}')
    header = json.dumps({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}).encode()
    whole = struct.pack("<Q", len(header)) + header + bytes(16)
    (folder / "adapter_model.safetensors").write_bytes(whole if weights is None else weights)
    return folder


def test_a_good_experiment_passes_and_takes_the_run_folder(tmp_path):
    adapter = _adapter(tmp_path / "ad")
    run_dir = tmp_path / "reports" / "r"
    check_before_first_case(_exp(tmp_path, [_variant("ft", adapter)]), run_dir, tmp_path / "cache")
    assert is_locked(run_dir) and (tmp_path / "cache").is_dir()
    with pytest.raises(PreflightError, match="another run"):
        check_before_first_case(_exp(tmp_path, [_variant("ft", adapter)]), run_dir, tmp_path / "cache")


def test_an_empty_experiment_is_refused(tmp_path):
    with pytest.raises(PreflightError, match="exp.toml: no variants to measure"):
        check_before_first_case(_exp(tmp_path), tmp_path / "r", tmp_path / "c")
    with pytest.raises(PreflightError, match="exp.toml: no tasks to run"):
        check_before_first_case(_exp(tmp_path, [_variant("b", "")], tasks=()), tmp_path / "r", tmp_path / "c")


@pytest.mark.parametrize(
    "file, text, message",
    [
        (
            "training_summary.json",
            '{"status": "succ',
            "training_summary.json: variant 'ft': training summary is not readable JSON",
        ),
        (
            "adapter_config.json",
            "[1, 2]",
            "adapter_config.json: variant 'ft': adapter config is not a JSON object",
        ),
        (
            "adapter_config.json",
            "{",
            "adapter_config.json: variant 'ft': adapter config is not readable JSON",
        ),
    ],
)
def test_a_broken_adapter_file_is_named(tmp_path, file, text, message):
    adapter = _adapter(tmp_path / "ad")
    (adapter / file).write_text(text)
    with pytest.raises(PreflightError, match=message):
        check_before_first_case(_exp(tmp_path, [_variant("ft", adapter)]), tmp_path / "r", tmp_path / "c")


def test_truncated_adapter_weights_are_named(tmp_path):
    adapter = _adapter(tmp_path / "ad")
    weights = adapter / "adapter_model.safetensors"
    assert safetensors_problem(weights) is None
    weights.write_bytes(weights.read_bytes()[:-5])
    with pytest.raises(
        PreflightError, match="adapter_model.safetensors: variant 'ft': adapter weights are truncated"
    ):
        check_before_first_case(_exp(tmp_path, [_variant("ft", adapter)]), tmp_path / "r", tmp_path / "c")
    weights.write_bytes(b"\x01")
    assert "truncated" in safetensors_problem(weights)
    weights.write_bytes(struct.pack("<Q", 4) + b"nope")
    assert "unreadable header" in safetensors_problem(weights)


def test_unusable_report_and_cache_folders_are_one_line(tmp_path):
    exp = _exp(tmp_path, [_variant("b", "")])
    with pytest.raises(PreflightError, match="/dev/null/cache: the cache folder .* cannot be written"):
        check_before_first_case(exp, tmp_path / "r", Path("/dev/null/cache"))
    with pytest.raises(PreflightError, match="/proc/reports/r: cannot use it as the run folder"):
        check_before_first_case(exp, Path("/proc/reports/r"), tmp_path / "c")


def test_pytest_benchmarks_stops_once_before_the_first_case(tmp_path):
    """An empty experiment (and any pre-flight problem) is one usage error, exit status 4."""
    exp = tmp_path / "exp.toml"
    exp.write_text('[experiment]\nname = "empty"\ngates = ""\n')
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "benchmarks/", *harness_options(tmp_path, exp, "r")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "HARNESS_CACHE_DIR": str(tmp_path / "hcache")},
        timeout=300,
    )
    assert done.returncode == 4, done.stdout[-2000:] + done.stderr[-2000:]
    assert "no variants to measure" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr
