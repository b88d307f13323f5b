"""One place that loads models for a session: each tokenizer once per base model, each base
model once per load mode, adapters attached on top of the base they share. A variant is
anything with ``model``, ``load`` and ``adapter`` (harness.engine.ModelSpec).

Loading is lazy: a session whose predictions are all cached never loads a model.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from collections.abc import Iterator

from harness import merged_adapters, models

log = logging.getLogger(__name__)


class ModelPool:
    def __init__(self, device: str | None = None):
        self.device = device
        self._resolved: dict[str, models.ResolvedModel] = {}
        self._tokenizers: dict[str, object] = {}
        self._models: dict[tuple[str, str], object] = {}
        self._merged: dict[tuple[str, str, str], object] = {}

    def device_name(self) -> str:
        import torch

        if self.device:
            return self.device
        return f"cuda ({torch.cuda.get_device_name()})" if torch.cuda.is_available() else "cpu"

    def resolved(self, name: str) -> models.ResolvedModel:
        if name not in self._resolved:
            self._resolved[name] = models.resolve_model(name)
        return self._resolved[name]

    def tokenizer(self, name: str):
        if name not in self._tokenizers:
            self._tokenizers[name] = models.load_tokenizer(self.resolved(name))
        return self._tokenizers[name]

    def context_length(self, name: str) -> int:
        """The model's context, read from its config without loading the weights."""
        from transformers import AutoConfig

        resolved = self.resolved(name)
        config = AutoConfig.from_pretrained(resolved.path, gguf_file=resolved.gguf_file)
        return models.context_length(config, self.tokenizer(name))

    def fingerprint(self, variant: object, unmerged: bool = False) -> dict:
        """What about this variant's model can change a number."""
        fp = {
            "model": self.resolved(variant.model).fingerprint,
            "adapter": models.adapter_fingerprint(variant.adapter) if variant.adapter else None,
            "load": variant.load,
        }
        merge = None if unmerged else self._merge(variant)
        if merge is not None:
            fp["merged"] = merge
        return fp

    def _merge(self, variant: object) -> str | None:
        """How this variant's adapter is merged for evaluation (harness.merged_adapters), or None."""
        if not variant.adapter:
            return None
        import torch

        device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        return merged_adapters.merge_for(variant.load, device.split(":")[0])

    def _base(self, variant: object):
        key = (variant.model, variant.load)
        if key not in self._models:
            # A line, not a bar: it would nest inside the phase's bar (cursor codes in a log).
            start = time.perf_counter()
            self._models[key] = models.load_base_model(
                self.resolved(variant.model), variant.load, self.device
            )
            log.info("loaded %s (%s) in %.1f s", variant.model, variant.load, time.perf_counter() - start)
        return self._models[key]

    @contextlib.contextmanager
    def activated(self, variant: object, unmerged: bool = False) -> Iterator[object]:
        """The model of ``variant`` with its adapter active (merged into a copy of the base when
        harness.merged_adapters says so, unless ``unmerged``), or with every adapter disabled
        for a base variant that shares its weights with fine-tuned ones."""
        if not unmerged and self._merge(variant) is not None:
            merged_key = (variant.model, variant.load, str(variant.adapter))
            if merged_key not in self._merged:
                start = time.perf_counter()
                self._merged[merged_key] = merged_adapters.merged_model(
                    lambda: models.load_base_model(self.resolved(variant.model), variant.load, self.device),
                    variant.adapter,
                    variant.load,
                )
                log.info(
                    "merged %s into %s (%s) in %.1f s",
                    variant.adapter,
                    variant.model,
                    variant.load,
                    time.perf_counter() - start,
                )
            yield self._merged[merged_key]
            return
        key = (variant.model, variant.load)
        model = self._base(variant)
        if variant.adapter:
            name = "a" + hashlib.sha256(str(variant.adapter).encode()).hexdigest()[:10]
            model = models.attach_adapter(model, variant.adapter, name)
            self._models[key] = model
            model.set_adapter(name)
            yield model
        elif hasattr(model, "disable_adapter"):
            with model.disable_adapter():
                yield model
        else:
            yield model
