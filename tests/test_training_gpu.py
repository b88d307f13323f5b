"""The CUDA path of the training recipe: a 4-bit nf4 base with bf16 compute and gradient
checkpointing (QLoRA), on the tiny model. Skipped without a CUDA device.

Runs without the root conftest too (``pytest --noconftest tests/test_training_gpu.py``), for
a GPU machine that lacks the benchmark dependencies.
"""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


@pytest.fixture(scope="module")
def cuda_setup(tmp_path_factory):
    from tests.test_training import build_tiny_spider
    from tests.tiny_model import build_tiny_model

    root = tmp_path_factory.mktemp("cuda")
    return build_tiny_model(root / "model"), build_tiny_spider(root / "spider")


def test_cuda_trains_a_qlora_adapter(tmp_path, cuda_setup):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from tests.test_training import tiny_config
    from training import train_from_config

    model_dir, spider = cuda_setup
    config = tiny_config(
        tmp_path, model_dir, spider, steps=4, device="cuda", sweep="[checkpoints]\nat = [0.5]\n"
    )
    result = train_from_config(config)[0]

    s = json.loads((result.output / "training_summary.json").read_text())
    assert s["status"] == "succeeded" and s["device"].startswith("cuda")
    assert s["quantization"] == {
        **s["quantization"],
        "requested": "nf4",
        "used": "nf4",
        "compute_dtype": "bfloat16",
    }
    assert s["steps_done"] == 4 and all(isinstance(r["loss"], float) for r in s["loss_curve"])
    half = result.output / "checkpoints" / "0.5"
    assert json.loads((half / "training_summary.json").read_text())["steps_done"] == 2
    for adapter in (result.output, half):  # the final adapter and the checkpoint saved mid-training
        base = AutoModelForCausalLM.from_pretrained(str(model_dir))
        assert any("lora_B" in n for n, _ in PeftModel.from_pretrained(base, str(adapter)).named_parameters())


def test_cuda_model_is_4bit_with_checkpointing(tmp_path, cuda_setup):
    import bitsandbytes as bnb

    from harness.models.loading import resolve_model
    from tests.test_training import tiny_config
    from training import _setup, load_config

    model_dir, spider = cuda_setup
    cfg = load_config(tiny_config(tmp_path, model_dir, spider, device="cuda"))
    resolved = resolve_model(cfg.model)
    model, quant = _setup.setup_model(resolved, cfg.hardware, "cuda")
    assert quant.used == "nf4"
    assert any(isinstance(m, bnb.nn.Linear4bit) for m in model.modules())
    tok = _setup.setup_tokenizer(resolved, model)
    examples = _setup.setup_dataset(cfg, tok)
    trainer, *_ = _setup.setup_trainer(
        cfg, model, tok, examples, _setup.setup_peft(cfg.lora), quant, "cuda", tmp_path, ()
    )
    assert trainer.args.gradient_checkpointing and trainer.args.bf16
    trainable = {p.dtype for p in trainer.model.parameters() if p.requires_grad}
    assert trainable == {torch.bfloat16}, "TRL casts the LoRA weights of a quantized model to bf16"
