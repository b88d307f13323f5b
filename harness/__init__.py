"""A pytest-native harness that measures what fine-tuning buys (Spider) and costs (MMLU)."""
