"""A pytest-native harness that measures what fine-tuning buys (Spider) and costs (MMLU)."""

from harness.models import noise as _noise

_noise.install()  # before anything imports bitsandbytes (harness/models/noise.py says why)
