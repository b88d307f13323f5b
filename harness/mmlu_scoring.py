"""Answer an MMLU question with a model: letter log-likelihoods (the standard) or generation (the paper's).

``loglik``: the log-probability of each continuation " A" .. " D" after the prompt, from one
forward pass per question (the letters are single tokens, so the last position's logits hold
all four), exactly the numbers lm-evaluation-harness's HF backend computes. The questions of a
subject share a long prefix (description and shots); we run it once, keep its KV cache and run
only each question's own tokens on top of it, which is where most of the time went.

``generate``: greedy decoding of a couple of tokens, then :func:`first_letter`, as the paper did.
"""

from __future__ import annotations

import copy
import inspect
import math
from dataclasses import dataclass
from typing import Callable, Sequence

from harness.data.mmlu import MMLUItem
from harness.prompts import mmlu_prompt_parts

LETTERS = ("A", "B", "C", "D")
_CONTINUATION_DELIMITER = " "  # lm-eval scores " A", not "A", after "Answer:"


class PromptTooLongError(ValueError):
    """A question does not fit the model's context even without shots; the message names it."""


class LetterTokenError(ValueError):
    """An answer letter is not a single token after the prompt, so one forward pass cannot score it."""


# --- the paper's generate mode ---------------------------------------------------------------


def first_letter(text: str) -> str:
    """The paper's answer extraction: the first non-whitespace character, uppercased.

    It may be no letter at all ("S" of "Sure", "(" ...), which then scores as wrong; "" for an
    empty or all-whitespace output.
    """
    stripped = text.lstrip()
    return stripped[0].upper() if stripped else ""


# --- fitting the prompt into the context -----------------------------------------------------


@dataclass(frozen=True)
class FittedPrompt:
    """A prompt that fits the model, with how many of the requested shots it kept."""

    prefix: str
    suffix: str
    shots_used: int
    shots_requested: int
    n_tokens: int

    @property
    def prompt(self) -> str:
        return self.prefix + self.suffix

    @property
    def shots_dropped(self) -> int:
        return self.shots_requested - self.shots_used


def fit_shots(
    item: MMLUItem,
    shots: Sequence[MMLUItem],
    count_tokens: Callable[[str], int],
    max_tokens: int,
    *,
    reserve: int = 1,
) -> FittedPrompt:
    """The prompt with as many of ``shots`` (a prefix of them, in order) as fit in ``max_tokens``,
    leaving ``reserve`` tokens for the answer (1 for loglik, ``max_new_tokens`` for generate).

    Never truncates text: a prompt that is too long loses whole shots from the end, and the
    result says how many were kept so the report can show it. A question that does not fit
    even with no shots raises :class:`PromptTooLongError` naming the item.
    """
    return fit_prompts([(item, shots)], lambda texts: [count_tokens(t) for t in texts], max_tokens, reserve=reserve)[0]


def fit_prompts(
    requests: Sequence[tuple[MMLUItem, Sequence[MMLUItem]]],
    count_tokens: Callable[[Sequence[str]], list[int]],
    max_tokens: int,
    *,
    reserve: int = 1,
) -> list[FittedPrompt]:
    """:func:`fit_shots` for many (question, shots) pairs, counting tokens a batch at a time:
    every prompt with all its shots first, then those that did not fit with one shot fewer,
    and so on (``count_tokens`` maps a list of texts to their token counts)."""
    fitted: list[FittedPrompt | None] = [None] * len(requests)
    kept = [len(shots) for _, shots in requests]
    pending = list(range(len(requests)))
    while pending:
        parts = [mmlu_prompt_parts(requests[i][0], requests[i][1][: kept[i]]) for i in pending]
        counts = count_tokens([prefix + suffix for prefix, suffix in parts])
        too_long = []
        for i, (prefix, suffix), n_tokens in zip(pending, parts, counts):
            item, shots = requests[i]
            if n_tokens + reserve <= max_tokens:
                fitted[i] = FittedPrompt(prefix, suffix, kept[i], len(shots), n_tokens)
            elif kept[i] == 0:
                raise PromptTooLongError(
                    f"{item.item_id}: the 0-shot prompt is {n_tokens} tokens; with {reserve} reserved for the answer "
                    f"it exceeds the model's context of {max_tokens} tokens"
                )
            else:
                kept[i] -= 1
                too_long.append(i)
        pending = too_long
    return fitted


def context_length(model, tokenizer=None, default: int = 2048) -> int:
    """The model's context in tokens, found as lm-evaluation-harness finds it: the config's
    ``n_positions`` / ``max_position_embeddings`` / ``n_ctx``, else the tokenizer's
    ``model_max_length`` when it is a real number, else ``default``."""
    config = getattr(model, "config", None)
    for attr in ("n_positions", "max_position_embeddings", "n_ctx"):
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int) and 0 < limit < 1_000_000_000:
        return limit
    return default


# --- loglik scoring --------------------------------------------------------------------------


@dataclass(frozen=True)
class LetterScores:
    """The log-probabilities of " A" .. " D" after one prompt, and what they pick."""

    logprobs: tuple[float, float, float, float]
    prompt_tokens: int  # tokens the model read for this prompt
    reused_tokens: int  # of which this many came from a shared prefix's cache

    @property
    def letter(self) -> str:
        """The argmax; on a tie the earlier letter, as numpy.argmax in lm-eval."""
        best = max(range(4), key=lambda i: (self.logprobs[i], -i))
        return LETTERS[best]

    def logprob(self, letter: str) -> float:
        return self.logprobs[LETTERS.index(letter)]


def _encode(tokenizer, text: str, **kwargs) -> list[int]:
    return list(tokenizer(text, **kwargs)["input_ids"])


def _letter_token_ids(tokenizer, suffix: str) -> tuple[int, int, int, int]:
    """The token of each continuation " A" .. " D" after ``suffix``, found as lm-eval finds a
    continuation: encode context + continuation and take what follows the context's tokens."""
    context = _encode(tokenizer, suffix, add_special_tokens=False)
    ids = []
    for letter in LETTERS:
        whole = _encode(tokenizer, suffix + _CONTINUATION_DELIMITER + letter, add_special_tokens=False)
        if whole[: len(context)] != context or len(whole) != len(context) + 1:
            raise LetterTokenError(
                f"{_CONTINUATION_DELIMITER + letter!r} after {suffix[-20:]!r} is not one token for this tokenizer "
                f"(got {whole[len(context) - 1:]}); use mmlu_scoring = 'generate' for this model"
            )
        ids.append(whole[-1])
    return tuple(ids)  # type: ignore[return-value]


def _common_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


@dataclass
class _Request:
    index: int
    tokens: list[int]  # the whole prompt, exactly as encoded in one piece
    letter_ids: tuple[int, int, int, int]
    shared: int = 0  # leading tokens taken from the group's prefix cache


def _model_device(model):
    return next(model.parameters()).device


def _accepts_logits_to_keep(model) -> bool:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model  # PEFT wraps the model
    return "logits_to_keep" in inspect.signature(base.forward).parameters


def _score_rows(model, rows: list[_Request], past=None) -> list[LetterScores]:
    """One forward pass over ``rows`` (each row's tokens after ``shared``), right-padded.

    Right padding needs no padding mask (the mask we pass is all ones): causal attention never
    lets a real token see the padding after it, and positions count on from the cached prefix (``cache_position``) the
    same for every row. We then read each row's logits at its own last real token.
    """
    import torch

    device = _model_device(model)
    tails = [r.tokens[r.shared :] for r in rows]
    width = max(len(t) for t in tails)
    pad = 0  # never attended to, so any id works
    input_ids = torch.tensor([t + [pad] * (width - len(t)) for t in tails], device=device)
    last = [len(t) - 1 for t in tails]
    # An all-ones mask, explicit so transformers does not warn about the padding it cannot see.
    seen = (past.get_seq_length() if past is not None else 0) + width
    kwargs = {"input_ids": input_ids, "attention_mask": torch.ones(len(rows), seen, dtype=torch.long, device=device)}
    if past is not None:
        kwargs.update(past_key_values=past, use_cache=True)
    else:
        kwargs["use_cache"] = False
    keep = sorted(set(last))
    if _accepts_logits_to_keep(model):
        # Only the last position of each row needs the (vocabulary-wide) output layer.
        kwargs["logits_to_keep"] = torch.tensor(keep, device=device)
        column = {pos: i for i, pos in enumerate(keep)}
    else:
        column = {pos: pos for pos in keep}
    logits = model(**kwargs).logits
    picked = logits[torch.arange(len(rows), device=device), torch.tensor([column[p] for p in last], device=device)]
    logprobs = torch.log_softmax(picked.float(), dim=-1)
    letter_ids = torch.tensor([r.letter_ids for r in rows], device=device)
    chosen = logprobs.gather(1, letter_ids).tolist()
    return [LetterScores(tuple(c), len(r.tokens), r.shared) for c, r in zip(chosen, rows)]


def _repeat_cache(prefix_cache, n: int):
    """A fresh copy of a batch-1 prefix cache, repeated ``n`` times along the batch (the forward
    pass appends the suffixes' keys to it, so the shared one must stay untouched)."""
    cache = copy.deepcopy(prefix_cache)
    if n > 1:
        cache.batch_repeat_interleave(n)
    return cache


def _batches(rows: list[_Request], batch_size: int, max_batch_tokens: int):
    """Longest first, at most ``batch_size`` rows and ``max_batch_tokens`` padded tokens a batch.

    MMLU lengths have a long tail (a 0-shot history question is ten times the median), so a
    fixed row count pads short rows up to a long one: 30% of the work at 8 rows on the paper's
    sample. The token cap keeps long rows in small batches; sorting keeps neighbours alike.
    """
    rows = sorted(rows, key=lambda r: len(r.tokens) - r.shared, reverse=True)
    i = 0
    while i < len(rows):
        longest = len(rows[i].tokens) - rows[i].shared
        n = 1
        while i + n < len(rows) and n < batch_size and (n + 1) * longest <= max_batch_tokens:
            n += 1
        yield rows[i : i + n]
        i += n


def score_letters_loglik(
    model,
    tokenizer,
    requests: Sequence[tuple[str, str]],
    *,
    batch_size: int = 8,
    progress: bool = True,
    reuse_prefix: bool = True,
    min_shared_tokens: int = 32,
    max_batch_tokens: int = 2048,
) -> list[LetterScores]:
    """Score each ``(prefix, suffix)`` request: the log-probabilities of " A" .. " D" after
    ``prefix + suffix``, as lm-evaluation-harness computes them, in request order.

    Requests with the same ``prefix`` string form a group. The tokens the group's prompts share
    are found on the token sequences themselves (each prompt encoded in one piece, as lm-eval
    encodes it), so the tokens the model reads are exactly the full prompt's tokens, whatever the
    tokenizer does at the prefix/suffix boundary (a BPE often merges "\\n\\n" differently there).
    When a group shares at least ``min_shared_tokens`` tokens and holds two or more requests,
    the shared part runs once and its KV cache is reused for every batch of the group;
    everything else (e.g. 0-shot prompts, whose shared description is a dozen tokens) is batched
    across groups without a cache. A batch holds at most ``batch_size`` prompts and
    ``max_batch_tokens`` tokens counting padding (raise it on a GPU).
    """
    import torch
    from tqdm.auto import tqdm

    if batch_size < 1 or max_batch_tokens < 1:
        raise ValueError(f"batch_size and max_batch_tokens must be >= 1, got {batch_size} and {max_batch_tokens}")
    groups: dict[str, list[_Request]] = {}
    for i, (prefix, suffix) in enumerate(requests):
        req = _Request(i, _encode(tokenizer, prefix + suffix), _letter_token_ids(tokenizer, suffix))
        groups.setdefault(prefix, []).append(req)

    cached_groups: list[tuple[list[int], list[_Request]]] = []
    uncached: list[_Request] = []
    for prefix, reqs in groups.items():
        shared = 0
        if reuse_prefix and len(reqs) > 1:
            prefix_tokens = _encode(tokenizer, prefix)
            # At least one token of every prompt must be left to run on top of the cache.
            shared = min(min(_common_prefix_length(prefix_tokens, r.tokens), len(r.tokens) - 1) for r in reqs)
        if shared >= max(min_shared_tokens, 1):
            for r in reqs:
                r.shared = shared
            cached_groups.append((reqs[0].tokens[:shared], reqs))
        else:
            uncached.extend(reqs)

    results: list[LetterScores | None] = [None] * len(requests)
    device = _model_device(model)
    bar = tqdm(total=len(requests), desc="MMLU loglik", unit="q", disable=not progress)
    with torch.inference_mode():
        for shared_tokens, reqs in cached_groups:
            keep = {"logits_to_keep": 1} if _accepts_logits_to_keep(model) else {}
            prefix_out = model(input_ids=torch.tensor([shared_tokens], device=device), use_cache=True, **keep)
            for batch in _batches(reqs, batch_size, max_batch_tokens):
                past = _repeat_cache(prefix_out.past_key_values, len(batch))
                for r, s in zip(batch, _score_rows(model, batch, past)):
                    results[r.index] = s
                bar.update(len(batch))
        for batch in _batches(uncached, batch_size, max_batch_tokens):
            for r, s in zip(batch, _score_rows(model, batch)):
                results[r.index] = s
            bar.update(len(batch))
    bar.close()
    missing = [i for i, s in enumerate(results) if s is None or any(math.isnan(x) for x in s.logprobs)]
    if missing:
        raise RuntimeError(f"MMLU loglik scoring produced no finite scores for requests {missing[:10]}")
    return results  # type: ignore[return-value]


# --- the paper's generate mode, batched ------------------------------------------------------


def generate_letters(
    model,
    tokenizer,
    prompts: Sequence[str],
    *,
    batch_size: int = 8,
    max_new_tokens: int = 2,
    progress: bool = True,
) -> list[str]:
    """Greedy continuations of each prompt (raw text, special tokens dropped), in prompt order.

    Batches are length-sorted and left-padded, so every row's new tokens start at the same
    column. Pass the outputs to :func:`first_letter` for the paper's answer.
    """
    import torch
    from tqdm.auto import tqdm

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad_id is None:
        raise ValueError("the tokenizer has neither a pad nor an end-of-sequence token to pad batches with")
    device = _model_device(model)
    encoded = [_encode(tokenizer, p) for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]), reverse=True)
    outputs: list[str] = [""] * len(prompts)
    with torch.inference_mode(), tqdm(total=len(prompts), desc="MMLU generate", unit="q", disable=not progress) as bar:
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            width = max(len(encoded[i]) for i in idx)
            ids = torch.tensor([[pad_id] * (width - len(encoded[i])) + encoded[i] for i in idx], device=device)
            mask = torch.tensor([[0] * (width - len(encoded[i])) + [1] * len(encoded[i]) for i in idx], device=device)
            out = model.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=pad_id,
            )
            for row, i in enumerate(idx):
                outputs[i] = tokenizer.decode(out[row, width:], skip_special_tokens=True)
            bar.update(len(idx))
    return outputs
