"""The 7B recipe: the shaped-model builder and the experiment and training configs for a 7B model."""

import importlib.util
import json
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]


def _builder():
    spec = importlib.util.spec_from_file_location("build_7b_shaped", ROOT / "scripts/build_7b_shaped.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Vocab(SimpleNamespace):
    def __len__(self):
        return 49152


def test_the_shape_is_mistral_7b_v02_with_the_default_vocabulary():
    import torch
    from transformers import AutoModelForCausalLM

    config = _builder().shaped_config(_Vocab(bos_token_id=1, eos_token_id=2, pad_token_id=2))
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (4096, 32, 32)
    assert (config.num_key_value_heads, config.intermediate_size) == (8, 14336)
    assert config.rope_parameters["rope_theta"] == 1e6
    assert config.max_position_embeddings == 32768 and config.sliding_window is None
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    # Mistral-7B's 7.24B parameters, with 49,152 embedding and output rows instead of 32,000.
    assert sum(p.numel() for p in model.parameters()) == 7_382_241_280


def test_a_built_folder_loads_through_the_harness(tiny_model_dir, tmp_path):
    from harness.models.loading import load_base_model, load_tokenizer, resolve_model

    builder = _builder()
    tok = builder.load_tokenizer_from(str(tiny_model_dir))
    small = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4)
    facts = builder.build(tmp_path / "m", tok, device="cpu", num_key_value_heads=2, head_dim=8, **small)
    assert json.loads((tmp_path / "m/shaped_model.json").read_text())["parameters"] == facts["parameters"]
    resolved = resolve_model(str(tmp_path / "m"))
    model, loaded = load_base_model(resolved, "fp32", "cpu"), load_tokenizer(resolved)
    assert model.config.model_type == "mistral" and model.config.rope_parameters["rope_theta"] == 1e6
    assert model.config.vocab_size == len(loaded) == len(tok)


def test_the_7b_configs_load_and_their_model_can_be_overridden():
    from harness.config.experiment import Overrides, load_experiment
    from harness.config.training import load_config

    exp = load_experiment(ROOT / "experiments/mistral7b.toml")
    assert {v.model for v in exp.variants} == {"mistralai/Mistral-7B-Instruct-v0.2"}
    assert {v.load for v in exp.variants} == {"bf16", "nf4"}
    moved = load_experiment(ROOT / "experiments/mistral7b.toml", Overrides(model="/models/m7b"))
    # --model moves the variants without an adapter; the adapters stay on the base they were trained on
    assert {v.name: v.model for v in moved.variants if not v.adapter} == {
        "base": "/models/m7b",
        "base-nf4": "/models/m7b",
    }
    assert {v.model for v in moved.variants if v.adapter} == {"mistralai/Mistral-7B-Instruct-v0.2"}
    train = load_config(ROOT / "training/configs/mistral7b.toml", model="/models/m7b", max_steps=16)
    assert train.model == "/models/m7b" and train.hardware.cuda_quantization == "nf4"
    assert train.train.per_device_batch_size * train.train.gradient_accumulation_steps == 32
    adapters = {v.adapter for v in exp.variants if v.adapter}
    assert adapters == {train.output.removeprefix("./")} or adapters == {"adapters/mistral7b"}
