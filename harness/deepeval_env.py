"""deepeval's environment, in one place.

No telemetry from this offline harness; no .env file of the user's read behind their back; no
helper thread per case to enforce an LLM timeout (the harness's metrics are local and
deterministic): variables deepeval reads when it is first imported.

No file written by deepeval: it would rewrite its run file after every case (quadratic in the
number of cases; harness/plugins/results.py collects results). deepeval's own read-only mode
(``DEEPEVAL_FILE_SYSTEM=READ_ONLY``) prints a warning line whenever it is imported, in every
process, so that every run's output would open with it; instead the harness takes the
permission away in the process once deepeval is imported (:func:`make_deepeval_read_only`):
the modules that write decide at import whether they may, by importing a file lock or not.
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping

DEEPEVAL_ENV = {
    "DEEPEVAL_TELEMETRY_OPT_OUT": "1",
    "DEEPEVAL_DISABLE_DOTENV": "1",
    "DEEPEVAL_DISABLE_TIMEOUTS": "1",
    "TOKENIZERS_PARALLELISM": "false",
}

# deepeval's modules that write files, each only when it imported ``portalocker``.
_WRITERS = (
    "deepeval.test_run.test_run",
    "deepeval.test_run.cache",
    "deepeval.evaluate.local_store",
    "deepeval.prompt.prompt",
)


def apply_deepeval_env(env: MutableMapping[str, str] = os.environ) -> MutableMapping[str, str]:
    """Set each variable unless the user set it; returns ``env``. On this process's own
    environment, deepeval's modules already imported (pytest imports deepeval's plugin before
    any conftest) are made read-only too."""
    for key, value in DEEPEVAL_ENV.items():
        env.setdefault(key, value)
    if env is os.environ:
        make_deepeval_read_only()
    return env


def make_deepeval_read_only() -> list[str]:
    """deepeval's modules imported so far write nothing more; returns their names."""
    withdrawn = []
    for name in _WRITERS:
        module = sys.modules.get(name)
        if module is not None and getattr(module, "portalocker", None) is not None:
            vars(module)["portalocker"] = None  # a module attribute no stub declares
            withdrawn.append(name)
    return withdrawn


def import_deepeval() -> None:
    """Import deepeval with the harness's environment, read-only. Call before any
    ``from deepeval ...``. Its import prints nothing to stdout (it would land in every
    redirected output, such as ``python -m harness.config.experiment > schema.json``)."""
    import contextlib
    import io

    apply_deepeval_env()
    if "deepeval.test_run" not in sys.modules:
        with contextlib.redirect_stdout(io.StringIO()):
            import deepeval.test_run  # noqa: F401
    make_deepeval_read_only()
