"""Models and adapters as users name them: hub revisions resolved to the commit loaded (a fake
hub cache built in tmp, no network), load modes by device, adapters that travel and are refused
on another base, --model and --batch-size overrides, and backends as declared units."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.config.experiment import ConfigError, Overrides, check_adapters, load_experiment, model_note
from harness.engine.core import Engine, GenerationSettings
from harness.models import adapters, default_model, resolving
from harness.models import loading as models
from harness.models.backends import BACKENDS, backend_fingerprint, register_backend
from harness.models.errors import ModelLoadError
from harness.models.pool import ModelPool

MAIN = "1" * 40  # smaller than V2: the old fingerprint took the largest cached commit
V2 = "f" * 40


@pytest.fixture
def hub_cache(tmp_path, monkeypatch, tiny_model_dir):
    """A hub cache holding org/tiny at two commits: refs/main -> MAIN, refs/v2 -> V2."""
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    repo = cache / "models--org--tiny"
    for commit in (MAIN, V2):
        shutil.copytree(tiny_model_dir, repo / "snapshots" / commit)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(MAIN)
    (repo / "refs" / "v2").write_text(V2)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


@dataclass
class Variant:
    name: str = "v"
    model: str = "org/tiny"
    load: str = "auto"
    adapter: str = ""
    revision: str = ""
    backend: str = "hf"


def test_a_revision_resolves_to_the_commit_its_ref_names(hub_cache):
    assert resolving.resolve_model("org/tiny").revision == MAIN  # main, not the largest commit
    assert resolving.resolve_model("org/tiny", "v2").revision == V2
    assert resolving.resolve_model("org/tiny", MAIN).fingerprint == f"hub:org/tiny@{MAIN}"
    assert (
        resolving.resolve_model("org/tiny").fingerprint
        != resolving.resolve_model("org/tiny", "v2").fingerprint
    )


def test_two_revisions_in_one_cache_give_two_fingerprints_and_cache_entries(hub_cache, tmp_path):
    pool = ModelPool(device="cpu")
    a, b = pool.fingerprint(Variant(revision="main")), pool.fingerprint(Variant(revision="v2"))
    assert a["model"] == f"hub:org/tiny@{MAIN}" and b["model"] == f"hub:org/tiny@{V2}"

    class Echo:
        def generate(self, variant, prompts, settings, tick=None):
            return ["x" for _ in prompts]

    engine = Engine(pool, tmp_path / "cache", backend=Echo())
    settings = GenerationSettings(max_new_tokens=4, batch_size=2)
    _, phase_a = engine.generate(Variant(revision="main"), ["p"], settings, namespace="t")
    _, phase_b = engine.generate(Variant(revision="v2"), ["p"], settings, namespace="t")
    assert phase_a.cache_key != phase_b.cache_key
    assert phase_b.record("t", "v")["fingerprint"]["model"] == f"hub:org/tiny@{V2}"  # what phases/ records


def test_an_uncached_revision_offline_is_one_error(hub_cache):
    with pytest.raises(ModelLoadError, match=r"revision 'v3' is not in the hub cache .* offline"):
        resolving.resolve_model("org/tiny", "v3")


def test_a_revision_of_a_local_model_is_refused(tiny_model_dir):
    with pytest.raises(ModelLoadError, match="applies to hub models only"):
        resolving.resolve_model(str(tiny_model_dir), "main")


def test_the_commit_and_remote_code_setting_reach_from_pretrained(hub_cache, monkeypatch):
    seen = {}

    class FakeAuto:
        @staticmethod
        def from_pretrained(path, **kwargs):
            seen.update(kwargs, path=path)
            raise OSError("stop here")

    import transformers

    monkeypatch.setattr(transformers, "AutoTokenizer", FakeAuto)
    with pytest.raises(ModelLoadError):
        models.load_tokenizer(resolving.resolve_model("org/tiny", "v2"), trust_remote_code=True)
    assert seen["revision"] == V2 and seen["trust_remote_code"] is True and seen["path"] == "org/tiny"
    seen.clear()
    with pytest.raises(ModelLoadError):
        models.load_tokenizer(resolving.resolve_model("org/tiny"))
    assert "trust_remote_code" not in seen  # off unless asked


def test_load_auto_is_fp32_on_a_cpu_and_bf16_on_a_gpu_that_has_it(monkeypatch):
    import torch

    assert models.resolve_load("auto", "cpu") == "fp32"
    assert models.resolve_load("nf4", "cpu") == "nf4"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert models.resolve_load("auto", "cuda") == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert models.resolve_load("auto", "cuda:0") == "fp32"


def test_the_fingerprint_records_the_load_mode_decided(hub_cache):
    assert ModelPool(device="cpu").fingerprint(Variant(load="auto"))["load"] == "fp32"


def test_a_registered_backend_gets_cache_entries_of_its_own(tiny_model_dir, tmp_path, monkeypatch):
    calls = []

    class Stub:
        def __init__(self, pool):
            self.pool = pool

        def generate(self, variant, prompts, settings, tick=None):
            calls.append(len(prompts))
            return ["stub" for _ in prompts]

    register_backend("stub", Stub, lambda v: {"temperature": 0})
    try:
        engine = Engine(ModelPool(device="cpu"), tmp_path / "cache")  # the default: each variant's backend
        settings = GenerationSettings(max_new_tokens=4, batch_size=2)
        stub = Variant(model=str(tiny_model_dir), backend="stub")
        texts, phase = engine.generate(stub, ["a", "b"], settings, namespace="t")
        assert texts == ["stub", "stub"] and calls == [2]
        assert phase.fingerprint["backend"] == {"name": "stub", "temperature": 0}
        hf = Variant(model=str(tiny_model_dir))
        assert backend_fingerprint(hf)["name"] == "hf"
        assert ModelPool(device="cpu").fingerprint(hf) != ModelPool(device="cpu").fingerprint(stub)
        engine.generate(stub, ["a", "b"], settings, namespace="t")
        assert calls == [2]  # the stub's own entries, cached
    finally:
        BACKENDS.pop("stub", None)


def _write_experiment(tmp_path, adapter: Path, extra: str = "") -> Path:
    path = tmp_path / "exp.toml"
    path.write_text(
        '[experiment]\nname = "x"\n[[variants]]\nname = "base"\n[[variants]]\nname = "ft"\n'
        f'adapter = "{adapter}"\n{extra}'
    )
    return path


def _adapter(tmp_path, base: str) -> Path:
    folder = tmp_path / "adapter"
    folder.mkdir(exist_ok=True)
    (folder / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": base}))
    return folder


def test_model_applies_to_the_variants_without_an_adapter_and_names_the_others(tmp_path):
    exp = load_experiment(_write_experiment(tmp_path, _adapter(tmp_path, "x")), Overrides(model="org/other"))
    assert {v.name: v.model for v in exp.variants} == {"base": "org/other", "ft": default_model.DEFAULT_MODEL}
    assert exp.model_left_alone == ("ft",)
    assert "left alone, on the base their adapter was trained on: ft" in model_note(exp)


def test_an_adapter_trained_on_another_base_is_refused_naming_both(tmp_path):
    adapter = _adapter(tmp_path, "org/elsewhere")
    exp = load_experiment(_write_experiment(tmp_path, adapter))
    with pytest.raises(ConfigError) as e:
        check_adapters(exp)
    assert str(e.value) == (
        f"variant 'ft': adapter '{adapter}' was trained on 'org/elsewhere', "
        f"not on the variant's model '{default_model.DEFAULT_MODEL}'"
    )
    # The default model and the hub model its GGUF file was made from are the same base.
    _adapter(tmp_path, default_model.DEFAULT_HUB_ID)
    check_adapters(load_experiment(_write_experiment(tmp_path, adapter)))


def test_a_hub_adapter_is_an_id_with_an_optional_revision(tmp_path):
    exp = load_experiment(_write_experiment(tmp_path, Path("org/lora"), 'adapter_revision = "v1"\n'))
    assert exp.variant("ft").adapter == "org/lora"
    assert not adapters.is_local_adapter("org/lora", "v1") and not adapters.is_local_adapter("org/lora")
    assert adapters.is_local_adapter("adapters/default/", None)


def test_batch_size_overrides_every_task_or_one(tmp_path):
    path = _write_experiment(tmp_path, _adapter(tmp_path, default_model.DEFAULT_HUB_ID))
    exp = load_experiment(path, Overrides(batch_sizes={"*": 32, "mmlu": 64}))
    assert exp.settings("spider").batch_size == 32 and exp.settings("mmlu").batch_size == 64


def test_an_unknown_backend_is_a_config_error(tmp_path):
    path = _write_experiment(tmp_path, _adapter(tmp_path, "x"), 'backend = "hff"\n')
    with pytest.raises(ConfigError, match="unknown backend 'hff'; did you mean 'hf'"):
        load_experiment(path)


def test_training_publishes_adapter_configs_that_name_no_local_path(tmp_path):
    from training._output import publish

    staging = tmp_path / "staging"
    for folder in (staging, staging / "checkpoints" / "0.5"):
        folder.mkdir(parents=True)
        (folder / "adapter_config.json").write_text(
            json.dumps({"base_model_name_or_path": "/root/.cache/models/SmolLM2-135M-Instruct", "r": 8})
        )
    summary = {"base_model": {"name": "org/tiny", "hub_id": "org/tiny", "revision": V2}}
    (staging / "training_summary.json").write_text(json.dumps(summary))
    publish(staging, tmp_path / "out")
    paths = sorted((tmp_path / "out").rglob("adapter_config.json"))
    assert len(paths) == 2, "the adapter and its checkpoint"
    for path in paths:
        config = json.loads(path.read_text())
        assert config == {"base_model_name_or_path": "org/tiny", "r": 8, "revision": V2}


def test_a_pytest_run_names_the_variants_model_left_alone(tmp_path):
    from types import SimpleNamespace

    from harness.plugins.session import EXPERIMENT_KEY, pytest_report_collectionfinish

    exp = load_experiment(_write_experiment(tmp_path, _adapter(tmp_path, "x")), Overrides(model="org/other"))
    line = pytest_report_collectionfinish(SimpleNamespace(stash={EXPERIMENT_KEY: exp}))
    assert line == model_note(exp) and line.endswith(": ft")
    unchanged = load_experiment(_write_experiment(tmp_path, _adapter(tmp_path, "x")))
    assert pytest_report_collectionfinish(SimpleNamespace(stash={EXPERIMENT_KEY: unchanged})) is None


def test_a_hub_answer_without_a_commit_is_refused(tmp_path, monkeypatch):
    """The fingerprint names the commit loaded: a hub answer that names none is an error."""
    import types

    import huggingface_hub
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)

    class NoCommit:
        def model_info(self, repo_id, revision=None):
            return types.SimpleNamespace(sha=None)

    monkeypatch.setattr(huggingface_hub, "HfApi", NoCommit)
    with pytest.raises(ModelLoadError, match="the hub named no commit for revision 'main'"):
        resolving.hub_commit("org/tiny", "main")
