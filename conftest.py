"""Root conftest: the harness's command-line options, and the fixtures and results plugin.

deepeval reads its settings from the environment when it is first imported. Rewriting its
run file after every case makes ``deepeval test run`` quadratic in the number of cases (86 s
for 1,000 cases, 731 s for 3,000), so the harness keeps deepeval's file system read-only and
collects results itself (harness/plugin.py). The Makefile and the ``harness`` CLI set the same
variables before deepeval starts; these defaults cover a bare ``pytest`` too.
"""

import os

os.environ.setdefault("DEEPEVAL_FILE_SYSTEM", "READ_ONLY")
os.environ.setdefault("DEEPEVAL_TELEMETRY_OPT_OUT", "1")
os.environ.setdefault("DEEPEVAL_DISABLE_DOTENV", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Our metrics are local and deterministic: no helper thread per case to enforce an LLM timeout.
os.environ.setdefault("DEEPEVAL_DISABLE_TIMEOUTS", "1")

pytest_plugins = ["fixtures.session", "fixtures.spider", "fixtures.mmlu", "harness.plugin"]


def _positive_int(text: str) -> int:
    import pytest

    try:
        value = int(text)
    except ValueError:
        raise pytest.UsageError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise pytest.UsageError(f"expected a number >= 0, got {value}")
    return value


def pytest_addoption(parser):
    group = parser.getgroup("harness", "fine-tuning trade-off harness")
    group.addoption("--experiment", default="experiments/default.toml", help="experiment config (TOML)")
    group.addoption("--variant", action="append", default=[], help="run only this variant (repeatable)")
    group.addoption("--model", default=None, help="model of every variant: HF id, local folder or .gguf")
    group.addoption("--load", default=None, help="load mode of every variant: fp32, bf16, int8 or nf4")
    group.addoption("--limit", "--spider-limit", dest="spider_limit", type=_positive_int, default=None,
                    help="Spider items (seeded sample; 0 = the whole split)")
    group.addoption("--spider-dir", default=None, help="Spider folder (official layout)")
    group.addoption("--mmlu-dir", default=None, help="MMLU folder (original CSV layout)")
    group.addoption("--mmlu-selection", default=None, help="paper, full or per_subject")
    group.addoption("--cache-dir", default=None, help="prediction cache folder (default: from the config)")
    group.addoption("--report-dir", default=None, help="where reports/<run-id>/ go (default: from the config)")
    group.addoption("--run-id", default=None, help="name of this run's report folder (default: a timestamp)")
    group.addoption("--gates", default=None, help="gates TOML file (default: from the config; 'none' disables)")
    group.addoption("--deepeval-table-max", type=_positive_int, default=1000,
                    help="largest run for which `deepeval test run` draws its per-case results table (default 1000)")
