"""What deepeval's own test run records of the experiment (its "hyperparameters")."""

from __future__ import annotations

import pytest

from harness.plugins.deepeval_output import deepeval_run_manager
from harness.plugins.session import experiment_of, has_experiment
from harness.tasks.base import shots_of


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    """deepeval's run records the experiment as its hyperparameters (its convention: the model,
    adapter, load mode, template and shots of each variant), so its summary says what ran."""
    manager = deepeval_run_manager()
    if manager is None or not has_experiment(session.config):
        return
    exp = experiment_of(session.config)
    params: dict[str, str] = {"experiment": exp.name, "experiment file": exp.source}
    for v in exp.variants:
        params[f"{v.name}: model"] = f"{v.model} ({v.load})" + (
            f" + adapter {v.adapter}" if v.adapter else ""
        )
        for task in exp.tasks_of(v):
            settings, options = exp.settings(task), v.options(task)
            shots, label = shots_of(settings, options), settings.prompt_label(options)
            params[f"{v.name}: {task}"] = f"{label}, {shots} shots" if label else f"{shots} shots"
    try:
        from deepeval.test_run.hyperparameters import process_hyperparameters

        manager.get_test_run().hyperparameters = process_hyperparameters(params)
    except (ImportError, TypeError, ValueError, AttributeError):
        return  # another deepeval: its own warning stays
