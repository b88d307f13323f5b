"""The QLoRA recipe: TRL SFTTrainer + PEFT LoRA + bitsandbytes 4-bit, read from top to bottom.

:func:`run` takes a validated :class:`~harness.config.training.TrainingConfig` and goes through
three steps. ``_setup`` (``training._setup``, in dependency order): the device, the base model
(CUDA: 4-bit nf4 with bf16 compute; CPU: the same through bitsandbytes' CPU backend when it
works, else fp32), its tokenizer, the dataset (Spider train through ``harness.tasks.spider``,
every completion ending with EOS), the LoRA config and the trainer. ``_train``: trains, and
records how it went. ``_publish``: saves the adapter and its checkpoints and moves them to the
output path. The adapter is written into a staging folder and moved to the output path only when
the run succeeded; a diverged or failed run leaves any earlier adapter there untouched and its
summary in ``<output>.failed/``. The summary (``training._summary.RunSummary``) is filled in by
each step and written as ``training_summary.json``.

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
import shutil
import tempfile
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.config.training import TrainingConfig
from harness.files import file_sha256, write_json
from harness.models.loading import resolve_model
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
from training._setup import (
    TrainerParts,
    describe_device,
    describe_world,
    pick_device,
    save_adapter,
    setup_dataset,
    setup_model,
    setup_peft,
    setup_tokenizer,
    setup_trainer,
)
from training._summary import RunSummary, checkpoint_list, checkpoint_summary, loss_warnings

log = logging.getLogger("training")

STATUSES = ("succeeded", "diverged", "failed")


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


@dataclass
class _Run:
    """One run on its way: where it writes, its summary so far, and its trainer once set up."""

    cfg: TrainingConfig
    output: Path
    staging: Path
    world: World
    started: float
    summary: RunSummary
    parts: TrainerParts | None = None
    n_examples: int = 0

    def elapsed(self) -> float:
        return round(time.perf_counter() - self.started, 2)


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
    summary = RunSummary.start(cfg, sweep_values)
    # Only rank 0 writes beside the output; the others get a private scratch folder for the trainer.
    staging = (
        make_staging(output)
        if world.is_main
        else Path(tempfile.mkdtemp(prefix=f".training-rank{world.rank}-"))
    )
    state = _Run(cfg, output, staging, world, started, summary)
    try:
        _setup(state, callbacks, accumulation)
        diverged = _train(state)
        if diverged is not None:
            return _fail(state, "diverged", diverged)
        return _publish(state)
    except KeyboardInterrupt as e:
        _record_partial(state)
        _fail(state, "failed", f"interrupted ({e or 'KeyboardInterrupt'})")
        raise
    except (
        Exception
    ) as e:  # any failure becomes a recorded, visible "failed" run, never a half-written adapter
        if state.parts is not None:
            state.parts.progress.close()
        log.error("training %s failed:\n%s", cfg.name, traceback.format_exc())
        _record_partial(state)
        return _fail(state, "failed", f"{type(e).__name__}: {e}")
    finally:
        discard(staging)


def _setup(state: _Run, callbacks: Sequence, accumulation: int) -> None:
    """Everything training needs, in dependency order, each step recorded in the summary."""
    from transformers import set_seed

    cfg, summary, world = state.cfg, state.summary, state.world
    set_seed(cfg.seed)
    device = pick_device(cfg.hardware, world)
    summary.device = describe_device(device)
    resolved = resolve_model(cfg.model, cfg.revision or None)
    summary.base_model = {
        "name": resolved.name,
        "path": resolved.path,
        "fingerprint": resolved.fingerprint,
        "hub_id": resolved.hub_id,
        "revision": resolved.revision,
        "note": resolved.note,
    }
    model, quant = setup_model(resolved, cfg.hardware, device)
    summary.quantization = quant.to_dict()
    tokenizer = setup_tokenizer(resolved, model)
    # After the tokenizer: prompts go through its chat template, completions end with its EOS.
    examples = setup_dataset(cfg, tokenizer)
    summary.data = examples.stats
    state.n_examples = len(examples.prompts)
    # After the dataset: max_length comes from the examples' lengths.
    state.parts = setup_trainer(
        cfg,
        model,
        tokenizer,
        examples,
        setup_peft(cfg.lora),
        quant,
        device,
        state.staging,
        callbacks,
        state.started,
        world=world,
        accumulation=accumulation,
    )
    summary.distributed = describe_world(state.parts.trainer, world, cfg)
    log.info(
        "training %s on %s: %d examples, max_length %d, %s base, lr %g, batch %d x %d",
        cfg.name,
        summary.device,
        examples.stats["examples"],
        examples.max_length,
        quant.used,
        cfg.train.learning_rate,
        cfg.train.per_device_batch_size,
        cfg.train.gradient_accumulation_steps,
    )


def _train(state: _Run) -> str | None:
    """Train, and record how it went; the divergence guard's reason when the run diverged."""
    assert state.parts is not None
    cfg, summary = state.cfg, state.summary
    trainer, progress, guard, budget, _ = state.parts
    trainer.train()
    progress.close()
    summary.record_training(progress, guard, state.n_examples, cfg)
    if budget is not None and budget.stopped_at is not None:
        summary.cut_short = True
        warning = (
            f"cut short by train.time_budget_s = {cfg.train.time_budget_s:g} s "
            f"(a safety stop for the whole run): stopped after step {budget.stopped_at} "
            f"of {progress.max_steps}, as one more step (up to {budget.step_s:.0f} s so far) "
            f"would pass it; {summary.examples_seen} examples and "
            f"{progress.tokens} tokens seen, final loss "
            f"{format_loss(progress.curve[-1]['loss'] if progress.curve else None)}. "
            "The adapter is usable but trained less than planned"
        )
        summary.warn(warning)
        log.warning("%s: %s", cfg.name, warning)
    if guard.reason is not None:
        return guard.reason
    for warning in loss_warnings(progress.curve, cfg):
        summary.warn(warning)
        log.warning("%s: %s", cfg.name, warning)
    return None


def _publish(state: _Run) -> TrainingResult:
    """Save the adapter and its checkpoints with their summaries and move them to the output
    path together (rank 0); refused as diverged if any holds a non-finite weight."""
    assert state.parts is not None
    cfg, summary, output, staging, world = state.cfg, state.summary, state.output, state.staging, state.world
    trainer, progress, _, _, saver = state.parts
    save_adapter(trainer, staging, world)
    shutil.rmtree(staging / "trainer", ignore_errors=True)
    if not world.is_main:  # rank 0 checks, publishes and reports the adapter
        summary.end("succeeded", None, state.elapsed())
        return TrainingResult("succeeded", output, output / SUMMARY_NAME, summary.to_dict())
    for folder in [staging, *(r["folder"] for r in saver.reached)]:
        bad = _nonfinite_weights(folder / "adapter_model.safetensors")
        if bad:
            where = "the trained adapter" if folder == staging else f"its checkpoint {folder.name}"
            return _fail(state, "diverged", f"{where} holds non-finite weights ({bad})")
    summary.adapter_sha256 = file_sha256(staging / "adapter_model.safetensors")
    summary.end("succeeded", None, state.elapsed())
    summary.checkpoints = checkpoint_list(
        cfg, output, saver, progress.max_steps, summary.steps_done, published=True
    )
    written = summary.to_dict()
    for reached in saver.reached:
        write_json(
            reached["folder"] / SUMMARY_NAME, checkpoint_summary(written, reached, progress, cfg, output)
        )
    write_json(staging / SUMMARY_NAME, written)
    publish(staging, output)  # the adapter and its checkpoints appear together, or not at all
    log.info(
        "adapter %s written: %d steps%s, final loss %s, %.0f tokens/s, %.0f s",
        output,
        written["steps_done"],
        f" (checkpoints {', '.join(format(r['fraction'], 'g') for r in saver.reached)})"
        if saver.reached
        else "",
        format_loss(written["final_loss"]),
        written["tokens_per_s"],
        written["wall_time_s"],
    )
    return TrainingResult("succeeded", output, output / SUMMARY_NAME, written)


def _record_partial(state: _Run) -> None:
    """How far training went before a failure (nothing when the trainer never existed)."""
    if state.parts is not None:
        state.parts.progress.close()
        state.summary.record_training(state.parts.progress, state.parts.guard, None, state.cfg)


def _fail(state: _Run, status: str, reason: str) -> TrainingResult:
    """Record a failed or diverged run: its summary in ``<output>.failed/`` (rank 0), its staging
    folder and checkpoints discarded, any earlier adapter at the output left as it was."""
    cfg, summary, output = state.cfg, state.summary, state.output
    saver = state.parts.saver if state.parts is not None else None
    summary.end(status, reason, state.elapsed())
    reached = saver.reached if saver is not None else []
    summary.checkpoints = checkpoint_list(
        cfg, output, saver, summary.steps_planned, summary.steps_done, published=False
    )
    summary.checkpoints_discarded = [r["fraction"] for r in reached]
    discard(state.staging)
    written = summary.to_dict()
    if not state.world.is_main:  # rank 0 writes the failure folder
        return TrainingResult(status, output, failed_dir(output) / SUMMARY_NAME, written)
    path = record_failure(output, written)
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
        "training %s %s: %s; summary in %s (%s at %s%s)", cfg.name, status, reason, path, kept, output, lost
    )
    return TrainingResult(status, output, path, written)


def _nonfinite_weights(path: Path) -> str | None:
    import torch
    from safetensors.torch import load_file

    bad = [name for name, tensor in load_file(str(path)).items() if not torch.isfinite(tensor).all()]
    return f"{len(bad)} tensors, e.g. {bad[0]}" if bad else None


def format_loss(loss) -> str:
    """A loss for a printed line: 4 decimals (the summaries keep the float)."""
    return f"{loss:.4f}" if isinstance(loss, float) else str(loss)
