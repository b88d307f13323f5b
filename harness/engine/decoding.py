"""The batched decoding loop that serves every generating task: :func:`generate_batch`.

Greedy continuations of one left-padded batch, each row stopping where the task's stop rule says
(Spider: at the end of the SQL) or at ``max_new_tokens``; on a CUDA device with a static cache, the
captured-step loop of harness/engine/static_decoding.py instead.
"""

from __future__ import annotations

from collections.abc import Sequence

from harness.engine.core import GenerationSettings, StopRule
from harness.engine.static_decoding import generate_static, wants_static


def _stopping_criteria(tokenizer, prompt_length: int, stop: StopRule | None, on_step):
    """A transformers ``StoppingCriteria``: one flag per row, so finished rows stop (get
    padding) while the batch goes on; ``on_step(done_rows)`` reports progress every step."""
    import torch
    from transformers import StoppingCriteria

    class RowComplete(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            new = input_ids[:, prompt_length:]
            if stop is None:
                flags = [False] * new.shape[0]
            else:
                texts = tokenizer.batch_decode(new, skip_special_tokens=True)
                flags = [stop.is_complete(t) for t in texts]
            if on_step is not None:
                on_step(new.shape[1], flags)
            return torch.tensor(flags, device=input_ids.device)

    return RowComplete()


def generate_batch(
    model, tokenizer, prompts: Sequence[str], settings: GenerationSettings, on_step=None
) -> list[str]:
    """Greedy continuations of ``prompts`` (one left-padded batch), cut at the stop point.

    ``on_step(step, flags)`` is called after every decoding step with the rows' stop flags.
    """
    import torch
    from transformers import StoppingCriteriaList

    if wants_static(model):  # a static cache and a captured step: not bound by kernel launches
        return generate_static(
            model,
            tokenizer,
            prompts,
            max_new_tokens=settings.max_new_tokens,
            stop=settings.stop,
            add_special_tokens=settings.add_special_tokens,
            on_step=on_step,
        )
    enc = tokenizer(
        list(prompts), return_tensors="pt", padding=True, add_special_tokens=settings.add_special_tokens
    )
    enc = enc.to(model.device)
    prompt_length = enc["input_ids"].shape[1]
    criteria = None
    if settings.stop is not None or on_step is not None:
        criteria = StoppingCriteriaList(
            [_stopping_criteria(tokenizer, prompt_length, settings.stop, on_step)]
        )
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    with torch.inference_mode():
        out = model.generate(
            **enc,
            max_new_tokens=settings.max_new_tokens,
            do_sample=False,
            num_beams=1,
            pad_token_id=pad_id,
            stopping_criteria=criteria,
        )
    return tokenizer.batch_decode(out[:, prompt_length:], skip_special_tokens=True)
