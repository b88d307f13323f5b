"""``--log-samples``: ``samples/<task>-<variant>.jsonl`` in the run folder, one line per case:
what the model saw, said and scored (like lm-eval's --log_samples)."""

from __future__ import annotations

import json
from typing import IO

import pytest

from harness.plugins.session import run_dir_of
from harness.records.results import CaseSpec, case_ref

SAMPLES_KEY = pytest.StashKey[dict[tuple[str, str], IO[str]]]()  # (task, variant) -> its open file here
AUTO_SAMPLES_MAX = 10_000


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Decide whether this process writes samples (``--log-samples``; auto: small runs only)."""
    choice = config.getoption("log_samples", "off")
    n_cases = sum(1 for item in items if case_ref(item) is not None)
    on = choice == "on" or (choice == "auto" and 0 < n_cases <= AUTO_SAMPLES_MAX)
    if on and n_cases:
        config.stash[SAMPLES_KEY] = {}


def pytest_sessionfinish(session: pytest.Session) -> None:
    for f in session.config.stash.get(SAMPLES_KEY, {}).values():
        f.close()


def write_sample(item: pytest.Item, spec: CaseSpec, verdict: dict, outcome: str) -> None:
    """One line of ``samples/<task>-<variant>[.gwK].jsonl``: what the model saw, said and scored."""
    files = item.config.stash.get(SAMPLES_KEY, None)
    ref = case_ref(item)
    if files is None or ref is None or spec.test_case is None:
        return
    key = (ref.task, ref.variant)
    if key not in files:
        worker = getattr(item.config, "workerinput", {}).get("workerid")
        path = (
            run_dir_of(item.config)
            / "samples"
            / f"{ref.task}-{ref.variant}{'.' + worker if worker else ''}.jsonl"
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        files[key] = open(path, "a", encoding="utf-8")
    case = spec.test_case
    record = {
        "case": ref.case_id,
        "task": ref.task,
        "variant": ref.variant,
        "item_id": ref.item_id,
        "input": case.input,
        **dict(spec.sample),
        "prediction": spec.prediction,
        "gold": case.expected_output,
        "outcome": outcome,
        "reason": verdict.get("reason", ""),
    }
    files[key].write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
