"""What `harness bench`, `pytest benchmarks/` and `python -m training` check before any work: the
options (by pytest's own parser, with a did-you-mean), the data, the marker expression; and the
options `harness bench` hands on to training."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness import cli
from harness.cli import bench as bench_command
from harness.plugins.bench_preflight import pytest_arguments
from harness.plugins.legacy_options import ALIASES
from harness.plugins.task_options import DEST
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

    monkeypatch.setattr(bench_command.subprocess, "call", refuse)


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
    given = SimpleNamespace(**{DEST: [("spider", "data_dir", str(tmp_path / "s"))]})
    env = bench_command._training_env(given)
    assert env["HARNESS_SPIDER_DIR"] == str((tmp_path / "s").resolve())
    assert "HARNESS_SPIDER_DIR" not in bench_command._training_env(SimpleNamespace(**{DEST: []}))


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

    monkeypatch.setattr(bench_command.subprocess, "call", fake_call)
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
    bench_command._remove_if_empty(tmp_path / "a")
    bench_command._remove_if_empty(tmp_path / "b")
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


# -- the generic per-task options: --data-dir TASK=PATH, --set TASK.key=value, and their aliases ----


def _settings(*arguments: str) -> dict:
    from harness.plugins.bench_preflight import _parse
    from harness.plugins.task_options import task_settings_of

    return task_settings_of(_parse(["benchmarks/", *arguments]).option)


def _first_task_with(key: str) -> str:
    from harness.tasks import TASKS

    return next(name for name, task in TASKS.items() if key in task.settings_model.model_fields)


@pytest.mark.parametrize("alias", sorted(ALIASES))
def test_each_old_task_option_is_the_generic_one(alias, tmp_path):
    """`--spider-dir D` is `--data-dir spider=D`; `--mmlu-selection full` is `--set mmlu.selection=full`:
    the same settings, and the same experiment once loaded."""
    from harness.config.experiment import Overrides, load_experiment

    task, key = ALIASES[alias]
    value = str(tmp_path / "folder") if key == "data_dir" else "full"
    generic = ["--data-dir", f"{task}={value}"] if key == "data_dir" else ["--set", f"{task}.{key}={value}"]
    assert _settings(alias, value) == _settings(*generic) == {(task, key): value}
    exp = write_tiny_experiment(tmp_path, "m", spider_batch_size=2, per_subject=1)
    loaded = [
        load_experiment(exp, Overrides(settings=_settings(*arguments))).settings(task)
        for arguments in ([alias, value], generic)
    ]
    assert getattr(loaded[0], key) == getattr(loaded[1], key) == value


def test_set_reaches_any_key_of_a_tasks_table_as_its_type(tmp_path):
    from harness.config.experiment import Overrides, load_experiment

    task = _first_task_with("max_new_tokens")
    settings = _settings(
        "--set", f"{task}.max_new_tokens=7", "--set", f"{task}.limit=3", "--limit", f"{task}=9"
    )
    assert settings == {(task, "max_new_tokens"): 7, (task, "limit"): 3}
    exp = write_tiny_experiment(tmp_path, "m", spider_batch_size=2, per_subject=1)
    loaded = load_experiment(exp, Overrides(limits={task: 9}, settings=settings)).settings(task)
    assert loaded.max_new_tokens == 7 and loaded.limit == 3  # --set, the more specific, wins
    # a list, as TOML writes it; the last of two wins
    mmlu_like = _first_task_with("subjects")
    twice = _settings(
        "--set", f'{mmlu_like}.subjects=["anatomy"]', "--set", f'{mmlu_like}.subjects=["virology"]'
    )
    assert twice == {(mmlu_like, "subjects"): ["virology"]}


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--set", "spidr.limit=3"], "--set spidr.limit=3: unknown task 'spidr'; did you mean 'spider'?"),
        (
            ["--set", "mmlu.selction=full"],
            "--set mmlu.selction=full: unknown mmlu setting 'selction'; did you mean 'selection'?",
        ),
        (
            ["--set", "mmlu.selection=ful"],
            "--set mmlu.selection=ful: mmlu.selection: 'ful' is not one of paper, full, per_subject; "
            "did you mean 'full'?",
        ),
        (["--set", "spider.limit=many"], "--set spider.limit=many: spider.limit: expected a whole number"),
        (["--set", "spider.limit"], "--set spider.limit: expected TASK.key=value"),
        (["--data-dir", "spidr=/d"], "--data-dir spidr=/d: unknown task 'spidr'; did you mean 'spider'?"),
        (["--mmlu-selection", "ful"], "--mmlu-selection ful: mmlu.selection: 'ful' is not one of"),
    ],
)
def test_a_bad_task_option_is_one_error_naming_option_task_and_key(
    arguments, message, tmp_path, tiny_experiment, no_training, capsys
):
    rc = _bench(tmp_path, tiny_experiment, *arguments)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 4
    assert len(err) == 1 and message in err[0], err


def test_pytests_data_dir_wants_a_task():
    from harness.plugins.bench_preflight import PreflightError

    with pytest.raises(PreflightError, match="--data-dir /d: expected TASK=PATH"):
        _settings("--data-dir", "/d")


def test_bench_passes_a_tasks_data_dir_on_and_takes_a_bare_folder_for_every_dataset(monkeypatch):
    """`harness bench --data-dir`: TASK=PATH goes on to pytest; a folder (a "=" after a path
    separator is a folder's name) is $HARNESS_DATA_DIR for every step."""
    monkeypatch.delenv("HARNESS_DATA_DIR", raising=False)
    args = SimpleNamespace(data_dir=["spider=s", "./odd=name"])
    assert bench_command._data_dirs(args) == ["--data-dir", "spider=s"]
    assert os.environ["HARNESS_DATA_DIR"] == str(Path("./odd=name").resolve())


def test_the_generic_plugins_name_no_task():
    """A new task needs no edit of the session plugin, the task options or the pre-flight."""
    from harness.tasks import TASKS

    for module in ("session", "task_options", "bench_preflight"):
        text = (ROOT / "harness" / "plugins" / f"{module}.py").read_text()
        named = [name for name in TASKS if re.search(rf"\b{name}\b", text)]
        assert not named, f"harness/plugins/{module}.py names {named}"


def test_the_help_imports_no_model_library():
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, contextlib, io\n"
            "from harness.cli import main\n"
            "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
            "    main(['--help'])\n"
            "print(sorted(m for m in ('torch', 'deepeval', 'transformers') if m in sys.modules))",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=True,
    )
    assert done.stdout.strip() == "[]"


def test_a_setting_the_file_then_refuses_names_the_option_too(tmp_path, tiny_experiment, no_training, capsys):
    """A check across keys (a per-subject selection needs a count) sees the file and the option
    together; the error says the option took part."""
    text = tiny_experiment.read_text().replace("per_subject = 1\n", "")
    tiny_experiment.write_text(text.replace('selection = "per_subject"', 'selection = "paper"'))
    rc = _bench(tmp_path, tiny_experiment, "--set", "mmlu.selection=per_subject")
    err = capsys.readouterr().err
    assert rc == 4
    assert "mmlu.per_subject: must be positive when selection = 'per_subject'" in err
    assert "(with --set mmlu.selection=per_subject from the command line)" in err


@pytest.mark.parametrize("command", [["schema"], ["data", "check"], ["score-spider", "p.sql"]])
def test_a_command_that_passes_nothing_on_refuses_an_unknown_argument(command, capsys):
    """Only bench and train hand arguments on (to pytest, to training); the others name a stray one."""
    with pytest.raises(SystemExit) as stopped:
        cli.main([*command, "--bogus"])
    assert stopped.value.code == 2
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err
