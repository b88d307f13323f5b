"""Greedy decoding with a static KV cache: each step replayed from a captured CUDA graph.

``model.generate`` with its dynamic cache launches every kernel of every layer from Python at each
step; for a small model or a small batch that launching, not the GPU, sets the pace. Here the cache
is allocated once for the batch's whole length (``transformers.StaticCache``), the attention mask
is one preallocated tensor that each step opens one more position of, and the step (mask update,
forward, argmax, next inputs) is captured once into a CUDA graph and replayed. Steps are queued
one ahead of the host: while the GPU runs step k+1, the host checks step k's tokens against the
stop rules.

The per-row stop rules are today's (harness.engine.decoding.generate_batch): a row ends at its end of
sequence token or when the task's stop rule says its text is complete. Finished rows stop costing
when enough of them have finished: the batch is compacted to its live rows (rounded up to a power
of two, so few graphs are captured) and the step captured again.

On the CPU the same loop runs without graphs, so its text can be checked against
``model.generate`` (tests/test_static_decoding.py). :func:`static_decoding_refusal` names what
this path does not reproduce (sampling-style logits processors, sliding-window attention,
attention kernels that take no 4-D mask); the engine then keeps ``model.generate``.

``$HARNESS_DECODING``: ``dynamic`` (the default: ``model.generate``), ``auto`` (this path on
CUDA) or ``static`` (this path on any device). For grouped-query models the one-position steps
use :func:`_gqa_decode_attention` (``HARNESS_GQA_DECODE=0``: transformers' SDPA instead).
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

DECODING_ENV = "HARNESS_DECODING"  # "dynamic" (default), "auto" (static on CUDA) or "static"
DECODING_MODES = ("auto", "static", "dynamic")
# model.generate stays the default until the static path's bf16 text has been compared with it on
# a GPU (docs/gpu_7b/README.md compares their speed; their equality is not yet established there).
DEFAULT_DECODING = "dynamic"
_COMPACT_BELOW = 0.5  # compact when the live rows are at most this share of the batch
_WARMUP_STEPS = 2  # eager steps before capture (library workspaces, lazy allocations)

# What the last call did (for measurement scripts): steps run, graphs captured, why a capture
# failed, the batch sizes it decoded at.
last_run: dict = {}


def decoding_mode() -> str:
    """The decoding path asked for in ``$HARNESS_DECODING`` (default :data:`DEFAULT_DECODING`)."""
    mode = os.environ.get(DECODING_ENV, DEFAULT_DECODING).strip().lower() or DEFAULT_DECODING
    if mode not in DECODING_MODES:
        raise ValueError(f"{DECODING_ENV}={mode!r}: choose one of {', '.join(DECODING_MODES)}")
    return mode


def wants_static(model) -> bool:
    """Whether the engine should decode ``model`` with this module (mode and model allowing)."""
    mode = decoding_mode()
    if mode == "dynamic":
        return False
    if mode == "auto" and model.device.type != "cuda":
        return False
    reason = static_decoding_refusal(model)
    if reason is not None:
        if mode == "static":
            log.warning("static decoding refused (%s): using model.generate", reason)
        return False
    return True


_NEUTRAL = {  # generation-config fields whose default leaves greedy decoding untouched
    "repetition_penalty": (None, 1.0),
    "no_repeat_ngram_size": (None, 0),
    "encoder_no_repeat_ngram_size": (None, 0),
    "bad_words_ids": (None,),
    "min_length": (None, 0),
    "min_new_tokens": (None, 0),
    "suppress_tokens": (None,),
    "begin_suppress_tokens": (None,),
    "forced_bos_token_id": (None,),
    "forced_eos_token_id": (None,),
    "sequence_bias": (None,),
    "exponential_decay_length_penalty": (None,),
}


def static_decoding_refusal(model) -> str | None:
    """Why this path would not give ``model.generate``'s greedy text, or None when it would."""
    config = model.config
    if getattr(config, "is_encoder_decoder", False):
        return "an encoder-decoder model"
    if getattr(config, "sliding_window", None) or "sliding_attention" in (
        getattr(config, "layer_types", None) or ()
    ):
        return "sliding-window attention (the step's mask is a full causal mask)"
    attn = getattr(config, "_attn_implementation", None) or "eager"
    if attn not in ("sdpa", "eager"):
        return f"attention implementation {attn!r} (it takes no 4-D mask)"
    gen = getattr(model, "generation_config", None)
    for name, neutral in _NEUTRAL.items():
        if gen is not None and getattr(gen, name, None) not in neutral:
            return f"generation_config.{name} = {getattr(gen, name)!r}"
    return None


_GQA_DECODE = "harness_gqa_decode"
GQA_DECODE_ENV = "HARNESS_GQA_DECODE"  # "0": keep transformers' SDPA (for comparison)


def _gqa_decode_attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kwargs):
    """SDPA for one query position per row without repeating the cache's key/value heads.

    transformers' SDPA path copies every key and value head ``num_key_value_groups`` times when
    a mask is passed (its GQA flag needs no mask), which at batch 64 moves several times the
    cache's bytes each step. With one query position, the query heads that share a key/value head
    can stand as that head's query rows instead: the same attention, reading the cache once.
    """
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    groups = getattr(module, "num_key_value_groups", 1)
    if query.shape[2] != 1 or groups == 1 or module.training:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    batch, heads, _, dim = query.shape
    # Query head h reads key/value head h // groups (transformers' repeat_kv order).
    rows = query.reshape(batch, key.shape[1], groups, dim)
    if attention_mask is not None:
        attention_mask = attention_mask[:, :, :, : key.shape[-2]]
    out = torch.nn.functional.scaled_dot_product_attention(
        rows, key, value, attn_mask=attention_mask, scale=scaling
    )
    return out.reshape(batch, 1, heads, dim), None


class _DecodeAttention:
    """While decoding, an SDPA model's attention runs through :func:`_gqa_decode_attention`."""

    def __init__(self, model):
        self.config = model.config

    def __enter__(self):
        from transformers import AttentionInterface

        self.previous = self.config._attn_implementation
        if self.previous == "sdpa" and os.environ.get(GQA_DECODE_ENV, "1") != "0":
            AttentionInterface.register(_GQA_DECODE, _gqa_decode_attention)
            self.config._attn_implementation = _GQA_DECODE
        return self

    def __exit__(self, *exc):
        self.config._attn_implementation = self.previous


def _eos_ids(model) -> set[int]:
    eos = getattr(model.generation_config, "eos_token_id", None)
    if eos is None:
        return set()
    return {int(e) for e in (eos if isinstance(eos, (list, tuple)) else [eos])}


def _bucket(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


class _Rows:
    """The host's view of the batch: each original row's tokens and whether it is finished."""

    def __init__(self, n: int, tokenizer, stop, eos: set[int]):
        self.tokens: list[list[int]] = [[] for _ in range(n)]
        self.done = [False] * n
        self.tokenizer, self.stop, self.eos = tokenizer, stop, eos

    def take(self, token_ids: Sequence[int], rows: Sequence[int]) -> None:
        """One step's tokens; ``rows[i]`` is the original row of batch slot i (-1: filler)."""
        for slot, row in enumerate(rows):
            if row < 0 or self.done[row]:
                continue
            token = int(token_ids[slot])
            self.tokens[row].append(token)
            if token in self.eos:
                self.done[row] = True
            elif self.stop is not None:
                text = self.tokenizer.decode(self.tokens[row], skip_special_tokens=True)
                self.done[row] = bool(self.stop.is_complete(text))

    def live(self) -> int:
        return self.done.count(False)

    def texts(self) -> list[str]:
        return [self.tokenizer.decode(t, skip_special_tokens=True) for t in self.tokens]


class _Decoder:
    """The device state of one batch: static cache, mask, next inputs, and the captured step."""

    def __init__(self, model, cache, mask, next_ids, positions, cursor, rows: list[int], graphs: bool):
        self.model, self.cache, self.mask = model, cache, mask
        self.next_ids, self.positions, self.cursor = next_ids, positions, cursor
        self.rows = rows
        self.out = next_ids[:, 0].clone()
        self.graphs = graphs
        self.graph: torch.cuda.CUDAGraph | None = None
        self.pool = None
        self.eager_steps = 0

    def _step(self) -> None:
        import torch

        # Open the position this step writes, then run it; everything in place, so a replay
        # of the captured step advances the same tensors.
        self.mask.index_fill_(3, self.cursor, 0.0)
        logits = self.model(
            input_ids=self.next_ids,
            attention_mask=self.mask,
            position_ids=self.positions,
            past_key_values=self.cache,
            use_cache=True,
        ).logits
        token = torch.argmax(logits[:, -1, :], dim=-1)
        self.out.copy_(token)
        self.next_ids.copy_(token[:, None])
        self.positions.add_(1)
        self.cursor.add_(1)

    def launch(self) -> None:
        """Queue one step on the device (captured after a few eager ones, on CUDA)."""
        import torch

        if not self.graphs:
            self._step()
            return
        if self.graph is not None:
            self.graph.replay()
            return
        if self.eager_steps < _WARMUP_STEPS:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                self._step()
            torch.cuda.current_stream().wait_stream(side)
            self.eager_steps += 1
            return
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph, pool=self.pool):
                self._step()
        except Exception as e:  # a kernel that cannot be captured: go on eagerly
            log.warning("capturing the decoding step failed (%s); decoding without CUDA graphs", e)
            last_run["capture_error"] = f"{type(e).__name__}: {e}"[:500]
            self.graphs = False
            torch.cuda.synchronize()
            self._step()
            return
        self.graph = graph
        last_run["graphs_captured"] = last_run.get("graphs_captured", 0) + 1
        graph.replay()

    def compact(self, keep: list[int]) -> None:
        """Keep batch slots ``keep`` (repeats allowed), dropping the captured step."""
        import torch

        idx = torch.tensor(keep, device=self.mask.device)
        for layer in self.cache.layers:
            layer.keys = layer.keys.index_select(0, idx)
            layer.values = layer.values.index_select(0, idx)
            layer.batch_size = len(keep)
        self.mask = self.mask.index_select(0, idx)
        self.next_ids = self.next_ids.index_select(0, idx)
        self.positions = self.positions.index_select(0, idx)
        self.out = self.out.index_select(0, idx)
        self.rows = [self.rows[i] for i in keep]
        self.graph = None
        self.eager_steps = 0


def generate_static(
    model,
    tokenizer,
    prompts: Sequence[str],
    *,
    max_new_tokens: int,
    stop=None,
    add_special_tokens: bool = False,
    on_step: Callable[[int, list[bool]], None] | None = None,
    graphs: bool | None = None,
    compact_below: float = _COMPACT_BELOW,
) -> list[str]:
    """Greedy continuations of ``prompts`` (one left-padded batch), cut where each row stops.

    The same contract as harness.engine.decoding.generate_batch: ``on_step(step, flags)`` after every
    step with each row's finished flag. ``graphs`` (default: on CUDA) captures the step.
    """
    import torch
    from transformers import StaticCache

    enc = tokenizer(list(prompts), return_tensors="pt", padding=True, add_special_tokens=add_special_tokens)
    device = model.device
    ids = enc["input_ids"].to(device)
    valid = enc["attention_mask"].to(device).bool()
    if valid.shape[1] and not bool(valid[:, -1].all()):
        raise ValueError("static decoding needs left padding (tokenizer.padding_side = 'left')")
    batch, length = ids.shape
    total = length + max_new_tokens
    dtype = model.get_input_embeddings().weight.dtype
    if not dtype.is_floating_point:
        dtype = torch.bfloat16
    closed = torch.finfo(dtype).min
    if graphs is None:
        graphs = device.type == "cuda"
    last_run.clear()
    last_run.update(graphs=graphs, graphs_captured=0, capture_error=None, batch_sizes=[batch], steps=1)

    # Prefill: key j is visible to query i when j <= i and j is a real token; a padding query
    # sees itself only (a fully closed row would give NaN that no real query reads, but that
    # would still poison the cache's values through 0 x NaN).
    keys = torch.arange(total, device=device)
    queries = torch.arange(length, device=device)
    real = torch.cat([valid, torch.ones(batch, max_new_tokens, dtype=torch.bool, device=device)], dim=1)
    visible = (keys[None, :] <= queries[:, None])[None] & real[:, None, :]
    visible |= (keys[None, :] == queries[:, None])[None]
    prefill_mask = torch.zeros(batch, 1, length, total, dtype=dtype, device=device)
    prefill_mask.masked_fill_(~visible[:, None], closed)
    positions = (valid.long().cumsum(-1) - 1).clamp(min=0)
    cache = StaticCache(config=model.config, max_cache_len=total)
    eos = _eos_ids(model)
    rows = _Rows(batch, tokenizer, stop, eos)
    with torch.inference_mode(), _DecodeAttention(model):
        logits = model(
            input_ids=ids,
            attention_mask=prefill_mask,
            position_ids=positions,
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        ).logits
        first = torch.argmax(logits[:, -1, :], dim=-1)
        del logits, prefill_mask
        step_mask = torch.full((batch, 1, 1, total), closed, dtype=dtype, device=device)
        step_mask[:, 0, 0, :length].masked_fill_(valid, 0.0)
        decoder = _Decoder(
            model,
            cache,
            step_mask,
            first[:, None].clone(),
            positions[:, -1:] + 1,
            torch.tensor([length], device=device),
            list(range(batch)),
            graphs,
        )
        rows.take(first.tolist(), decoder.rows)
        if on_step is not None:
            on_step(1, list(rows.done))
        _decode(decoder, rows, max_new_tokens - 1, on_step, compact_below)
    return rows.texts()


def _decode(decoder: _Decoder, rows: _Rows, steps: int, on_step, compact_below: float) -> None:
    """Run up to ``steps`` decoding steps, one queued ahead of the host on CUDA."""
    import torch

    cuda = decoder.mask.device.type == "cuda"
    depth = 2 if cuda else 1
    pending: deque = deque()
    launched = done_steps = 0
    draining = False
    while True:
        while not draining and len(pending) < depth and launched < steps:
            decoder.launch()
            if cuda:
                host = torch.empty(decoder.out.shape, dtype=decoder.out.dtype, pin_memory=True)
                host.copy_(decoder.out, non_blocking=True)
                event = torch.cuda.Event()
                event.record()
                pending.append((host, event, decoder.rows))
            else:
                pending.append((decoder.out.clone(), None, decoder.rows))
            launched += 1
        if not pending:
            return
        host, event, slots = pending.popleft()
        if event is not None:
            event.synchronize()
        rows.take(host.tolist(), slots)
        done_steps += 1
        last_run["steps"] = done_steps + 1
        if on_step is not None:
            on_step(done_steps + 1, list(rows.done))
        live = rows.live()
        if live == 0:
            return
        current = len(decoder.rows)
        if not draining and _bucket(live) <= compact_below * current:
            draining = True  # finish the queued step, then compact
        if draining and not pending:
            keep = [i for i, r in enumerate(decoder.rows) if r >= 0 and not rows.done[r]]
            keep += [keep[0]] * (_bucket(len(keep)) - len(keep))
            decoder.compact(keep)
            last_run["batch_sizes"].append(len(keep))
            decoder.rows = [r if i < live else -1 for i, r in enumerate(decoder.rows)]
            draining = False
