"""Which gates a run checks, and the check of the gates file before any model is loaded.

Which gates: ``--gates PATH``, else the experiment's ``gates`` key; ``--gates none`` (or an
empty ``gates`` key) checks none. The file is validated while the benchmark files are
collected, so a bad file stops the run before any model is loaded. A gate on a (variant, task)
that did not run fails, unless the selection was narrowed on purpose (-m, -k, --variant, a file
or node argument): then it is skipped with a notice (harness/report/gates.py).
"""

from __future__ import annotations

import pytest

from harness.plugins.session import experiment_of, gates_path_of, has_experiment, is_worker, run_dir_of
from harness.records.run_folder import holds_a_run
from harness.report.gates_file import Gates, GatesError, load_gates

GATES_CHECKED_KEY = pytest.StashKey[str]()  # "" when the gates file is valid, else the error


def load_gates_of(config: pytest.Config) -> Gates | None:
    """The validated gates of this run, or None; raises ``harness.report.gates_file.GatesError``."""
    path = gates_path_of(config)
    if not path:
        return None
    # A gate may name a variant that --variant left out (it is then skipped as filtered), but
    # not one the file lacks.
    return load_gates(path, variants=list(experiment_of(config).declared_variants))


def narrowed_by(config: pytest.Config) -> str:
    """How the user narrowed this run's selection ("" if not): options and file/node args."""
    how = []
    for option, flag in [("markexpr", "-m"), ("keyword", "-k")]:
        value = config.getoption(option, "")
        if value:
            how.append(f"{flag} {value!r}")
    if config.getoption("variant", None):
        how.append(" ".join(f"--variant {v}" for v in config.getoption("variant")))
    if config.getoption("deselect", None):
        how.append("--deselect")
    if config.getoption("lf", False):
        how.append("--last-failed")
    args = [a for a in config.args if "::" in a or a.endswith(".py")]
    if args:
        how.append("the arguments " + " ".join(args))
    return ", ".join(how)


@pytest.hookimpl(trylast=True)
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Check the gates file and the run folder while the benchmark files are collected (they
    load the experiment in their own ``pytest_generate_tests``, which runs before this one), so
    that a bad file is a collection error that stops the run before any model is loaded, on
    xdist workers too. Unit-test sessions never load the experiment and never get here."""
    config = metafunc.config
    if not has_experiment(config):
        return
    if GATES_CHECKED_KEY not in config.stash:
        problem = ""
        try:
            load_gates_of(config)
        except GatesError as e:
            problem = str(e)
        if not problem and not is_worker(config) and holds_a_run(run_dir_of(config)):
            problem = (
                f"{run_dir_of(config)} already holds a run; give another --run-id (or none, for a new "
                "timestamped folder), or remove that folder"
            )
        config.stash[GATES_CHECKED_KEY] = problem
    if config.stash[GATES_CHECKED_KEY]:
        raise pytest.Collector.CollectError(config.stash[GATES_CHECKED_KEY])  # shown without a traceback
