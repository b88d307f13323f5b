"""The recipe's setup, in dependency order: the device, the base model and how it is quantized
(CUDA: 4-bit nf4 with bf16 compute; CPU: the same through bitsandbytes' CPU backend when it works,
else fp32), its tokenizer, the Spider train examples (``training._data``), the LoRA config and
the TRL SFTTrainer with the recipe's callbacks; and how an adapter is saved.

Heavy libraries (torch, transformers, trl, peft) are imported inside the functions, so that
reading a config or ``--help`` does not pay for them.
"""

from __future__ import annotations

import logging
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from harness.config.training import HardwareSettings, LoraSettings, TrainingConfig, checkpoint_dir
from harness.models.loading import hub_kwargs, load_tokenizer, quantization_config
from harness.models.noise import kernels_hub_notice_dropped
from harness.progress import library_bars_only_on_a_terminal
from training._distributed import World

if TYPE_CHECKING:
    from training._data import Examples
    from training._guard import DivergenceGuard
    from training._progress import CheckpointSaver, ProgressRecorder, TimeBudget

log = logging.getLogger("training")


@dataclass(frozen=True)
class Quantization:
    """How the base model was actually loaded (which may differ from what was asked)."""

    requested: str
    used: str  # "nf4", "fp32" or "bf16"
    compute_dtype: str  # "bfloat16" or "float32"
    fallback_reason: str | None = None
    probe_s: float | None = None  # seconds the 4-bit CPU check took

    def to_dict(self) -> dict:
        return dict(vars(self))


def pick_device(hw: HardwareSettings, world: World = World()) -> str:
    import torch

    if hw.device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            "hardware.device = 'cuda' but torch sees no CUDA device; set hardware.device = 'auto' or 'cpu'"
        )
    if hw.device == "cuda" or (hw.device == "auto" and torch.cuda.is_available()):
        if world.distributed:
            # Before the model loads: the 4-bit base goes to torch.cuda.current_device().
            torch.cuda.set_device(world.local_rank)
        return "cuda"
    return "cpu"


def setup_model(resolved, hw: HardwareSettings, device: str):
    """The base model and how it was quantized.

    CUDA: 4-bit nf4 (double quantization, bf16 compute) unless ``cuda_quantization = "none"``.
    CPU: with ``cpu_quantization`` "auto" or "nf4", 4-bit through bitsandbytes' CPU backend,
    checked by one small forward and backward pass; "auto" falls back to fp32 when the load or
    the check fails, and says so in the log and the summary.
    """
    import torch

    if device == "cuda":
        if hw.cuda_quantization == "nf4":
            model = _load_model(
                resolved,
                dtype=torch.bfloat16,
                quantization_config=quantization_config("nf4"),
                device_map={"": torch.cuda.current_device()},
            )
            return model, Quantization("nf4", "nf4", "bfloat16")
        return _load_model(resolved, dtype=torch.bfloat16).to("cuda"), Quantization(
            "none", "bf16", "bfloat16"
        )

    requested = hw.cpu_quantization
    reason = None
    if requested in ("auto", "nf4"):
        t0 = time.perf_counter()
        try:
            model = _load_model(
                resolved,
                dtype=torch.bfloat16,
                quantization_config=quantization_config("nf4"),
                device_map={"": "cpu"},
            )
            check_backward(model)
            probe_s = round(time.perf_counter() - t0, 2)
            log.info("4-bit nf4 through bitsandbytes' CPU backend works (checked in %.1f s)", probe_s)
            if kernels_hub_notice_dropped():
                log.info(
                    "bitsandbytes uses its built-in CPU kernel for 4-bit matmuls: the faster one from the "
                    "kernels hub (kernels-community, package 'kernels') is not installed"
                )
            return model, Quantization(requested, "nf4", "bfloat16", None, probe_s)
        except Exception as e:
            if requested == "nf4":
                raise RuntimeError(
                    f"hardware.cpu_quantization = 'nf4', but 4-bit nf4 on CPU failed: {type(e).__name__}: {e}"
                ) from e
            reason = (
                f"4-bit nf4 through bitsandbytes' CPU backend failed ({type(e).__name__}: {str(e)[:300]})"
            )
            log.warning("%s; training the unquantized fp32 model instead", reason)
    return _load_model(resolved, dtype=torch.float32), Quantization(requested, "fp32", "float32", reason)


def _load_model(resolved, **kwargs):
    from transformers import AutoModelForCausalLM

    library_bars_only_on_a_terminal()
    return AutoModelForCausalLM.from_pretrained(resolved.path, **hub_kwargs(resolved), **kwargs)


def check_backward(model) -> None:
    """One forward and backward pass over 8 tokens; raises unless the loss and the input
    gradient are finite (what LoRA training through the frozen 4-bit layers needs)."""
    import torch

    ids = (torch.arange(8) % model.config.vocab_size)[None]
    emb = model.get_input_embeddings()(ids).detach().requires_grad_(True)
    out = model(inputs_embeds=emb, labels=ids)
    out.loss.backward()
    grad = emb.grad
    model.zero_grad(set_to_none=True)
    if not torch.isfinite(out.loss) or grad is None or not torch.isfinite(grad).all():
        raise RuntimeError(
            f"the check pass gave loss {out.loss.item()} and "
            f"{'no' if grad is None else 'a non-finite'} input gradient"
        )


def setup_tokenizer(resolved, model):
    """The base model's tokenizer (``harness.models.loading.load_tokenizer``, as the benchmarks load it),
    with an EOS the model actually stops at: a completion ending in any other token would teach
    the model to emit a token that does not end generation."""
    tok = load_tokenizer(resolved)
    stops = set()
    for source in (model.config, getattr(model, "generation_config", None)):
        ids = getattr(source, "eos_token_id", None)
        stops |= set(ids) if isinstance(ids, (list, tuple)) else ({ids} if ids is not None else set())
    if not tok.eos_token:
        raise ValueError(
            f"model {resolved.name!r}: its tokenizer has no eos_token, "
            "so training targets cannot end with one"
        )
    if stops and tok.eos_token_id not in stops:
        names = ", ".join(f"{i} {tok.convert_ids_to_tokens(i)!r}" for i in sorted(stops))
        raise ValueError(
            f"model {resolved.name!r}: the tokenizer's eos_token {tok.eos_token!r} "
            f"(id {tok.eos_token_id}) is not a token the model stops at ({names}); "
            "fix the tokenizer's eos_token (harness.models.loading) before training"
        )
    return tok


def setup_dataset(cfg: TrainingConfig, tokenizer) -> Examples:
    from training._data import build_examples

    d = cfg.data
    examples = build_examples(
        tokenizer,
        spider_dir=d.spider_dir,
        template=d.template,
        shots=d.shots,
        max_examples=d.max_examples,
        max_length=d.max_length,
        length_percentile=d.length_percentile,
        overlong=d.overlong,
        seed=cfg.seed,
        hold_out=d.hold_out,
    )
    s = examples.stats
    log.info(
        "data: %d examples from %s (template %r, %d shots), max_length %d (%s); "
        "%d dropped as overlong, %d truncated, %d without a schema",
        s["examples"],
        s["spider_dir"],
        s["template"],
        s["shots"],
        s["max_length"],
        s["max_length_source"],
        s["dropped_overlong"],
        s["truncated"],
        s["dropped_no_schema"],
    )
    return examples


def setup_peft(lora: LoraSettings):
    from peft import LoraConfig

    return LoraConfig(
        r=lora.r,
        lora_alpha=lora.lora_alpha,
        lora_dropout=lora.lora_dropout,
        target_modules=list(lora.target_modules),
        bias=lora.bias,
        task_type=lora.task_type,
    )


class TrainerParts(NamedTuple):
    """The trainer and the recipe's callbacks in it, which the run reads after training."""

    trainer: Any
    progress: ProgressRecorder
    guard: DivergenceGuard
    budget: TimeBudget | None  # None: no train.time_budget_s
    saver: CheckpointSaver


# Of train.time_budget_s, what is kept for saving the adapter after the last step.
SAVE_MARGIN_S = 10.0


def setup_trainer(
    cfg: TrainingConfig,
    model,
    tokenizer,
    examples: Examples,
    peft_config,
    quant: Quantization,
    device: str,
    staging: Path,
    callbacks,
    started: float | None = None,
    *,
    world: World = World(),
    accumulation: int | None = None,
) -> TrainerParts:
    """The SFTTrainer over ``examples``, with ``callbacks`` first, then the progress recorder,
    the divergence guard, the time budget (which covers the whole run, from ``started``) and
    the checkpoint saver."""
    from transformers import PrinterCallback
    from trl import SFTTrainer

    from training._guard import DivergenceGuard
    from training._progress import CheckpointSaver, ProgressRecorder, TimeBudget

    t = cfg.train
    args = _sft_args(cfg, examples, quant, device, staging, world, accumulation)
    progress = ProgressRecorder(desc=cfg.name)
    guard = DivergenceGuard(
        factor=cfg.guard.loss_factor, patience=cfg.guard.patience, reference_logs=cfg.guard.reference_logs
    )
    budget = (
        TimeBudget((started or time.perf_counter()) + t.time_budget_s - SAVE_MARGIN_S)
        if t.time_budget_s
        else None
    )
    holder: list = []  # the trainer, once it exists: the saver saves through it
    saver = CheckpointSaver(
        cfg.checkpoint_fractions,
        lambda f: checkpoint_dir(staging, f),
        lambda folder: save_adapter(holder[0], folder, world),
    )
    train_dataset = examples.to_dataset()
    library_bars_only_on_a_terminal()  # now that datasets is imported: its map bars too
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=train_dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[*callbacks, progress, guard, *([budget] if budget else []), saver],
    )
    holder.append(trainer)
    trainer.remove_callback(PrinterCallback)
    return TrainerParts(trainer, progress, guard, budget, saver)


def _sft_args(
    cfg: TrainingConfig,
    examples: Examples,
    quant: Quantization,
    device: str,
    staging: Path,
    world: World,
    accumulation: int | None,
):
    """The trainer's arguments (``trl.SFTConfig``) from the config's ``[train]`` table."""
    from trl import SFTConfig

    t = cfg.train
    checkpointing = t.gradient_checkpointing == "on" or (
        t.gradient_checkpointing == "auto" and device == "cuda"
    )
    return SFTConfig(
        output_dir=str(staging / "trainer"),
        seed=cfg.seed,
        data_seed=cfg.seed,
        num_train_epochs=t.epochs,
        max_steps=t.max_steps or -1,
        learning_rate=t.learning_rate,
        lr_scheduler_type=t.lr_scheduler,
        warmup_steps=t.warmup_steps,
        weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm,
        per_device_train_batch_size=t.per_device_batch_size,
        # The config's accumulation divided by the number of processes: the effective batch stays
        # per_device x accumulation.
        gradient_accumulation_steps=accumulation or t.gradient_accumulation_steps,
        gradient_checkpointing=checkpointing,
        train_sampling_strategy="group_by_length" if t.group_by_length else "random",
        ddp_backend="gloo" if world.distributed and device == "cpu" else None,
        ddp_find_unused_parameters=False if world.distributed else None,  # every LoRA weight gets a gradient
        bf16=quant.compute_dtype == "bfloat16",
        use_cpu=device == "cpu",
        max_length=examples.max_length,
        completion_only_loss=True,
        packing=False,
        logging_steps=t.logging_steps,
        logging_nan_inf_filter=False,  # the trainer would otherwise hide a NaN loss from the guard
        include_num_input_tokens_seen="non_padding",
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,  # ProgressRecorder draws the bar
    )


def save_adapter(trainer, folder: Path, world: World = World()) -> None:
    """The standard PEFT adapter files (adapter_config.json, adapter_model.safetensors) in
    ``folder``, written by rank 0: the final adapter, or a checkpoint during training.

    Under FSDP the adapter's shards are gathered first, which every rank must take part in
    (``trainer.save_model``; it also writes the tokenizer and training_args.bin beside them).
    """
    if getattr(trainer, "is_fsdp_enabled", False):
        trainer.save_model(str(folder))
    elif world.is_main:
        trainer.model.save_pretrained(str(folder))


def describe_world(trainer, world: World, cfg: TrainingConfig) -> dict:
    """How the batch was split, from the trainer's own arguments; refuses a trainer that sees
    another world than the launcher's (its effective batch would not be the config's)."""
    a = trainer.args
    if a.world_size != world.size:
        raise RuntimeError(
            f"the launcher started {world.size} processes (WORLD_SIZE) but the trainer sees {a.world_size}"
        )
    effective = a.per_device_train_batch_size * a.gradient_accumulation_steps * a.world_size
    configured = cfg.train.per_device_batch_size * cfg.train.gradient_accumulation_steps
    if effective != configured:
        raise RuntimeError(f"effective batch {effective} differs from the config's {configured}")
    return {
        "world_size": a.world_size,
        "parallel_mode": str(a.parallel_mode.value),
        "backend": a.ddp_backend or (_backend() if world.distributed else None),
        "fsdp": bool(getattr(trainer, "is_fsdp_enabled", False)),
        "per_device_batch_size": a.per_device_train_batch_size,
        "gradient_accumulation_steps": a.gradient_accumulation_steps,
        "effective_batch": effective,
    }


def _backend() -> str | None:
    import torch.distributed as dist

    return dist.get_backend() if dist.is_available() and dist.is_initialized() else None


def describe_device(device: str) -> str:
    import torch

    if device == "cuda":
        return f"cuda:{torch.cuda.current_device()} ({torch.cuda.get_device_name()})"
    return f"cpu ({torch.get_num_threads()} threads, {platform.machine()})"
