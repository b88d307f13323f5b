"""A LoRA merged into a copy of its base scores as the unmerged adapter does, under its own
cache fingerprint; the KL to the base keeps the unmerged model (it needs the adapter disabled)."""

from dataclasses import dataclass

import pytest

from harness.engine.loglik import score_choices
from harness.models.pool import ModelPool

REQUESTS = [
    ("How many singers do we have? ", "SELECT count(*) FROM singer"),
    ("Answer: ", "A B C D"),
    ("Question: What is 2 + 2? ", "Database concert_singer: stadium(Stadium_ID number, Name text)"),
]
CHOICES = [[" A", " B", " C", " D"], [" SELECT", " name"], [" 4", " four"]]
FP32_TOLERANCE = 1e-4  # nats: the merged sum and the two products differ by float32 rounding
NF4_TOLERANCE = 1e-2  # nats: one bf16 rounding of each merged weight (about 2^-8 of it)


@dataclass(frozen=True)
class Variant:
    name: str
    model: str
    load: str
    adapter: str


@pytest.fixture(scope="module")
def wide_model_dir(tiny_model_dir, tmp_path_factory):
    """The tiny model made 4x wider: bitsandbytes' CPU nf4 kernels need 64-wide blocks."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    config = AutoConfig.from_pretrained(tiny_model_dir)
    config.hidden_size, config.intermediate_size, config.head_dim = 128, 256, 32
    out = tmp_path_factory.mktemp("wide-model")
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def adapter(wide_model_dir, tmp_path_factory):
    """A LoRA whose B matrices are random (not zero), so merging moves every number."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    base = AutoModelForCausalLM.from_pretrained(wide_model_dir)
    config = LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "up_proj"], init_lora_weights=False
    )
    model = get_peft_model(base, config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.mul_(20.0)
    out = tmp_path_factory.mktemp("adapter")
    model.save_pretrained(out)
    return str(out)


def _scores(pool, variant, unmerged=False):
    tok = pool.tokenizer(variant.model)
    with pool.activated(variant, unmerged=unmerged) as model:
        return [s.logprobs for s in score_choices(model, tok, REQUESTS, CHOICES, reuse_prefix=False)]


def _largest_difference(a, b):
    return max(abs(x - y) for ra, rb in zip(a, b) for x, y in zip(ra, rb))


@pytest.mark.parametrize("load, tolerance", [("fp32", FP32_TOLERANCE), ("nf4", NF4_TOLERANCE)])
def test_merged_scores_equal_unmerged_within_tolerance(wide_model_dir, adapter, monkeypatch, load, tolerance):
    from peft import PeftModel

    if load == "nf4":
        pytest.importorskip("bitsandbytes")
    variant = Variant("ft", str(wide_model_dir), load, adapter)
    base = Variant("base", str(wide_model_dir), load, "")
    monkeypatch.setenv("HARNESS_MERGE_ADAPTERS", "off")
    plain = ModelPool(device="cpu")
    unmerged, base_scores = _scores(plain, variant), _scores(plain, base)
    monkeypatch.setenv("HARNESS_MERGE_ADAPTERS", "on")
    pool = ModelPool(device="cpu")
    with pool.activated(variant) as model:
        assert not isinstance(model, PeftModel)  # merged: no adapter layers left
    merged = _scores(pool, variant)
    assert _largest_difference(merged, unmerged) <= tolerance
    # The adapter moves the scores far more than merging does: the comparison can fail.
    assert _largest_difference(unmerged, base_scores) > 10 * tolerance
    # The base variant of the same pool is untouched by the merge.
    assert _largest_difference(_scores(pool, base), base_scores) == 0.0


def test_merged_predictions_have_their_own_fingerprint(wide_model_dir, adapter, monkeypatch):
    variant = Variant("ft", str(wide_model_dir), "nf4", adapter)
    monkeypatch.setenv("HARNESS_MERGE_ADAPTERS", "on")
    merged = ModelPool(device="cpu").fingerprint(variant)
    assert merged["merged"] == "lora merged in bf16 into the dequantized nf4 base"
    monkeypatch.setenv("HARNESS_MERGE_ADAPTERS", "off")
    assert "merged" not in ModelPool(device="cpu").fingerprint(variant)
    monkeypatch.setenv("HARNESS_MERGE_ADAPTERS", "auto")  # merged on CUDA only
    assert "merged" not in ModelPool(device="cpu").fingerprint(variant)
    assert "merged" in ModelPool(device="cuda").fingerprint(variant)
    assert "merged" not in ModelPool(device="cuda").fingerprint(
        Variant("ft", str(wide_model_dir), "int8", adapter)
    )
    monkeypatch.setenv("HARNESS_MERGE_ADAPTERS", "yes")
    with pytest.raises(ValueError, match="HARNESS_MERGE_ADAPTERS='yes'"):
        ModelPool(device="cpu").fingerprint(variant)


def test_kl_to_base_keeps_the_unmerged_adapter(wide_model_dir, adapter, monkeypatch):
    from peft import PeftModel

    monkeypatch.setenv("HARNESS_MERGE_ADAPTERS", "on")
    pool = ModelPool(device="cpu")
    variant = Variant("ft", str(wide_model_dir), "fp32", adapter)
    with pool.activated(variant, unmerged=True) as model:
        assert isinstance(model, PeftModel)
    assert "merged" not in pool.fingerprint(variant, unmerged=True)
