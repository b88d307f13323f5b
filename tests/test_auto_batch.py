"""``batch_size = "auto"``: accepted by every task and on the command line, 8 on a CPU, and on a
CUDA device the largest batch that fits, found once per (model, device, task) by halving on
out-of-memory and kept in the model pool so that later phases start there."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from harness.configfile import ConfigError, validate
from harness.engine.batch_fitting import split_on_oom
from harness.engine.core import Engine, GenerationSettings, LoglikSettings
from harness.models.pool import AUTO_BATCH_CAP, AUTO_CPU_BATCH, ModelPool
from harness.plugins.session import _batch_size_per_task
from harness.tasks import TASKS
from harness.tasks.mmlu.task import MMLUOptions


@dataclass(frozen=True)
class Variant:
    model: str = "org/tiny"
    load: str = "fp32"
    adapter: str = ""
    name: str = "v"
    revision: str = ""


@pytest.mark.parametrize("task", sorted(TASKS))
def test_every_task_takes_auto_or_a_number_and_refuses_other_words_naming_the_key(task):
    model = TASKS[task].settings_model
    assert model().batch_size == 8
    assert validate(model, {"batch_size": "auto"}, source="e.toml", kind="x").batch_size == "auto"
    assert validate(model, {"batch_size": 16}, source="e.toml", kind="x").batch_size == 16
    for bad in ("big", 0, True):
        with pytest.raises(ConfigError) as error:
            validate(model, {"batch_size": bad}, source="e.toml", kind="x")
        assert str(error.value).splitlines()[1:] == [
            f"  batch_size: expected a whole number >= 1 or 'auto', got {bad!r}"
        ]


def test_a_variants_mmlu_table_takes_auto_as_the_word():
    # the word goes into the null variant's fingerprint, never a number it could collide with
    assert MMLUOptions(batch_size="auto").batch_size == "auto"
    with pytest.raises(ConfigError, match="batch_size: expected a whole number >= 1 or 'auto'"):
        validate(MMLUOptions, {"batch_size": "max"}, source="e.toml", kind="x")


def test_batch_size_auto_parses_on_the_command_line_for_every_task_or_one():
    parse = _batch_size_per_task("--batch-size")
    assert parse("auto") == ("*", "auto")
    assert parse("mmlu=auto") == ("mmlu", "auto")
    assert parse("spider=4") == ("spider", 4)
    with pytest.raises(pytest.UsageError, match="--batch-size mmlu=big: expected a number >= 1 or auto"):
        parse("mmlu=big")
    with pytest.raises(pytest.UsageError, match="--batch-size 0: expected a number >= 1 or auto"):
        parse("0")
    with pytest.raises(pytest.UsageError, match="unknown task 'mml'; did you mean 'mmlu'"):
        parse("mml=auto")


def test_auto_is_the_documented_default_on_a_cpu(tiny_model_dir, tmp_path):
    pool = ModelPool(device="cpu")
    variant = Variant(model=str(tiny_model_dir))
    assert pool.batch_size(variant, "auto", "mmlu", "score_choices") == (AUTO_CPU_BATCH, ()) == (8, ())
    assert pool.batch_size(variant, 3, "mmlu", "score_choices") == (3, ())
    seen = []

    class Echo:
        def generate(self, variant, prompts, settings, tick=None):
            seen.append((len(prompts), settings.batch_size, settings.fitted_key))
            return ["x" for _ in prompts]

    engine = Engine(pool, tmp_path / "cache", backend=Echo())
    engine.generate(
        variant, [f"p{i}" for i in range(10)], GenerationSettings(batch_size="auto"), namespace="t"
    )
    assert seen == [(8, 8, ()), (2, 8, ())]  # batches of 8, no search


def test_auto_on_cuda_halves_on_oom_and_later_phases_start_at_the_size_that_fit(tmp_path):
    import torch

    pool = ModelPool(device="cuda")  # no GPU is touched: the compute below is a fake
    engine = Engine(pool, tmp_path / "cache")
    settings = engine._sized(Variant(), GenerationSettings(batch_size="auto"), "spider", "generate")
    assert settings.batch_size == AUTO_BATCH_CAP == 64 and settings.fitted_key
    tried = []

    def compute(rows):  # a model that runs out of memory above 12 prompts
        tried.append(len(rows))
        if len(rows) > 12:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return [r * 10 for r in rows]

    def phase(settings, n=100):
        return split_on_oom(
            compute,
            list(range(n)),
            size=settings.batch_size,
            fitted=pool.fitted_batches,
            key=settings.fitted_key,
        )

    assert phase(settings) == [r * 10 for r in range(100)]  # every row, in order
    assert tried[:4] == [64, 32, 16, 8] and set(tried[4:]) == {8, 4}  # halved once, then kept at 8
    assert pool.fitted_batches[settings.fitted_key] == 8

    tried.clear()  # the next phase of the same model and task: starts at 8, never runs out
    again = engine._sized(Variant(), GenerationSettings(batch_size="auto"), "spider", "generate")
    assert again.batch_size == 8 and again.fitted_key == settings.fitted_key
    phase(again, 20)
    assert tried == [8, 8, 4]

    # another model, or another request kind, searches from the cap again
    other = engine._sized(
        Variant(model="org/other"), GenerationSettings(batch_size="auto"), "spider", "generate"
    )
    assert other.batch_size == 64
    kl = engine._sized(Variant(), LoglikSettings(batch_size="auto"), "spider", "kl_to_base")
    assert kl.batch_size == 64 and kl.fitted_key != settings.fitted_key


def test_batch_size_auto_from_the_command_line_reaches_the_tasks(tmp_path):
    from harness.config.experiment import Overrides, load_experiment

    path = tmp_path / "exp.toml"
    path.write_text('[experiment]\nname = "x"\n[mmlu]\nbatch_size = 4\n[[variants]]\nname = "base"\n')
    exp = load_experiment(path, Overrides(batch_sizes={"*": 16, "mmlu": "auto"}))
    assert exp.settings("mmlu").batch_size == "auto" and exp.settings("spider").batch_size == 16
    with pytest.raises(ConfigError, match="--batch-size mml=...: unknown task 'mml'"):
        load_experiment(path, Overrides(batch_sizes={"mml": "auto"}))


def test_the_engine_finds_the_size_once_and_the_models_next_phase_starts_there(
    tiny_model_dir, tmp_path, monkeypatch
):
    import contextlib

    import torch

    from harness.engine import hf_backend as engine_module

    tried = []

    def generate_batch(model, tokenizer, prompts, settings, on_step=None):  # runs out above 12
        tried.append(len(prompts))
        if len(prompts) > 12:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return ["x"] * len(prompts)

    monkeypatch.setattr(engine_module, "generate_batch", generate_batch)
    pool = ModelPool(device="cuda")  # no GPU is touched: the model is never loaded
    monkeypatch.setattr(pool, "activated", lambda variant, unmerged=False: contextlib.nullcontext(None))
    engine = Engine(pool, tmp_path / "cache")
    variant, auto = Variant(model=str(tiny_model_dir)), GenerationSettings(batch_size="auto")
    raws, phase = engine.generate(variant, [f"a{i}" for i in range(40)], auto, namespace="spider")
    assert raws == ["x"] * 40 and tried[:4] == [40, 20, 10, 10]  # the engine's first batch: 40 of 64
    assert phase.info["auto_batch_size"] == 10 and "batch_size" not in phase.fingerprint["generation"]
    tried.clear()
    _, again = engine.generate(variant, [f"b{i}" for i in range(30)], auto, namespace="spider")
    assert tried == [10, 10, 10] and again.cache_key == phase.cache_key  # no search, same cache entry


def test_a_batch_size_still_auto_when_a_batch_is_cut_is_refused():
    """The engine decides "auto" before any batch; a size that reaches a batch undecided is a bug,
    named, not a TypeError from arithmetic on a string."""
    from harness.engine.batch_fitting import resolved_batch_size

    assert resolved_batch_size(8) == 8
    with pytest.raises(ValueError, match="'auto' reached a batch undecided"):
        resolved_batch_size("auto")
