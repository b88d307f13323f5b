"""What `harness bench`, `pytest benchmarks/` and `python -m training` check before any work: the
options (by pytest's own parser, with a did-you-mean), the data, the marker expression; and the
options `harness bench` hands on to training."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness import cli
from harness.plugins.bench_preflight import pytest_arguments
from tests.tiny_data import harness_options, write_tiny_experiment

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def tiny_experiment(tmp_path):
    return write_tiny_experiment(tmp_path, "no-model-is-loaded", spider_batch_size=2, per_subject=1)


@pytest.fixture
def no_training(monkeypatch):
    """Fails the test if `harness bench` starts a training run or the benchmarks."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"started a process: {args}")

    monkeypatch.setattr(cli.subprocess, "call", refuse)


def _bench(tmp_path, experiment, *extra):
    return cli.main(["bench", *extra, *harness_options(tmp_path, experiment)])


def test_an_unknown_option_fails_fast_with_a_did_you_mean(tmp_path, tiny_experiment, no_training, capsys):
    start = time.perf_counter()
    rc = _bench(tmp_path, tiny_experiment, "--limt", "5")
    seconds = time.perf_counter() - start
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 4
    assert len(err) == 1 and "unknown option --limt; did you mean '--limit'?" in err[0]
    assert seconds < 10
    assert not (tmp_path / "reports").exists()


def test_a_marker_that_selects_nothing_names_the_markers(tmp_path, tiny_experiment, no_training, capsys):
    rc = _bench(tmp_path, tiny_experiment, "-m", "spidr")
    err = capsys.readouterr().err
    assert rc == 4
    assert "-m 'spidr' selects no benchmark case" in err
    assert "tasks (spider, mmlu)" in err and "variants (base, base-1shot)" in err


def test_no_data_fails_before_any_work_naming_the_fetch_command(tmp_path, monkeypatch, no_training, capsys):
    monkeypatch.setenv("HARNESS_SPIDER_DIR", str(tmp_path / "nowhere"))
    monkeypatch.setenv("HARNESS_MMLU_DIR", str(tmp_path / "nowhere"))
    rc = cli.main(["bench", "--report-dir", str(tmp_path / "reports")])  # the default experiment
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 4
    assert len(err) == 2 and all("`harness data fetch`" in line and "nowhere" in line for line in err)
    assert not (tmp_path / "reports").exists()


def test_deepeval_options_are_taken_off_and_passed_on_as_pytest_has_them():
    extra = ["-n", "2", "--limit", "3", "--display=failing", "-x", "--use-cache", "--color", "no", "-q"]
    assert pytest_arguments(extra) == ["-n", "2", "--limit", "3", "-x", "-q"]


def test_the_data_folders_given_to_bench_reach_training(tmp_path, monkeypatch):
    monkeypatch.delenv("HARNESS_SPIDER_DIR", raising=False)
    env = cli._training_env(SimpleNamespace(spider_dir=str(tmp_path / "s"), mmlu_dir=None))
    assert env["HARNESS_SPIDER_DIR"] == str((tmp_path / "s").resolve())
    assert "HARNESS_SPIDER_DIR" not in cli._training_env(SimpleNamespace(spider_dir=None, mmlu_dir=None))


def test_bench_trains_with_the_spider_dir_it_was_given(tmp_path, monkeypatch, capsys):
    """`harness bench --spider-dir D` runs training in an environment that names D."""
    spider = write_tiny_experiment(tmp_path, "m", spider_batch_size=2, per_subject=1).parent / "spider"
    exp = tmp_path / "ft.toml"
    exp.write_text(
        (tmp_path / "exp.toml").read_text().replace(f'data_dir = "{spider}"\n', "")
        + '\n[[variants]]\nname = "ft"\nadapter = "'
        + str(tmp_path / "adapter")
        + '"\ntrain_config = "training/configs/default.toml"\n'
    )
    monkeypatch.setenv("HARNESS_SPIDER_DIR", str(tmp_path / "nowhere"))
    seen = {}

    def fake_call(cmd, env=None):
        seen["cmd"], seen["env"] = cmd, env
        return 3  # training failed: bench stops there

    monkeypatch.setattr(cli.subprocess, "call", fake_call)
    rc = _bench(tmp_path, exp, "--spider-dir", str(spider))
    assert rc == 3, capsys.readouterr().err
    assert seen["cmd"][1:3] == ["-m", "training"]
    assert seen["env"]["HARNESS_SPIDER_DIR"] == str(spider.resolve())
    assert not (tmp_path / "reports").exists()  # a run that never reached a case leaves no folder


def test_a_run_folder_holding_only_the_command_record_is_removed(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "command.json").write_text("{}")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "command.json").write_text("{}")
    (tmp_path / "b" / "results.jsonl").write_text("")
    cli._remove_if_empty(tmp_path / "a")
    cli._remove_if_empty(tmp_path / "b")
    assert not (tmp_path / "a").exists() and (tmp_path / "b" / "results.jsonl").exists()


def test_training_without_data_fails_before_any_model_work(tmp_path, capsys):
    from training._cli import main as train_main

    os.environ.pop("HARNESS_SPIDER_DIR", None)
    out = tmp_path / "adapter"
    rc = train_main(
        ["--config", "training/configs/default.toml", "--output", str(out), f"spider_dir={tmp_path}"]
    )
    err = capsys.readouterr().err
    assert rc == 2
    assert "no spider data" in err and "`harness data fetch`" in err
    assert list(tmp_path.iterdir()) == []  # no adapter, no .failed folder


def test_pytest_with_a_marker_that_selects_nothing_names_the_markers(tmp_path, tiny_experiment):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "benchmarks/",
            "-m",
            "spidr",
            *harness_options(tmp_path, tiny_experiment),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 4, done.stdout[-2000:]
    assert "selects no benchmark case" in done.stderr and "variants (base, base-1shot)" in done.stderr
