"""A pytest-native harness that measures what fine-tuning buys (Spider) and costs (MMLU)."""

from harness import noise as _noise

_noise.install()  # before anything imports bitsandbytes (harness/noise.py says why)
