"""The run's last screen, in parts: deepeval writes nothing, skips are counted by reason, and a
progress bar starts on a line of its own. (A real run's whole output: tests/test_benchmarks_e2e.py.)"""

from __future__ import annotations

import sys
from types import SimpleNamespace

from harness import deepeval_env, progress
from harness.plugins.last_screen import skip_lines
from harness.records.results import case_result


def test_deepeval_modules_imported_before_the_harness_write_nothing(monkeypatch):
    writer = SimpleNamespace(portalocker=object())
    monkeypatch.setitem(sys.modules, "deepeval.test_run.test_run", writer)
    assert "deepeval.test_run.test_run" in deepeval_env.make_deepeval_read_only()
    assert writer.portalocker is None
    assert deepeval_env.make_deepeval_read_only() == []


def test_the_environment_has_no_read_only_switch_that_would_print_on_every_import():
    env = deepeval_env.apply_deepeval_env({})
    assert "DEEPEVAL_FILE_SYSTEM" not in env and env["DEEPEVAL_TELEMETRY_OPT_OUT"] == "1"


ABSENT = "database 'wta_1' absent"


def test_skips_are_one_line_per_task_and_reason_with_a_count():
    rows = [
        case_result({"variant": v, "task": "spider", "item_id": str(i)}, "skipped", ABSENT)
        for v in ("base", "ft")
        for i in range(3)
    ]
    rows.append(case_result({"variant": "base", "task": "mmlu", "item_id": "9"}, "skipped", ""))
    rows.append(case_result({"variant": "base", "task": "mmlu", "item_id": "8"}, "wrong", "B, answer A"))
    assert skip_lines(rows) == [
        "harness: skipped 1 mmlu case(s): (no reason given)",
        "harness: skipped 6 spider case(s): database 'wta_1' absent",
    ]


def test_a_bar_ends_the_line_of_progress_letters_first(monkeypatch):
    ended = []
    monkeypatch.setattr(progress, "_BEFORE_A_BAR", [])
    progress.before_each_bar(lambda: ended.append(True))
    with progress.bar(1, "test", disable=True):
        pass
    assert ended == []
    with progress.bar(1, "test") as b:
        b.update(1)
    assert ended == [True]


def test_no_gguf_conversion_bar_off_a_terminal(monkeypatch):
    from transformers import modeling_gguf_pytorch_utils as gguf_utils

    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    monkeypatch.setattr(gguf_utils, "tqdm", gguf_utils.tqdm)  # restored after the test
    progress.library_bars_only_on_a_terminal()
    bar = gguf_utils.tqdm(range(3), desc="Converting and de-quantizing GGUF tensors...")
    assert bar.disable
