"""Write a model folder shaped like Mistral-7B-Instruct-v0.2, with random weights and the default
model's tokenizer: the same work per token as the 7B model users run, without its weights.

Random weights never emit the end of an SQL statement, so every Spider row decodes to
``max_new_tokens`` (the worst case for decoding); scores mean nothing, costs are real.

    python scripts/build_7b_shaped.py --out /tmp/mistral7b-shaped                      # on a GPU
    python scripts/build_7b_shaped.py --out m7b --tokenizer .cache/models/SmolLM2-135M-Instruct
    python scripts/build_7b_shaped.py --out m7b --tokenizer SmolLM2-135M-Instruct.Q4_1.gguf

The tokenizer comes from a model folder, a ``.gguf`` file (read as the harness's conversion
reads it, end-of-sequence token fixed the same way) or, by default, the harness's default model
(converted into the cache on first use). On CUDA the weights are drawn on the device in bf16 and
saved as safetensors, so the folder is written in about the time the disk takes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# Mistral-7B-Instruct-v0.2's config.json, less its vocabulary (the tokenizer's replaces it).
MISTRAL_7B_V02 = {
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "max_position_embeddings": 32768,
    "rope_theta": 1e6,
    "rms_norm_eps": 1e-5,
    "sliding_window": None,
    "tie_word_embeddings": False,
    "hidden_act": "silu",
}


def load_tokenizer_from(source: str | None):
    """The tokenizer to give the model: from a folder, a .gguf file, or the default model."""
    from transformers import AutoConfig, AutoTokenizer

    if source is None:
        from harness.models.loading import DEFAULT_MODEL, resolve_model

        source = resolve_model(DEFAULT_MODEL).path
    path = Path(source)
    if path.suffix == ".gguf":
        if not path.is_file():
            raise SystemExit(f"build_7b_shaped: --tokenizer {source}: no such GGUF file")
        tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
        # As harness.models.default_model._convert: the GGUF's config has the right end-of-sequence id.
        config = AutoConfig.from_pretrained(str(path.parent), gguf_file=path.name)
        tok.eos_token = tok.convert_ids_to_tokens(config.eos_token_id)
    elif path.is_dir():
        tok = AutoTokenizer.from_pretrained(str(path))
    else:
        raise SystemExit(f"build_7b_shaped: --tokenizer {source}: not a model folder or a .gguf file")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def shaped_config(tokenizer, **overrides):
    """A MistralConfig with Mistral-7B-Instruct-v0.2's shape and ``tokenizer``'s vocabulary."""
    from transformers import MistralConfig

    shape = {**MISTRAL_7B_V02, **overrides}
    rope_theta = shape.pop("rope_theta")
    return MistralConfig(
        vocab_size=len(tokenizer),
        rope_parameters={"rope_type": "default", "rope_theta": rope_theta},
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **shape,
    )


def build(out: Path, tokenizer, *, device: str | None = None, seed: int = 0, **overrides) -> dict:
    """Write the random-weight model and ``tokenizer`` to ``out``; returns what was written."""
    import torch
    from transformers import AutoModelForCausalLM

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    config = shaped_config(tokenizer, **overrides)
    start = time.perf_counter()
    torch.manual_seed(seed)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    built = time.perf_counter() - start
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, max_shard_size="5GB")
    tokenizer.save_pretrained(out)
    facts = {
        "shape": "Mistral-7B-Instruct-v0.2 (random weights)",
        "parameters": sum(p.numel() for p in model.parameters()),
        "vocab_size": config.vocab_size,
        "dtype": str(dtype).removeprefix("torch."),
        "device": device,
        "seed": seed,
        "init_s": round(built, 1),
        "total_s": round(time.perf_counter() - start, 1),
    }
    (out / "shaped_model.json").write_text(json.dumps(facts, indent=2) + "\n")
    return facts


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="model folder to write")
    p.add_argument("--tokenizer", default=None, help="model folder or .gguf (default: the default model's)")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    facts = build(Path(args.out), load_tokenizer_from(args.tokenizer), device=args.device, seed=args.seed)
    print(json.dumps(facts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
