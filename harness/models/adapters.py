"""PEFT adapters: a folder or a hub id resolved to a folder, checked (a failed training run, the
wrong base model) and attached to a loaded base model."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from harness.models.default_model import DEFAULT_HUB_ID, DEFAULT_MODEL
from harness.models.errors import ModelLoadError
from harness.models.resolving import folder_fingerprint, hub_commit, is_hub_id

SUMMARY_NAME = "training_summary.json"  # in an adapter's folder: the training run that made it


def adapter_fingerprint(adapter: str | os.PathLike) -> str:
    """The fingerprint of an adapter folder, which must hold an ``adapter_config.json``."""
    path = Path(adapter)
    if not (path / "adapter_config.json").is_file():
        raise ModelLoadError(f"adapter {str(adapter)!r}: no adapter_config.json there (train it first?)")
    return folder_fingerprint(path)


def check_adapter_usable(adapter: str | os.PathLike) -> None:
    """Refuse an adapter whose training run failed (its ``training_summary.json`` says so)."""
    summary = Path(adapter) / SUMMARY_NAME
    if summary.is_file():
        try:
            status = json.loads(summary.read_text(encoding="utf-8")).get("status")
        except (OSError, UnicodeDecodeError, ValueError, AttributeError) as e:
            raise ModelLoadError(f"{summary}: not a readable training summary ({e})") from None
        if status != "succeeded":
            raise ModelLoadError(
                f"adapter {str(adapter)!r}: its training run ended with status {status!r} "
                f"(see {summary}); it is not benchmarked as if it were good"
            )
    adapter_fingerprint(adapter)


@dataclass(frozen=True)
class ResolvedAdapter:
    """A PEFT adapter as a local folder (a hub adapter's snapshot in the hub cache)."""

    name: str  # what the user wrote: a folder or a hub id
    path: str
    fingerprint: str
    revision: str | None = None  # a hub adapter's commit


def is_local_adapter(adapter: str, revision: str | None = None) -> bool:
    """A folder, unless it does not exist, looks like a hub id and, or, a revision is named."""
    return not revision and (Path(adapter).exists() or not is_hub_id(adapter))


def resolve_adapter(adapter: str, revision: str | None = None) -> ResolvedAdapter:
    """A folder as it is; a hub id (``org/name``, optional ``revision``) downloaded once into the
    hub cache (or found there offline) at the commit the revision names."""
    if is_local_adapter(adapter, revision):
        return ResolvedAdapter(adapter, str(adapter), adapter_fingerprint(adapter))
    commit = hub_commit(adapter, revision, what="adapter")
    try:
        from huggingface_hub import snapshot_download

        folder = snapshot_download(adapter, revision=commit)
    except Exception as e:
        raise ModelLoadError(
            f"adapter {adapter!r}@{commit}: not a folder, and not found on the hub ({e})"
        ) from e
    adapter_fingerprint(folder)  # it must hold an adapter_config.json
    return ResolvedAdapter(adapter, folder, f"hub:{adapter}@{commit}", revision=commit)


def adapter_base(adapter_folder: str | os.PathLike) -> str | None:
    """The base model an adapter was trained on: its training summary's (this recipe's adapters),
    else its adapter_config.json's ``base_model_name_or_path``."""
    folder = Path(adapter_folder)
    try:
        summary = json.loads((folder / SUMMARY_NAME).read_text(encoding="utf-8"))
        name = (summary.get("base_model") or {}).get("name")
        if name:
            return str(name)
    except (OSError, ValueError):
        pass
    try:
        config = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8"))
        return config.get("base_model_name_or_path") or None
    except (OSError, ValueError):
        return None


def same_model(a: str, b: str) -> bool:
    """Whether two names of a model name the same one: the default and the hub model its GGUF was
    made from are one; folders compare by where they are; hub ids regardless of case."""

    def canonical(name: str) -> str:
        if name.lower() in (DEFAULT_MODEL, DEFAULT_HUB_ID.lower()):
            return DEFAULT_HUB_ID.lower()
        path = Path(name)
        if path.exists() or name.startswith((".", "/")):
            return str(path.resolve())
        return name.lower()

    return canonical(a) == canonical(b)


def check_adapter_base(
    variant_name: str, model: str, adapter: str, adapter_folder: str | os.PathLike
) -> None:
    """Refuse a variant whose adapter was trained on another base model than the variant's."""
    base = adapter_base(adapter_folder)
    if base is not None and not same_model(base, model):
        raise ModelLoadError(
            f"variant {variant_name!r}: adapter {adapter!r} was trained on {base!r}, "
            f"not on the variant's model {model!r}"
        )


def attach_adapter(model, adapter: str | os.PathLike, adapter_name: str):
    """Put a PEFT adapter on ``model`` (wrapping it on the first call) and return the wrapper.

    Several adapters can sit on one base model; :func:`use_adapter` picks one per variant.
    """
    from peft import PeftModel

    if isinstance(model, PeftModel) and adapter_name in model.peft_config:
        return model  # attached already (every batch of a phase asks again)
    check_adapter_usable(adapter)
    try:
        if isinstance(model, PeftModel):
            model.load_adapter(str(adapter), adapter_name=adapter_name)
            return model
        return PeftModel.from_pretrained(model, str(adapter), adapter_name=adapter_name).eval()
    except Exception as e:
        raise ModelLoadError(f"adapter {str(adapter)!r}: failed to load: {e}") from e
