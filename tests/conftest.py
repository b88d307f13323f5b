"""Shared builders of tiny test data for the harness's unit tests."""

import pytest

from tests.tiny_model import build_tiny_model


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny random Llama model folder (config, safetensors, tokenizer with chat template)."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))
