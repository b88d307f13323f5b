"""Log-likelihood of choices after a prompt, in batches: the engine's scoring request.

A request is a prompt, split into a ``prefix`` (shared by many requests: a task description
and its shots) and a ``suffix`` (the question), and the continuations to score after it. For
each continuation the score is the sum of its tokens' log-probabilities, computed as
lm-evaluation-harness's HF backend computes ``loglikelihood``: the context and the whole text
are encoded in one piece each, and the continuation is what follows the context's tokens.

Two paths:

* every continuation is one token after the prompt (MMLU's " A" .. " D"): one forward pass per
  prompt, reading the last position's logits; prompts that share a long prefix can run it once
  and reuse its KV cache (``reuse_prefix``), which pays on a CPU;
* otherwise (MMLU cloze: the choices' texts): one row per (prompt, continuation), right-padded,
  the continuation's tokens read off the logits that precede them.
"""

from __future__ import annotations

import copy
import inspect
import math
from collections.abc import Sequence
from dataclasses import dataclass


class ContinuationTokenError(ValueError):
    """A continuation does not start a new token after its context, so it cannot be scored apart."""


@dataclass(frozen=True)
class ChoiceScores:
    """The log-probabilities of each continuation after one prompt, and what they pick."""

    logprobs: tuple[float, ...]
    token_counts: tuple[int, ...]  # tokens of each continuation
    prompt_tokens: int  # tokens the model read for this prompt (its longest row)
    reused_tokens: int  # of which this many came from a shared prefix's cache

    @property
    def best(self) -> int:
        """The argmax; on a tie the earlier choice, as numpy.argmax in lm-eval."""
        return max(range(len(self.logprobs)), key=lambda i: (self.logprobs[i], -i))


def _encode(tokenizer, text: str, **kwargs) -> list[int]:
    return list(tokenizer(text, **kwargs)["input_ids"])


def _split_pair(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """lm-eval's ``_encode_pair``: trailing spaces of the context move to the continuation, the
    whole is encoded once, and the continuation is what follows the context's tokens."""
    spaces = len(context) - len(context.rstrip())
    if spaces:
        context, continuation = context[:-spaces], context[-spaces:] + continuation
    whole = _encode(tokenizer, context + continuation)
    context_enc = _encode(tokenizer, context)
    return context_enc, whole[len(context_enc) :]


def single_token_ids(tokenizer, suffix: str, continuations: Sequence[str]) -> tuple[int, ...] | None:
    """The one token of each continuation after ``suffix``, or None when one of them is not a
    single token there (then the general path scores them)."""
    context = _encode(tokenizer, suffix, add_special_tokens=False)
    ids = []
    for continuation in continuations:
        whole = _encode(tokenizer, suffix + continuation, add_special_tokens=False)
        if whole[: len(context)] != context or len(whole) != len(context) + 1:
            return None
        ids.append(whole[-1])
    return tuple(ids)


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
    choice_ids: tuple[int, ...]
    shared: int = 0  # leading tokens taken from the group's prefix cache


def _model_device(model):
    return next(model.parameters()).device


def _accepts_logits_to_keep(model) -> bool:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model  # PEFT wraps the model
    return "logits_to_keep" in inspect.signature(base.forward).parameters


def _score_rows(model, rows: list[_Request], past=None) -> list[ChoiceScores]:
    """One forward pass over ``rows`` (each row's tokens after ``shared``), right-padded.

    Right padding needs no padding mask (the mask we pass is all ones): causal attention never
    lets a real token see the padding after it, and positions count on from the cached prefix
    (``cache_position``) the same for every row. We then read each row's logits at its own
    last real token.
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
    kwargs: dict[str, object] = {
        "input_ids": input_ids,
        "attention_mask": torch.ones(len(rows), seen, dtype=torch.long, device=device),
    }
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
    picked = logits[
        torch.arange(len(rows), device=device), torch.tensor([column[p] for p in last], device=device)
    ]
    logprobs = torch.log_softmax(picked.float(), dim=-1)
    choice_ids = torch.tensor([r.choice_ids for r in rows], device=device)
    chosen = logprobs.gather(1, choice_ids).tolist()
    return [ChoiceScores(tuple(c), (1,) * len(c), len(r.tokens), r.shared) for c, r in zip(chosen, rows)]


def _repeat_cache(prefix_cache, n: int):
    """A fresh copy of a batch-1 prefix cache, repeated ``n`` times along the batch (the forward
    pass appends the suffixes' keys to it, so the shared one must stay untouched)."""
    cache = copy.deepcopy(prefix_cache)
    if n > 1:
        cache.batch_repeat_interleave(n)
    return cache


def _batches(rows: list, batch_size: int, max_batch_tokens: int, length=lambda r: len(r.tokens) - r.shared):
    """Longest first, at most ``batch_size`` rows and ``max_batch_tokens`` padded tokens a batch.

    Prompt lengths have a long tail (a 0-shot history question is ten times the median), so a
    fixed row count pads short rows up to a long one. The token cap keeps long rows in small
    batches; sorting keeps neighbours alike.
    """
    rows = sorted(rows, key=length, reverse=True)
    i = 0
    while i < len(rows):
        longest = length(rows[i])
        n = 1
        while i + n < len(rows) and n < batch_size and (n + 1) * longest <= max_batch_tokens:
            n += 1
        yield rows[i : i + n]
        i += n


def score_choices(
    model,
    tokenizer,
    requests: Sequence[tuple[str, str]],
    continuations: Sequence[Sequence[str]],
    *,
    batch_size: int = 8,
    max_batch_tokens: int = 2048,
    reuse_prefix: bool = True,
    min_shared_tokens: int = 32,
    on_batch=None,
) -> list[ChoiceScores]:
    """Score each ``(prefix, suffix)`` request's ``continuations[i]``, in request order.

    Requests whose continuations are all single tokens take the one-pass path: requests with
    the same ``prefix`` string form a group; the tokens the group's prompts share are found on
    the token sequences themselves (each prompt encoded in one piece, as lm-eval encodes it), so
    the tokens the model reads are exactly the full prompt's tokens whatever the tokenizer does
    at the prefix/suffix boundary. When ``reuse_prefix`` and a group shares at least
    ``min_shared_tokens`` tokens and holds two or more requests, the shared part runs once and
    its KV cache is reused for every batch of the group. The other requests take the general
    path (one row per continuation). A batch holds at most ``batch_size`` rows and
    ``max_batch_tokens`` tokens counting padding. ``on_batch(n)`` is called as requests finish.
    """
    import torch

    if batch_size < 1 or max_batch_tokens < 1:
        raise ValueError(
            f"batch_size and max_batch_tokens must be >= 1, got {batch_size} and {max_batch_tokens}"
        )
    if len(continuations) != len(requests):
        raise ValueError(f"{len(requests)} requests but {len(continuations)} lists of continuations")
    cached_groups, uncached, general = _plan(
        tokenizer, requests, continuations, reuse_prefix, min_shared_tokens
    )
    results: list[ChoiceScores | None] = [None] * len(requests)
    device = _model_device(model)
    done = on_batch or (lambda n: None)
    with torch.inference_mode():
        for shared_tokens, reqs in cached_groups:
            keep = {"logits_to_keep": 1} if _accepts_logits_to_keep(model) else {}
            prefix_out = model(input_ids=torch.tensor([shared_tokens], device=device), use_cache=True, **keep)
            for batch in _batches(reqs, batch_size, max_batch_tokens):
                past = _repeat_cache(prefix_out.past_key_values, len(batch))
                for r, s in zip(batch, _score_rows(model, batch, past)):
                    results[r.index] = s
                done(len(batch))
        for batch in _batches(uncached, batch_size, max_batch_tokens):
            for r, s in zip(batch, _score_rows(model, batch)):
                results[r.index] = s
            done(len(batch))
        if general:
            for i, s in _score_general(
                model, tokenizer, requests, continuations, general, batch_size, max_batch_tokens, done
            ):
                results[i] = s
    missing = [i for i, s in enumerate(results) if s is None or any(math.isnan(x) for x in s.logprobs)]
    if missing:
        raise RuntimeError(f"log-likelihood scoring produced no finite scores for requests {missing[:10]}")
    return [s for s in results if s is not None]  # every one, after the check


def _plan(
    tokenizer,
    requests: Sequence[tuple[str, str]],
    continuations: Sequence[Sequence[str]],
    reuse_prefix: bool,
    min_shared_tokens: int,
) -> tuple[list[tuple[list[int], list[_Request]]], list[_Request], list[int]]:
    """Which path each request takes (:func:`score_choices`): the groups whose shared prompt
    tokens run once (those tokens, the group's requests), the other one-pass requests, and the
    indices of requests with a multi-token continuation (the general path)."""
    groups: dict[str, list[_Request]] = {}
    general: list[int] = []
    for i, ((prefix, suffix), conts) in enumerate(zip(requests, continuations)):
        ids = single_token_ids(tokenizer, suffix, conts)
        if ids is None:
            general.append(i)
        else:
            groups.setdefault(prefix, []).append(_Request(i, _encode(tokenizer, prefix + suffix), ids))

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
    return cached_groups, uncached, general


@dataclass
class _Row:
    request: int
    choice: int
    tokens: list[int]  # context + continuation, without the continuation's last token
    n_continuation: int
    targets: list[int]  # the continuation's tokens


def _positions(batch, device):
    """(row index, position, target token, row of each) of every continuation token of ``batch``:
    a row's continuation is predicted at the positions just before each of its tokens."""
    import torch

    rows: list[int] = []
    positions: list[int] = []
    targets: list[int] = []
    for b, r in enumerate(batch):
        end = len(r.tokens)
        rows += [b] * r.n_continuation
        positions += range(end - r.n_continuation, end)
        targets += r.targets
    as_tensor = lambda xs: torch.tensor(xs, device=device)
    return as_tensor(rows), as_tensor(positions), as_tensor(targets)


def _continuation_logprobs(logits, batch, device):
    """The log-probability of every continuation token of ``batch`` (flat), and its row."""
    import torch

    rows, positions, targets = _positions(batch, device)
    logprobs = torch.log_softmax(logits[rows, positions].float(), dim=-1)
    return logprobs[torch.arange(len(targets), device=device), targets], rows


def _continuation_row(tokenizer, request: int, choice: int, context: str, continuation: str, what: str):
    """The model's input for scoring ``continuation`` after ``context`` (teacher-forced)."""
    context_enc, cont_enc = _split_pair(tokenizer, context, continuation)
    if not cont_enc:
        raise ContinuationTokenError(f"{what}: continuation {continuation!r} adds no token to its context")
    whole = context_enc + cont_enc
    return _Row(request, choice, whole[:-1], len(cont_enc), cont_enc)


def _input_ids(batch, device):
    """The rows of ``batch`` right-padded into one tensor (padding is never read: every position
    scored lies inside its row, and attention is causal)."""
    import torch

    width = max(len(r.tokens) for r in batch)
    return torch.tensor([r.tokens + [0] * (width - len(r.tokens)) for r in batch], device=device)


def _score_general(model, tokenizer, requests, continuations, indices, batch_size, max_batch_tokens, done):
    """One row per (request, continuation): the sum of the continuation tokens' log-probabilities."""
    import torch

    device = _model_device(model)
    rows = [
        _continuation_row(tokenizer, i, j, requests[i][0] + requests[i][1], cont, f"request {i}")
        for i in indices
        for j, cont in enumerate(continuations[i])
    ]
    sums: dict[int, list[float]] = {i: [math.nan] * len(continuations[i]) for i in indices}
    counts: dict[int, list[int]] = {i: [0] * len(continuations[i]) for i in indices}
    longest: dict[int, int] = {i: 0 for i in indices}
    remaining = {i: len(continuations[i]) for i in indices}
    for batch in _batches(rows, batch_size, max_batch_tokens, length=lambda r: len(r.tokens)):
        ids = _input_ids(batch, device)
        logits = model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False).logits
        # Every row's continuation positions at once, then one transfer: a row at a time made a
        # device sync per row (thousands a phase). Only those positions go to float.
        picked, row_of = _continuation_logprobs(logits, batch, device)
        totals = torch.zeros(len(batch), device=device).index_add_(0, row_of, picked).tolist()
        finished = 0
        for r, total in zip(batch, totals):
            sums[r.request][r.choice] = total
            counts[r.request][r.choice] = r.n_continuation
            longest[r.request] = max(longest[r.request], len(r.tokens) + 1)
            remaining[r.request] -= 1
            finished += remaining[r.request] == 0
        done(finished)
    for i in indices:
        yield i, ChoiceScores(tuple(sums[i]), tuple(counts[i]), longest[i], 0)


# -- how far an adapter moved the model: KL(base || adapted) on the task's own text ------------------


@dataclass(frozen=True)
class Divergence:
    """The mean, over a continuation's tokens, of KL(base || adapted) between the two models'
    next-token distributions (nats), and how many tokens it averages."""

    mean_kl: float
    tokens: int


def kl_to_base(
    model,
    tokenizer,
    pairs: Sequence[tuple[str, str]],
    *,
    batch_size: int = 8,
    max_batch_tokens: int = 2048,
    on_batch=None,
) -> list[Divergence]:
    """For each (context, continuation), teacher-forced: at every position that predicts a token
    of the continuation, KL(p_base || p_adapted) of the next-token distributions over the whole
    vocabulary, averaged over the continuation's tokens. ``model`` is a PEFT model with its
    adapter active; the base distribution comes from the same weights with the adapter disabled
    (Shenfeld et al. 2025, "RL's Razor": this forward KL on the new task predicts forgetting).
    """
    import torch

    device = _model_device(model)
    rows = [_continuation_row(tokenizer, i, 0, c, cont, f"pair {i}") for i, (c, cont) in enumerate(pairs)]
    out: list[Divergence | None] = [None] * len(pairs)
    done = on_batch or (lambda n: None)
    with torch.inference_mode():
        for batch in _batches(rows, batch_size, max_batch_tokens, length=lambda r: len(r.tokens)):
            ids = _input_ids(batch, device)
            mask = torch.ones_like(ids)
            with model.disable_adapter():
                base = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
            adapted = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
            row_of, positions, _ = _positions(batch, device)
            log_p = torch.log_softmax(base[row_of, positions].float(), dim=-1)
            log_q = torch.log_softmax(adapted[row_of, positions].float(), dim=-1)
            kl = (log_p.exp() * (log_p - log_q)).sum(-1)
            per_row = torch.zeros(len(batch), device=device).index_add_(0, row_of, kl).tolist()
            for r, total in zip(batch, per_row):
                out[r.request] = Divergence(total / r.n_continuation, r.n_continuation)
            done(len(batch))
    return out  # type: ignore[return-value]
