"""What computes a variant's answers, as a declared unit: the ``Backend`` protocol, a registry
of backends by name, and each backend's settings for the cache fingerprint.

A variant names its backend (``backend = "hf"``, the default: Hugging Face models from the
model pool, harness.engine.hf_backend.HFBackend). A backend is registered with a factory (the model pool
-> a Backend) and the settings of a variant that can change its numbers; the engine's cache
fingerprint holds the backend's name and those settings, so two backends never share a cache
entry.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from harness.configfile import unknown

DEFAULT_BACKEND = "hf"


class Backend(Protocol):
    """The three requests the engine makes of a backend, in batches, for one variant."""

    def generate(self, variant, prompts: list[str], settings, tick=None) -> list[str]:
        """Greedy text after each prompt, stopping as ``settings`` (GenerationSettings) say."""
        ...

    def score_choices(
        self, variant, requests: list[tuple[str, str]], choices: Sequence[Sequence[str]], settings, tick=None
    ) -> list:
        """Each choice's log-likelihood after its (shared prefix, prompt).

        Returns :class:`harness.engine.loglik.ChoiceScores`, one per request.
        """
        ...

    def kl_to_base(self, variant, pairs: list[tuple[str, str]], settings, tick=None) -> list:
        """Mean KL(base || adapted) over each continuation's tokens (harness.engine.loglik.Divergence)."""
        ...


def hf_settings(variant) -> dict:
    """The Hugging Face backend's settings of a variant that can change a number."""
    return {
        "trust_remote_code": bool(getattr(variant, "trust_remote_code", False)),
        "attn_implementation": getattr(variant, "attn_implementation", "") or "",
        "device_map": getattr(variant, "device_map", "") or "",
    }


@dataclass
class BackendEntry:
    name: str
    settings: Callable[[object], dict]  # a variant -> its settings for this backend
    factory: Callable[[Any], Backend] | None = None  # the model pool -> a Backend


BACKENDS: dict[str, BackendEntry] = {DEFAULT_BACKEND: BackendEntry(DEFAULT_BACKEND, hf_settings)}


def register_backend(
    name: str, factory: Callable[[Any], Backend], settings: Callable[[object], dict] = lambda v: {}
) -> None:
    """Make ``name`` a backend a variant can name (the Hugging Face one registers itself in
    harness.engine.hf_backend)."""
    BACKENDS[name] = BackendEntry(name, settings, factory)


def backend_name(variant) -> str:
    return getattr(variant, "backend", "") or DEFAULT_BACKEND


def _entry(variant) -> BackendEntry:
    name = backend_name(variant)
    if name not in BACKENDS:
        raise ValueError(f"variant {getattr(variant, 'name', '?')!r}: " + unknown("backend", name, BACKENDS))
    return BACKENDS[name]


def backend_fingerprint(variant) -> dict:
    """The backend's name and its settings for ``variant``: part of every cache key."""
    entry = _entry(variant)
    return {"name": entry.name, **entry.settings(variant)}


class Dispatch:
    """A Backend that hands each request to its variant's own backend, made once per name."""

    def __init__(self, pool):
        self.pool = pool
        self._made: dict[str, Backend] = {}

    def of(self, variant) -> Backend:
        entry = _entry(variant)
        if entry.name not in self._made:
            if entry.factory is None:
                raise ValueError(f"backend {entry.name!r} is declared but has no implementation registered")
            self._made[entry.name] = entry.factory(self.pool)
        return self._made[entry.name]

    def generate(self, variant, prompts, settings, tick=None):
        return self.of(variant).generate(variant, prompts, settings, tick)

    def score_choices(self, variant, requests, choices, settings, tick=None):
        return self.of(variant).score_choices(variant, requests, choices, settings, tick)

    def kl_to_base(self, variant, pairs, settings, tick=None):
        return self.of(variant).kl_to_base(variant, pairs, settings, tick)
