"""KL(base || adapted) on continuations (harness.engine.loglik.kl_to_base) against a direct computation
on the tiny model with a LoRA adapter: zero for an untouched adapter, equal otherwise."""

from __future__ import annotations

import pytest

PAIRS = [
    ("Question: How many singers?\nAnswer:", " SELECT count(*) FROM singer;"),
    ("Question: Names?\nAnswer:", " SELECT name FROM singer ORDER BY age DESC;"),
    ("Q:", " SELECT 1;"),
]


@pytest.fixture(scope="module")
def peft_model(tiny_model_dir):
    import torch
    from peft import LoraConfig, get_peft_model

    from harness.models.loading import load_base_model, load_tokenizer, resolve_model

    resolved = resolve_model(str(tiny_model_dir))
    model = load_base_model(resolved, "fp32", "cpu")
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"])).eval()
    return model, load_tokenizer(resolved), torch


def test_an_untouched_adapter_is_at_zero_kl(peft_model):
    from harness.engine.loglik import kl_to_base

    model, tokenizer, _ = peft_model
    assert all(abs(d.mean_kl) < 1e-7 for d in kl_to_base(model, tokenizer, PAIRS))  # LoRA's B starts at 0


def test_kl_equals_a_direct_computation(peft_model):
    from harness.engine.loglik import _split_pair, kl_to_base

    model, tokenizer, torch = peft_model
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    got = kl_to_base(model, tokenizer, PAIRS, batch_size=2, max_batch_tokens=64)
    for (context, continuation), d in zip(PAIRS, got):
        context_enc, cont_enc = _split_pair(tokenizer, context, continuation)
        ids = torch.tensor([context_enc + cont_enc[:-1]])
        with torch.no_grad():
            with model.disable_adapter():
                p = torch.log_softmax(model(input_ids=ids).logits[0, -len(cont_enc) :].float(), -1)
            q = torch.log_softmax(model(input_ids=ids).logits[0, -len(cont_enc) :].float(), -1)
        expected = float((p.exp() * (p - q)).sum(-1).mean())
        assert d.tokens == len(cont_enc)
        assert d.mean_kl == pytest.approx(expected, rel=1e-4, abs=1e-6) and d.mean_kl > 0
