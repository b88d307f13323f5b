"""Answering a task's requests in batches through the cache: generation, log-likelihoods, shards.

Importing the package registers the default backend, Hugging Face models from the model pool
(harness.engine.hf_backend), as ``"hf"`` in harness.models.backends.
"""

from harness.engine import hf_backend as hf_backend
