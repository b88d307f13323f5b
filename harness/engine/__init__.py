"""Answering a task's requests in batches through the cache: generation, log-likelihoods, shards."""
