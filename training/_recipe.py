"""The QLoRA recipe: TRL SFTTrainer + PEFT LoRA + bitsandbytes 4-bit, read from top to bottom.

:func:`run` takes a validated :class:`~harness.config.training.TrainingConfig` and calls, in order,
``_setup_model`` (CUDA: 4-bit nf4 with bf16 compute; CPU: the same through bitsandbytes' CPU
backend when it works, else fp32), ``_setup_tokenizer``, ``_setup_dataset`` (Spider train
through ``harness.tasks.spider``, every completion ending with EOS), ``_setup_peft``,
``_setup_trainer``, then trains and saves. The adapter is written into a staging folder and
moved to the output path only when the run succeeded; a diverged or failed run leaves any
earlier adapter there untouched and its summary in ``<output>.failed/``.

Checkpoints (``[checkpoints] at = [...]``) are standard PEFT adapter folders saved part-way,
each with its own ``training_summary.json``, written into ``checkpoints/<fraction>/`` of the
same staging folder: they are published with the run's final adapter, or discarded with it.

Under ``torchrun`` / ``accelerate launch`` (``training._distributed``) every process runs this
same recipe on its share of each batch (DDP, or FSDP from an accelerate config); each process
accumulates ``gradient_accumulation_steps / processes`` micro-batches, so the effective batch is
the config's whatever the number of processes, and only rank 0 writes the adapter, the summary
or the failure folder.
"""

from __future__ import annotations

import logging
import math
import os
import platform
import shutil
import tempfile
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.config.training import (
    HardwareSettings,
    LoraSettings,
    TrainingConfig,
    checkpoint_dir,
    checkpoint_step,
    config_fingerprint,
)
from harness.files import file_sha256, write_json
from harness.models.loading import hub_kwargs, load_tokenizer, quantization_config, resolve_model
from harness.models.noise import kernels_hub_notice_dropped
from harness.progress import library_bars_only_on_a_terminal
from harness.records.manifest import library_versions
from training._distributed import World, split_accumulation, world_from_env
from training._output import (
    SUMMARY_NAME,
    check_output,
    discard,
    failed_dir,
    make_staging,
    publish,
    record_failure,
)

log = logging.getLogger("training")

STATUSES = ("succeeded", "diverged", "failed")
_LIBRARIES = (
    "torch",
    "transformers",
    "peft",
    "trl",
    "accelerate",
    "datasets",
    "bitsandbytes",
    "tokenizers",
    "safetensors",
)


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


@dataclass(frozen=True)
class TrainingResult:
    """What one run ended with. ``summary_path`` is inside the adapter on success, in
    ``<output>.failed/`` otherwise."""

    status: str
    output: Path
    summary_path: Path
    summary: dict
    skipped: bool = False  # --missing-only: not trained now; status and summary are the earlier run's

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"

    @property
    def reason(self) -> str | None:
        return self.summary.get("reason")


def run(cfg: TrainingConfig, *, callbacks: Sequence = (), sweep_values: dict | None = None) -> TrainingResult:
    """Train the adapter ``cfg`` describes and publish it at ``cfg.output`` if the run succeeds.

    Args:
        cfg: a validated config (``load_config`` / ``load_sweep``).
        callbacks: extra ``TrainerCallback``s; they run before the recipe's own progress
            recorder and divergence guard, so they see (and, in tests, may alter) each log first.
        sweep_values: the swept keys and values of this run, recorded in its summary.

    Returns:
        The result, whatever the status; it raises only for an unusable output path
        (``OutputError``) and re-raises KeyboardInterrupt after recording the failure.
    """
    started = time.perf_counter()
    output = Path(cfg.output)
    check_output(output)
    world = world_from_env()
    # Before anything loads: a batch that cannot be split over the processes is a config error.
    accumulation = split_accumulation(
        cfg.train.per_device_batch_size, cfg.train.gradient_accumulation_steps, world.size
    )
    summary = _base_summary(cfg, sweep_values)
    # Only rank 0 writes beside the output; the others get a private scratch folder for the trainer.
    staging = (
        make_staging(output)
        if world.is_main
        else Path(tempfile.mkdtemp(prefix=f".training-rank{world.rank}-"))
    )
    progress = guard = saver = None
    try:
        from transformers import set_seed

        set_seed(cfg.seed)
        device = _setup_device(cfg.hardware, world)
        summary["device"] = _describe_device(device)
        resolved = resolve_model(cfg.model, cfg.revision or None)
        summary["base_model"] = {
            "name": resolved.name,
            "path": resolved.path,
            "fingerprint": resolved.fingerprint,
            "hub_id": resolved.hub_id,
            "revision": resolved.revision,
            "note": resolved.note,
        }
        model, quant = _setup_model(resolved, cfg.hardware, device)
        summary["quantization"] = quant.to_dict()
        tokenizer = _setup_tokenizer(resolved, model)
        # After the tokenizer: prompts go through its chat template, completions end with its EOS.
        examples = _setup_dataset(cfg, tokenizer)
        summary["data"] = examples.stats
        peft_config = _setup_peft(cfg.lora)
        # After the dataset: max_length comes from the measured example lengths.
        trainer, progress, guard, budget, saver = _setup_trainer(
            cfg,
            model,
            tokenizer,
            examples,
            peft_config,
            quant,
            device,
            staging,
            callbacks,
            started,
            world=world,
            accumulation=accumulation,
        )
        summary["distributed"] = _describe_world(trainer, world, cfg)

        log.info(
            "training %s on %s: %d examples, max_length %d, %s base, lr %g, batch %d x %d",
            cfg.name,
            summary["device"],
            examples.stats["examples"],
            examples.max_length,
            quant.used,
            cfg.train.learning_rate,
            cfg.train.per_device_batch_size,
            cfg.train.gradient_accumulation_steps,
        )
        trainer.train()
        progress.close()
        _record_training(summary, progress, guard, len(examples.prompts), cfg)
        if budget is not None and budget.stopped_at is not None:
            summary["cut_short"] = True
            warning = (
                f"cut short by train.time_budget_s = {cfg.train.time_budget_s:g} s "
                f"(a safety stop for the whole run): stopped after step {budget.stopped_at} "
                f"of {progress.max_steps}, as one more step (up to {budget.step_s:.0f} s so far) "
                f"would pass it; {summary['examples_seen']} examples and "
                f"{summary['tokens_seen']} tokens seen, final loss "
                f"{format_loss(summary['final_loss'])}. The adapter is usable but trained less than planned"
            )
            summary["warnings"].append(warning)
            log.warning("%s: %s", cfg.name, warning)
        if guard.reason is not None:
            return _fail(cfg, summary, output, staging, "diverged", guard.reason, started, world, saver)
        for warning in _loss_warnings(progress.curve, cfg):
            summary["warnings"].append(warning)
            log.warning("%s: %s", cfg.name, warning)

        _save(trainer, staging, world)
        shutil.rmtree(staging / "trainer", ignore_errors=True)
        if not world.is_main:  # rank 0 checks, publishes and reports the adapter
            summary.update(
                status="succeeded", reason=None, wall_time_s=round(time.perf_counter() - started, 2)
            )
            return TrainingResult("succeeded", output, output / SUMMARY_NAME, summary)
        for folder in [staging, *(r["folder"] for r in saver.reached)]:
            bad = _nonfinite_weights(folder / "adapter_model.safetensors")
            if bad:
                where = "the trained adapter" if folder == staging else f"its checkpoint {folder.name}"
                return _fail(
                    cfg,
                    summary,
                    output,
                    staging,
                    "diverged",
                    f"{where} holds non-finite weights ({bad})",
                    started,
                    world,
                    saver,
                )
        summary["adapter_sha256"] = file_sha256(staging / "adapter_model.safetensors")
        summary.update(status="succeeded", reason=None, wall_time_s=round(time.perf_counter() - started, 2))
        summary["checkpoints"] = _checkpoint_list(
            cfg, output, saver, progress.max_steps, summary["steps_done"], published=True
        )
        for reached in saver.reached:
            write_json(
                reached["folder"] / SUMMARY_NAME, _checkpoint_summary(summary, reached, progress, cfg, output)
            )
        write_json(staging / SUMMARY_NAME, summary)
        publish(staging, output)  # the adapter and its checkpoints appear together, or not at all
        log.info(
            "adapter %s written: %d steps%s, final loss %s, %.0f tokens/s, %.0f s",
            output,
            summary["steps_done"],
            f" (checkpoints {', '.join(format(r['fraction'], 'g') for r in saver.reached)})"
            if saver.reached
            else "",
            format_loss(summary["final_loss"]),
            summary["tokens_per_s"],
            summary["wall_time_s"],
        )
        return TrainingResult("succeeded", output, output / SUMMARY_NAME, summary)
    except KeyboardInterrupt as e:
        _close(progress)
        if progress is not None:
            _record_training(summary, progress, guard, None, cfg)
        _fail(
            cfg,
            summary,
            output,
            staging,
            "failed",
            f"interrupted ({e or 'KeyboardInterrupt'})",
            started,
            world,
            saver,
        )
        raise
    except (
        Exception
    ) as e:  # any failure becomes a recorded, visible "failed" run, never a half-written adapter
        _close(progress)
        log.error("training %s failed:\n%s", cfg.name, traceback.format_exc())
        if progress is not None:
            _record_training(summary, progress, guard, None, cfg)
        return _fail(
            cfg, summary, output, staging, "failed", f"{type(e).__name__}: {e}", started, world, saver
        )
    finally:
        discard(staging)


# --- setup, in dependency order -----------------------------------------------------------------


def _setup_device(hw: HardwareSettings, world: World = World()) -> str:
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


def _setup_model(resolved, hw: HardwareSettings, device: str):
    """The base model and how it was quantized.

    CUDA: 4-bit nf4 (double quantization, bf16 compute) unless ``cuda_quantization = "none"``.
    CPU: with ``cpu_quantization`` "auto" or "nf4", 4-bit through bitsandbytes' CPU backend,
    checked by one small forward and backward pass; "auto" falls back to fp32 when the load or
    the check fails, and says so in the log and the summary.
    """
    import torch

    if device == "cuda":
        if hw.cuda_quantization == "nf4":
            model = _load(
                resolved,
                dtype=torch.bfloat16,
                quantization_config=quantization_config("nf4"),
                device_map={"": torch.cuda.current_device()},
            )
            return model, Quantization("nf4", "nf4", "bfloat16")
        return _load(resolved, dtype=torch.bfloat16).to("cuda"), Quantization("none", "bf16", "bfloat16")

    requested = hw.cpu_quantization
    reason = None
    if requested in ("auto", "nf4"):
        t0 = time.perf_counter()
        try:
            model = _load(
                resolved,
                dtype=torch.bfloat16,
                quantization_config=quantization_config("nf4"),
                device_map={"": "cpu"},
            )
            _check_backward(model)
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
    return _load(resolved, dtype=torch.float32), Quantization(requested, "fp32", "float32", reason)


def _load(resolved, **kwargs):
    from transformers import AutoModelForCausalLM

    library_bars_only_on_a_terminal()
    return AutoModelForCausalLM.from_pretrained(resolved.path, **hub_kwargs(resolved), **kwargs)


def _check_backward(model) -> None:
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


def _setup_tokenizer(resolved, model):
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


def _setup_dataset(cfg: TrainingConfig, tokenizer):
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


def _setup_peft(lora: LoraSettings):
    from peft import LoraConfig

    return LoraConfig(
        r=lora.r,
        lora_alpha=lora.lora_alpha,
        lora_dropout=lora.lora_dropout,
        target_modules=list(lora.target_modules),
        bias=lora.bias,
        task_type=lora.task_type,
    )


def _setup_trainer(
    cfg: TrainingConfig,
    model,
    tokenizer,
    examples,
    peft_config,
    quant: Quantization,
    device: str,
    staging: Path,
    callbacks,
    started: float | None = None,
    *,
    world: World = World(),
    accumulation: int | None = None,
):
    from transformers import PrinterCallback
    from trl import SFTConfig, SFTTrainer

    from training._guard import DivergenceGuard
    from training._progress import CheckpointSaver, ProgressRecorder, TimeBudget

    t = cfg.train
    checkpointing = t.gradient_checkpointing == "on" or (
        t.gradient_checkpointing == "auto" and device == "cuda"
    )
    args = SFTConfig(
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
    progress = ProgressRecorder(desc=cfg.name)
    guard = DivergenceGuard(
        factor=cfg.guard.loss_factor, patience=cfg.guard.patience, reference_logs=cfg.guard.reference_logs
    )
    # The budget covers the whole run, from `started`; saving the adapter takes seconds, so keep 10 s for it.
    budget = (
        TimeBudget((started or time.perf_counter()) + t.time_budget_s - 10.0) if t.time_budget_s else None
    )
    holder: list = []  # the trainer, once it exists: the saver saves through it
    saver = CheckpointSaver(
        cfg.checkpoint_fractions,
        lambda f: checkpoint_dir(staging, f),
        lambda folder: _save(holder[0], folder, world),
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
    return trainer, progress, guard, budget, saver


# --- after training ------------------------------------------------------------------------------


def _save(trainer, folder: Path, world: World = World()) -> None:
    """The standard PEFT adapter files (adapter_config.json, adapter_model.safetensors) in
    ``folder``, written by rank 0: the final adapter, or a checkpoint during training.

    Under FSDP the adapter's shards are gathered first, which every rank must take part in
    (``trainer.save_model``; it also writes the tokenizer and training_args.bin beside them).
    """
    if getattr(trainer, "is_fsdp_enabled", False):
        trainer.save_model(str(folder))
    elif world.is_main:
        trainer.model.save_pretrained(str(folder))


def _nonfinite_weights(path: Path) -> str | None:
    import torch
    from safetensors.torch import load_file

    bad = [name for name, tensor in load_file(str(path)).items() if not torch.isfinite(tensor).all()]
    return f"{len(bad)} tensors, e.g. {bad[0]}" if bad else None


def _record_training(summary: dict, progress, guard, n_examples: int | None, cfg: TrainingConfig) -> None:
    steps = progress.steps
    finite = [r["loss"] for r in progress.curve if isinstance(r["loss"], float)]
    fraction = steps / progress.max_steps if progress.max_steps else 0.0
    summary.update(
        load_average_at_end=_load_average(),
        steps_planned=progress.max_steps,
        steps_done=steps,
        fraction_done=round(fraction, 6),
        epochs_done=round(fraction * cfg.planned_epochs, 6),  # as training_plan's names count epochs
        tokens_seen=progress.tokens,
        train_time_s=round(progress.train_seconds, 2),
        train_cpu_s=round(progress.cpu_seconds, 2),
        tokens_per_s=round(progress.tokens_per_s, 2),
        first_loss=progress.curve[0]["loss"] if progress.curve else None,
        final_loss=progress.curve[-1]["loss"] if progress.curve else None,
        min_loss=min(finite) if finite else None,
        loss_curve=progress.curve,
    )
    if n_examples is not None:
        summary["examples_seen"] = _examples_seen(
            steps, n_examples, cfg.train.per_device_batch_size, cfg.train.gradient_accumulation_steps
        )
        summary["data_passes"] = round(
            summary["examples_seen"] / n_examples, 6
        )  # measured epochs, for max_steps runs
    if guard is not None and guard.reason is not None:
        summary["diverged_at_step"] = guard.step


def _loss_warnings(curve: list[dict], cfg: TrainingConfig) -> list[str]:
    """What a reader of a succeeded run should not miss: it ended worse than it started, or it
    spiked past the divergence bound for fewer logs than ``guard.patience``."""
    losses = [r["loss"] for r in curve if isinstance(r["loss"], float)]
    if len(losses) < 2:
        return []
    warnings = []
    first, last, peak = losses[0], losses[-1], max(losses)
    if last > first:
        warnings.append(
            f"the last logged loss ({last:.4g}) is above the first ({first:.4g}): "
            "the run left the model worse on its own training batches"
        )
    if peak > cfg.guard.loss_factor * first:
        warnings.append(
            f"the loss peaked at {peak:.4g}, above the divergence bound "
            f"{cfg.guard.loss_factor:g} x {first:.4g}, "
            f"for fewer than guard.patience = {cfg.guard.patience} logs in a row"
        )
    return warnings


def _examples_seen(steps: int, n: int, batch: int, accumulation: int) -> int:
    """Examples consumed by ``steps`` optimizer steps over ``n`` examples (no drop_last)."""
    per_epoch = max(1, math.ceil(math.ceil(n / batch) / accumulation))
    full, rest = divmod(steps, per_epoch)
    return full * n + min(rest * batch * accumulation, n)


def _fail(
    cfg: TrainingConfig,
    summary: dict,
    output: Path,
    staging: Path,
    status: str,
    reason: str,
    started: float,
    world: World = World(),
    saver=None,
) -> TrainingResult:
    summary.update(status=status, reason=reason, wall_time_s=round(time.perf_counter() - started, 2))
    reached = saver.reached if saver is not None else []
    summary["checkpoints"] = _checkpoint_list(
        cfg, output, saver, summary.get("steps_planned"), summary.get("steps_done"), published=False
    )
    summary["checkpoints_discarded"] = [r["fraction"] for r in reached]
    discard(staging)
    if not world.is_main:  # rank 0 writes the failure folder
        return TrainingResult(status, output, failed_dir(output) / SUMMARY_NAME, summary)
    path = record_failure(output, summary)
    kept = (
        "the earlier adapter there is unchanged"
        if (output / "adapter_config.json").is_file()
        else "no adapter was written"
    )
    lost = (
        f"; the checkpoints it had reached ({', '.join(format(r['fraction'], 'g') for r in reached)}) "
        "were discarded with it"
        if reached
        else ""
    )
    log.error(
        "training %s %s: %s; summary in %s (%s at %s%s)",
        summary["config"]["name"],
        status,
        reason,
        path,
        kept,
        output,
        lost,
    )
    return TrainingResult(status, output, path, summary)


def _checkpoint_list(
    cfg: TrainingConfig, output: Path, saver, steps_planned, steps_done, *, published: bool
) -> list[dict]:
    """The summary's ``checkpoints``: per fraction of ``[checkpoints] at``, its step, folder and
    whether it was saved (published with this run); fraction 1 is the final adapter at ``output``."""
    reached = {r["fraction"] for r in (saver.reached if saver is not None else [])}
    rows = []
    for fraction in cfg.checkpoint_fractions:
        step = checkpoint_step(fraction, steps_planned) if steps_planned else None
        if fraction >= 1.0:
            saved = published and step is not None and (steps_done or 0) >= step
        else:
            saved = published and fraction in reached
        rows.append(
            {
                "fraction": fraction,
                "step": step,
                "path": str(checkpoint_dir(output, fraction)),
                "saved": saved,
            }
        )
    return rows


def _checkpoint_summary(run: dict, reached: dict, progress, cfg: TrainingConfig, output: Path) -> dict:
    """The ``training_summary.json`` of one checkpoint: the run's setup, and its training up to
    the checkpoint's step."""
    step, fraction = reached["step"], reached["fraction"]
    curve = [r for r in progress.curve if r["step"] <= step]
    finite = [r["loss"] for r in curve if isinstance(r["loss"], float)]
    n = run["data"]["examples"]
    examples = _examples_seen(step, n, cfg.train.per_device_batch_size, cfg.train.gradient_accumulation_steps)
    setup = {
        k: run[k]
        for k in (
            "config",
            "config_file",
            "config_fingerprint",
            "sweep_point",
            "seed",
            "started_at",
            "device",
            "base_model",
            "quantization",
            "data",
            "distributed",
            "libraries",
            "python",
        )
        if k in run
    }
    return {
        "status": "succeeded",
        "reason": None,
        "cut_short": False,
        "warnings": [],
        "checkpoint": {
            "fraction": fraction,
            "step": step,
            "run_output": str(output),
            "run_summary": str(output / SUMMARY_NAME),
        },
        "output": str(checkpoint_dir(output, fraction)),
        **setup,
        "fraction_done": fraction,
        "epochs_done": float(f"{fraction * cfg.planned_epochs:.12g}"),
        "steps_done": step,
        "steps_planned": run["steps_planned"],
        "examples_seen": examples,
        "data_passes": round(examples / n, 6),
        "tokens_seen": reached["tokens_seen"],
        "train_time_s": reached["elapsed_s"],
        "first_loss": curve[0]["loss"] if curve else None,
        "final_loss": curve[-1]["loss"] if curve else None,
        "min_loss": min(finite) if finite else None,
        "loss_curve": curve,
        "adapter_sha256": file_sha256(reached["folder"] / "adapter_model.safetensors"),
    }


def format_loss(loss) -> str:
    """A loss for a printed line: 4 decimals (the summaries keep the float)."""
    return f"{loss:.4f}" if isinstance(loss, float) else str(loss)


def _close(progress) -> None:
    if progress is not None:
        progress.close()


# --- the summary ---------------------------------------------------------------------------------


def _base_summary(cfg: TrainingConfig, sweep_values: dict | None) -> dict:
    return {
        "status": "failed",
        "reason": "did not finish",
        "cut_short": False,
        "warnings": [],
        "config": cfg.to_dict(),
        "config_fingerprint": config_fingerprint(cfg),
        "config_file": cfg.source,
        "sweep_point": sweep_values or None,
        "seed": cfg.seed,
        "output": cfg.output,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "load_average_at_start": _load_average(),  # tokens/s on a shared CPU means little without it
        "libraries": library_versions(_LIBRARIES),
        "python": platform.python_version(),
    }


def _load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def _describe_world(trainer, world: World, cfg: TrainingConfig) -> dict:
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


def _describe_device(device: str) -> str:
    import torch

    if device == "cuda":
        return f"cuda:{torch.cuda.current_device()} ({torch.cuda.get_device_name()})"
    return f"cpu ({torch.get_num_threads()} threads, {platform.machine()})"
