"""The default backend: Hugging Face models from the model pool answer the engine's requests.

Registered as ``"hf"`` (harness.models.backends) when harness.engine is imported.
"""

from __future__ import annotations

from collections.abc import Sequence

from harness.engine.batch_fitting import resolved_batch_size, split_on_oom
from harness.engine.core import GenerationSettings, LoglikSettings, ModelSpec
from harness.engine.decoding import generate_batch
from harness.engine.loglik import ChoiceScores, Divergence, kl_to_base, score_choices
from harness.models.backends import hf_settings, register_backend
from harness.models.pool import ModelPool


def _rows_done(tick):
    """A ``generate_batch`` step callback that ticks the bar as rows of the batch stop."""
    if tick is None:
        return None
    done = [0]

    def on_step(step: int, flags: list[bool]) -> None:
        finished = sum(flags)
        if finished > done[0]:
            tick(finished - done[0])
            done[0] = finished

    return on_step


class HFBackend:
    """What computes the engine's answers: Hugging Face models from the pool, in batches.

    A stand-in with the same two methods (tests, the scoring-scale benchmark) makes the engine
    cache answers that no model computed."""

    def __init__(self, pool: ModelPool):
        self.pool = pool

    def generate(
        self, variant: ModelSpec, prompts: list[str], settings: GenerationSettings, tick=None
    ) -> list[str]:
        tokenizer = self.pool.tokenizer(variant)
        with self.pool.activated(variant) as model:
            return split_on_oom(
                lambda rows: generate_batch(model, tokenizer, rows, settings, _rows_done(tick)),
                prompts,
                fitted=self.pool.fitted_batches if settings.fitted_key else None,
                key=settings.fitted_key,
            )

    def score_choices(
        self,
        variant: ModelSpec,
        requests: list[tuple[str, str]],
        choices: Sequence[Sequence[str]],
        settings: LoglikSettings,
        tick=None,
    ) -> list[ChoiceScores]:
        tokenizer = self.pool.tokenizer(variant)
        with self.pool.activated(variant) as model:
            reuse = settings.reuse_prefix == "on" or (
                settings.reuse_prefix == "auto" and model.device.type == "cpu"
            )

            def score(rows: list[int], batch_size: int) -> list[ChoiceScores]:
                return score_choices(
                    model,
                    tokenizer,
                    [requests[i] for i in rows],
                    [choices[i] for i in rows],
                    batch_size=batch_size,
                    max_batch_tokens=settings.max_batch_tokens,
                    reuse_prefix=reuse,
                    on_batch=tick,
                )

            return self._fitting(score, len(requests), settings)

    def _fitting(self, compute, n: int, settings: LoglikSettings) -> list:
        """``compute(rows, batch_size)`` over rows ``0..n-1``: at once at the settings' batch size,
        or, for "auto" on CUDA (``fitted_key``), in chunks of the size that fits (split_on_oom)."""
        rows = list(range(n))
        if not settings.fitted_key:
            return compute(rows, resolved_batch_size(settings.batch_size))
        return split_on_oom(
            lambda chunk: compute(chunk, len(chunk)),
            rows,
            size=resolved_batch_size(settings.batch_size),
            fitted=self.pool.fitted_batches,
            key=settings.fitted_key,
        )

    def kl_to_base(
        self, variant: ModelSpec, pairs: list[tuple[str, str]], settings: LoglikSettings, tick=None
    ) -> list[Divergence]:
        tokenizer = self.pool.tokenizer(variant)
        with self.pool.activated(variant, unmerged=True) as model:  # the base: adapter disabled
            return self._fitting(
                lambda rows, batch_size: kl_to_base(
                    model,
                    tokenizer,
                    [pairs[i] for i in rows],
                    batch_size=batch_size,
                    max_batch_tokens=settings.max_batch_tokens,
                    on_batch=tick,
                ),
                len(pairs),
                settings,
            )


register_backend("hf", HFBackend, hf_settings)
