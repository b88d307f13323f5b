"""Root conftest: the harness's pytest plugins, and deepeval's environment.

deepeval reads its settings from the environment when it is first imported. Rewriting its
run file after every case makes ``deepeval test run`` quadratic in the number of cases, so the
harness makes deepeval read-only and collects results itself (harness/plugins/results.py,
harness/deepeval_env.py). The ``harness`` CLI sets the same variables before deepeval starts, and
``.env`` holds the telemetry opt-out for a bare ``deepeval test run`` (deepeval reads it on
import); this call covers a bare ``pytest`` and makes deepeval's modules, which pytest imported
before this file, read-only.

The plugins: harness.plugins.session (options, experiment, run folder, xdist workers), harness.plugins.results
(results, report, gates, exit status, the run's last screen), harness.plugins.speedups (measured speed-ups
of pytest's and deepeval's per-case work; ``-p no:harness.plugins.speedups`` switches it off),
harness.plugins.deepeval_output (deepeval's own end of run, off unless ``--deepeval-table``), and the
fixtures.
"""

from harness.deepeval_env import apply_deepeval_env

apply_deepeval_env()

pytest_plugins = [
    "harness.plugins.session",
    "harness.plugins.results",
    "harness.plugins.speedups",
    "harness.plugins.deepeval_output",
    "fixtures.session",
    "fixtures.cases",
]
