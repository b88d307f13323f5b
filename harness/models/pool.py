"""One place that loads models for a session: each tokenizer once per base model, each base
model once per load mode, adapters attached on top of the base they share. A variant is
anything with ``model``, ``load`` and ``adapter`` (harness.engine.core.ModelSpec), and optionally the
keys of a user's own model: ``revision``, ``trust_remote_code``, ``attn_implementation``,
``device_map``, ``adapter_revision`` and ``backend`` (harness.config.experiment).

Loading is lazy: a session whose predictions are all cached never loads a model.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from collections.abc import Iterator
from typing import Any, Protocol

from harness.models import adapters, merged_adapters, resolving
from harness.models import loading as models
from harness.models.backends import backend_fingerprint

log = logging.getLogger(__name__)

AUTO_BATCH = "auto"  # a task's batch_size that the pool decides (ModelPool.batch_size)
AUTO_CPU_BATCH = 8  # "auto" on a CPU: the tasks' documented default
AUTO_BATCH_CAP = 64  # "auto" on a CUDA device: the first size tried, halved while memory runs out


class PooledVariant(Protocol):
    """What the pool reads of every variant (harness.engine.core.ModelSpec has these, and a name);
    the optional keys are read with getattr. Read only: a variant is a frozen config."""

    @property
    def model(self) -> str: ...

    @property
    def load(self) -> str: ...

    @property
    def adapter(self) -> str: ...


def _model_ref(spec) -> tuple[str, str, bool]:
    """(model, revision, trust_remote_code) of a variant, or of a bare model name."""
    if isinstance(spec, str):
        return spec, "", False
    return spec.model, getattr(spec, "revision", "") or "", bool(getattr(spec, "trust_remote_code", False))


class ModelPool:
    def __init__(self, device: str | None = None):
        self.device = device
        self._resolved: dict[tuple, resolving.ResolvedModel] = {}
        self._adapters: dict[tuple, adapters.ResolvedAdapter] = {}
        self._tokenizers: dict[tuple, object] = {}
        self._models: dict[tuple, object] = {}
        self._merged: dict[tuple, object] = {}
        # "auto" batch sizes that fitted, by (model, revision, load, device, task, request kind):
        # found once, then every later phase of that model starts there
        # (harness.engine.batch_fitting.split_on_oom)
        self.fitted_batches: dict[tuple, int] = {}

    def _device(self) -> str:
        import torch

        return self.device or ("cuda" if torch.cuda.is_available() else "cpu")

    def device_name(self) -> str:
        import torch

        if self.device:
            return self.device
        return f"cuda ({torch.cuda.get_device_name()})" if torch.cuda.is_available() else "cpu"

    def resolved(self, spec) -> resolving.ResolvedModel:
        """The model of a variant (or of a model name), its revision resolved once to a commit."""
        name, revision, _ = _model_ref(spec)
        if (name, revision) not in self._resolved:
            self._resolved[(name, revision)] = resolving.resolve_model(name, revision or None)
        return self._resolved[(name, revision)]

    def adapter(self, variant) -> adapters.ResolvedAdapter:
        """The variant's adapter as a local folder, refused if it was trained on another base."""
        key = (variant.adapter, getattr(variant, "adapter_revision", "") or "")
        if key not in self._adapters:
            resolved = adapters.resolve_adapter(variant.adapter, key[1] or None)
            adapters.check_adapter_base(variant.name, variant.model, variant.adapter, resolved.path)
            self._adapters[key] = resolved
        return self._adapters[key]

    def load_mode(self, variant) -> str:
        """The variant's load mode on this pool's device ("auto" decided)."""
        return models.resolve_load(variant.load, self._device())

    def batch_size(self, variant, requested: int | str, *kind: str) -> tuple[int, tuple]:
        """``requested`` (a number or "auto") as prompts per batch, and the key of
        :attr:`fitted_batches` that "auto" on a CUDA device keeps its fitted size under (``()``:
        a fixed size, no search). ``kind`` names the task and request ("spider", "generate")."""
        if requested != AUTO_BATCH:
            return int(requested), ()
        device = self._device()
        if not device.startswith("cuda"):
            return AUTO_CPU_BATCH, ()
        key = (*_model_ref(variant)[:2], self.load_mode(variant), device, *kind)
        return self.fitted_batches.get(key, AUTO_BATCH_CAP), key

    def tokenizer(self, spec):
        ref = _model_ref(spec)
        if ref not in self._tokenizers:
            self._tokenizers[ref] = models.load_tokenizer(self.resolved(spec), trust_remote_code=ref[2])
        return self._tokenizers[ref]

    def context_length(self, spec) -> int:
        """The model's context, read from its config without loading the weights."""
        from transformers import AutoConfig

        resolved = self.resolved(spec)
        config = AutoConfig.from_pretrained(resolved.path, **models.hub_kwargs(resolved, _model_ref(spec)[2]))
        return models.context_length(config, self.tokenizer(spec))

    def fingerprint(self, variant: PooledVariant, unmerged: bool = False) -> dict:
        """What about this variant's model can change a number: the weights (a hub model's
        commit), the adapter, the load mode as decided on this device, how the adapter is merged
        for evaluation (unless ``unmerged``), and the backend that computes with them, with its
        settings."""
        fp = {
            "model": self.resolved(variant).fingerprint,
            "adapter": self.adapter(variant).fingerprint if variant.adapter else None,
            "load": self.load_mode(variant),
            "backend": backend_fingerprint(variant),
        }
        merge = None if unmerged else self._merge(variant)
        if merge is not None:
            fp["merged"] = merge
        return fp

    def _merge(self, variant: PooledVariant) -> str | None:
        """How this variant's adapter is merged for evaluation (harness.models.merged_adapters), or None."""
        if not variant.adapter:
            return None
        return merged_adapters.merge_for(self.load_mode(variant), self._device().split(":")[0])

    def _base_key(self, variant: PooledVariant) -> tuple:
        return (
            *_model_ref(variant),
            self.load_mode(variant),
            getattr(variant, "attn_implementation", "") or "",
            getattr(variant, "device_map", "") or "",
        )

    def _load(self, variant: PooledVariant, key: tuple):
        """A fresh load of ``variant``'s base model, as ``key`` (:meth:`_base_key`) describes it."""
        _, _, trust_remote_code, load, attn_implementation, device_map = key
        return models.load_base_model(
            self.resolved(variant),
            load,
            self.device,
            trust_remote_code=trust_remote_code,
            attn_implementation=attn_implementation,
            device_map=device_map,
        )

    def _base(self, variant: PooledVariant):
        key = self._base_key(variant)
        if key not in self._models:
            # A line, not a bar: it would nest inside the phase's bar (cursor codes in a log).
            start = time.perf_counter()
            self._models[key] = self._load(variant, key)
            log.info("loaded %s (%s) in %.1f s", variant.model, key[3], time.perf_counter() - start)
        return key

    @contextlib.contextmanager
    def activated(
        self, variant: PooledVariant, unmerged: bool = False
    ) -> Iterator[Any]:  # a torch model, with or without PEFT's wrapper
        """The model of ``variant`` with its adapter active (merged into a copy of the base when
        harness.models.merged_adapters says so, unless ``unmerged``), or with every adapter disabled
        for a base variant that shares its weights with fine-tuned ones. The model is a torch
        module, PEFT-wrapped or not, hence ``Any``."""
        if not unmerged and self._merge(variant) is not None:
            adapter = self.adapter(variant)
            base_key = self._base_key(variant)  # every setting the base is loaded with
            load = base_key[3]
            merged_key = (*base_key, adapter.fingerprint)
            if merged_key not in self._merged:
                start = time.perf_counter()
                self._merged[merged_key] = merged_adapters.merged_model(
                    lambda: self._load(variant, base_key), adapter.path, load
                )
                log.info(
                    "merged %s into %s (%s) in %.1f s",
                    variant.adapter,
                    variant.model,
                    load,
                    time.perf_counter() - start,
                )
            yield self._merged[merged_key]
            return
        key = self._base(variant)
        model = self._models[key]
        if variant.adapter:
            adapter = self.adapter(variant)
            name = "a" + hashlib.sha256(adapter.fingerprint.encode()).hexdigest()[:10]
            model = adapters.attach_adapter(model, adapter.path, name)
            self._models[key] = model
            model.set_adapter(name)
            yield model
        elif hasattr(model, "disable_adapter"):
            with model.disable_adapter():
                yield model
        else:
            yield model
