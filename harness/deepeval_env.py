"""The environment deepeval reads when it is first imported, in one place.

No telemetry from this offline harness; no run file rewritten after every case (that rewrite
makes a run quadratic in its number of cases; harness/plugin.py collects results); no .env
file of the user's read behind their back; no helper thread per case to enforce an LLM timeout
(the harness's metrics are local and deterministic).
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

DEEPEVAL_ENV = {
    "DEEPEVAL_FILE_SYSTEM": "READ_ONLY",
    "DEEPEVAL_TELEMETRY_OPT_OUT": "1",
    "DEEPEVAL_DISABLE_DOTENV": "1",
    "DEEPEVAL_DISABLE_TIMEOUTS": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


def apply_deepeval_env(env: MutableMapping[str, str] = os.environ) -> MutableMapping[str, str]:
    """Set each variable unless the user set it; returns ``env``."""
    for key, value in DEEPEVAL_ENV.items():
        env.setdefault(key, value)
    return env


def import_deepeval() -> None:
    """Import deepeval with the harness's environment, without the line it prints to stdout on
    import in a read-only environment (it would land in every redirected output, such as
    ``python -m harness.config > schema.json``). Call before any ``from deepeval ...``."""
    import contextlib
    import io
    import sys

    apply_deepeval_env()
    if "deepeval.test_run" in sys.modules:
        return
    with contextlib.redirect_stdout(io.StringIO()):
        import deepeval.test_run  # noqa: F401
