"""What a user would otherwise run: a plain TRL ``SFTTrainer`` QLoRA script, on the examples and
with the settings of training/configs/mistral7b.toml (nf4 with bf16 compute, LoRA r=16 alpha=16 on
every projection, micro-batches of 4 x 8 accumulation steps, lr 2e-4, recomputed activations,
loss on the completion only), TRL's defaults for the rest (random order, no length grouping).

    python scripts/baseline_trl_qlora.py --model /tmp/mistral7b-shaped --examples 320 --max-steps 10

Prints and (with ``--json``) writes: tokens seen (not padding), the training loop's seconds
(``train_runtime``), tokens/s, and torch's peak GPU memory.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="a model folder")
    p.add_argument("--examples", type=int, default=320)
    p.add_argument("--max-steps", type=int, default=10)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--accumulation", type=int, default=8)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)

    import torch
    from peft import LoraConfig
    from transformers import BitsAndBytesConfig
    from trl import SFTConfig, SFTTrainer

    from harness.models.loading import load_tokenizer, resolve_model
    from training._data import build_examples

    tokenizer = load_tokenizer(resolve_model(args.model))
    tokenizer.padding_side = "right"  # TRL's collator pads on the right
    examples = build_examples(
        tokenizer,
        spider_dir="",
        template="schema",
        shots=0,
        max_examples=args.examples,
        max_length=0,
        length_percentile=100.0,
        overlong="drop",
        seed=0,
    )
    quant = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_compute_dtype=torch.bfloat16,
        bnb_4bit_use_double_quant=True,
    )
    lora = LoraConfig(
        r=16,
        lora_alpha=16,
        lora_dropout=0.05,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        bias="none",
        task_type="CAUSAL_LM",
    )
    with tempfile.TemporaryDirectory() as tmp:
        config = SFTConfig(
            output_dir=tmp,
            seed=0,
            max_steps=args.max_steps,
            learning_rate=args.lr,
            per_device_train_batch_size=args.batch,
            gradient_accumulation_steps=args.accumulation,
            gradient_checkpointing=True,
            bf16=True,
            max_length=examples.max_length,
            completion_only_loss=True,
            logging_steps=1,
            include_num_input_tokens_seen="non_padding",
            save_strategy="no",
            report_to="none",
            disable_tqdm=True,
            model_init_kwargs={"dtype": torch.bfloat16, "quantization_config": quant, "device_map": {"": 0}},
        )
        trainer = SFTTrainer(
            model=args.model,
            args=config,
            train_dataset=examples.to_dataset(),
            processing_class=tokenizer,
            peft_config=lora,
        )
        torch.cuda.reset_peak_memory_stats()
        out = trainer.train()
    tokens = int(trainer.state.num_input_tokens_seen)
    seconds = float(out.metrics["train_runtime"])
    result = {
        "tokens": tokens,
        "seconds": round(seconds, 2),
        "tokens_per_s": round(tokens / seconds, 1),
        "steps": trainer.state.global_step,
        "final_loss": trainer.state.log_history[-2].get("loss")
        if len(trainer.state.log_history) > 1
        else None,
        "peak_allocated_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
        "peak_reserved_gib": round(torch.cuda.max_memory_reserved() / 2**30, 2),
        "examples": len(examples.prompts),
        "max_length": examples.max_length,
    }
    print(json.dumps(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
