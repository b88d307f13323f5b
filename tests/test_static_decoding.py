"""The static-cache decoding path gives model.generate's greedy text, stop rules included."""

import pytest

from harness.engine import static_decoding
from harness.engine.core import GenerationSettings, StopRule
from harness.engine.decoding import generate_batch
from harness.engine.static_decoding import generate_static, static_decoding_refusal, wants_static
from harness.tasks.sql_task import SQL_END

PROMPTS = [
    "SELECT name",
    "How many singers do we have? SELECT count(*) FROM singer WHERE",
    "Answer: A",
    "[INST] How many singers do we have? [/INST]",
    "Question: What is 2 + 2? Database concert_singer: stadium(Stadium_ID number, Name text)",
    "SELECT name , country FROM singer ORDER BY",
]


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    import torch

    from harness.models.loading import ResolvedModel, load_base_model, load_tokenizer

    resolved = ResolvedModel("tiny", str(tiny_model_dir), None, "tiny")
    model = load_base_model(resolved, "fp32", "cpu")
    # Sharpen attention (random init leaves it near uniform), so that a wrong position, mask or
    # cache entry changes the greedy text instead of hiding in a flat softmax.
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.q_proj.weight.mul_(8.0)
            layer.self_attn.k_proj.weight.mul_(8.0)
            layer.self_attn.v_proj.weight.mul_(4.0)
    return model, load_tokenizer(resolved)


def _dynamic(model, tok, prompts, settings, monkeypatch):
    monkeypatch.setenv("HARNESS_DECODING", "dynamic")
    return generate_batch(model, tok, prompts, settings)


def _static(model, tok, prompts, settings, **kw):
    return generate_static(
        model, tok, prompts, max_new_tokens=settings.max_new_tokens, stop=settings.stop, **kw
    )


@pytest.mark.parametrize("stop", [None, SQL_END, StopRule("ten_chars", lambda t: len(t) >= 10)])
def test_static_text_equals_generate(tiny, monkeypatch, stop):
    model, tok = tiny
    settings = GenerationSettings(max_new_tokens=24, batch_size=8, stop=stop)
    expected = _dynamic(model, tok, PROMPTS, settings, monkeypatch)
    assert _static(model, tok, PROMPTS, settings) == expected


def test_rows_that_stop_at_different_steps_are_compacted_and_keep_their_text(tiny, monkeypatch):
    model, tok = tiny
    # Rows meet this rule after different numbers of tokens (the length each needs depends on
    # its first character), so the batch shrinks as it decodes.
    rule = StopRule("length", lambda t: len(t) >= 3 + 3 * (ord(t[0]) % 7))
    settings = GenerationSettings(max_new_tokens=30, stop=rule)
    expected = _dynamic(model, tok, PROMPTS, settings, monkeypatch)
    sizes = []
    compact = static_decoding._Decoder.compact

    def counting(self, keep):
        sizes.append(len(keep))
        compact(self, keep)

    monkeypatch.setattr(static_decoding._Decoder, "compact", counting)
    steps = []
    got = _static(
        model, tok, PROMPTS, settings, compact_below=0.99, on_step=lambda s, f: steps.append((s, sum(f)))
    )
    assert got == expected
    assert sizes, "no compaction happened"
    assert all(n & (n - 1) == 0 for n in sizes)  # powers of two: few captured graphs
    assert steps[-1][1] == len(PROMPTS)  # every row reported finished
    assert [s for s, _ in steps] == list(range(1, len(steps) + 1))


def test_a_row_ends_at_its_end_of_sequence_token(tiny, monkeypatch):
    model, tok = tiny
    settings = GenerationSettings(max_new_tokens=16)
    free = _dynamic(model, tok, PROMPTS, settings, monkeypatch)
    # Make a token that greedy decoding emits early in one row the end of sequence.
    third = tok(free[2], add_special_tokens=False)["input_ids"][2]
    monkeypatch.setattr(model.generation_config, "eos_token_id", third)
    expected = _dynamic(model, tok, PROMPTS, settings, monkeypatch)
    assert expected[2] != free[2]
    assert _static(model, tok, PROMPTS, settings) == expected


def test_the_engine_takes_the_static_path_when_asked(tiny, monkeypatch):
    model, tok = tiny
    calls = []
    monkeypatch.setattr(
        "harness.engine.decoding.generate_static", lambda *a, **k: calls.append(1) or ["x"] * len(a[2])
    )
    settings = GenerationSettings(max_new_tokens=4)
    monkeypatch.setenv("HARNESS_DECODING", "static")
    assert generate_batch(model, tok, PROMPTS[:2], settings) == ["x", "x"]
    monkeypatch.setenv("HARNESS_DECODING", "auto")  # on the CPU: model.generate
    assert generate_batch(model, tok, PROMPTS[:2], settings) != ["x", "x"]
    assert calls == [1]


def test_decoding_mode_and_refusals(tiny, monkeypatch):
    model, _ = tiny
    monkeypatch.delenv("HARNESS_DECODING", raising=False)
    assert static_decoding.decoding_mode() == "dynamic"  # until compared on a GPU
    monkeypatch.setenv("HARNESS_DECODING", "dynamic")
    assert not wants_static(model)
    monkeypatch.setenv("HARNESS_DECODING", "static")
    assert wants_static(model)
    monkeypatch.setenv("HARNESS_DECODING", "fast")
    with pytest.raises(ValueError, match="HARNESS_DECODING='fast'"):
        wants_static(model)
    assert static_decoding_refusal(model) is None
    monkeypatch.setattr(model.generation_config, "repetition_penalty", 1.3)
    assert "repetition_penalty" in static_decoding_refusal(model)
    monkeypatch.setenv("HARNESS_DECODING", "static")
    assert not wants_static(model)
    monkeypatch.setattr(model.generation_config, "repetition_penalty", 1.0)
    monkeypatch.setattr(model.config, "sliding_window", 4096, raising=False)
    assert "sliding-window" in static_decoding_refusal(model)
