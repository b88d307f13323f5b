"""Which weights a model name means: the default, a GGUF file, a local folder or a hub id (at a
commit), as a loadable location and a fingerprint that changes when the weights change.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from harness.files import file_sha256
from harness.models.default_model import (
    DEFAULT_HUB_ID,
    DEFAULT_MODEL,
    default_fingerprint,
    default_model_folder,
    gguf_fingerprint,
    materialize_gguf,
)
from harness.models.errors import ModelLoadError

CACHE_ENV = "HARNESS_CACHE_DIR"

_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")


def cache_dir() -> Path:
    """Root of the harness's own caches (models, predictions): ``$HARNESS_CACHE_DIR`` or
    ``.cache/`` in the working directory."""
    return Path(os.environ.get(CACHE_ENV, ".cache")).resolve()


@dataclass(frozen=True)
class ResolvedModel:
    """Where a model's weights are, and a fingerprint that changes when they change."""

    name: str  # what the user wrote
    path: str  # a local folder or a hub id, for from_pretrained
    gguf_file: str | None  # set when ``path`` is a folder holding this GGUF file
    fingerprint: str
    revision: str | None = None  # a hub model's commit: the one loaded, whatever branch or tag was named
    hub_id: str | None = None  # its id on the hub (for the default: the model its GGUF was made from)
    note: str = ""  # how the weights differ from the hub's (the default: dequantized from a GGUF file)


def resolve_model(name: str, revision: str | None = None) -> ResolvedModel:
    """Turn what a user wrote (``smollm2-135m-instruct``, ``org/model``, ``./dir`` or
    ``file.gguf``) into a loadable location and a fingerprint. ``revision`` (a hub model's
    branch, tag or commit) is resolved once, to the commit that is then loaded."""
    root = cache_dir() / "models"
    if revision and (name == DEFAULT_MODEL or Path(name).exists() or Path(name).suffix == ".gguf"):
        raise ModelLoadError(f"model {name!r}: revision {revision!r} applies to hub models only")
    if name == DEFAULT_MODEL:
        folder, note = default_model_folder(root)
        return ResolvedModel(name, str(folder), None, default_fingerprint(), hub_id=DEFAULT_HUB_ID, note=note)
    path = Path(name)
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelLoadError(f"model {name!r}: no such GGUF file")
        digest = file_sha256(path)
        folder = materialize_gguf(path.resolve(), root / f"{path.stem}-{digest[:12]}")
        return ResolvedModel(
            name, str(folder), None, gguf_fingerprint(digest), note=f"dequantized from {name}"
        )
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelLoadError(f"model {name!r}: folder has no config.json")
        return ResolvedModel(name, str(path.resolve()), None, f"dir:{folder_fingerprint(path)}")
    if is_hub_id(name):
        commit = hub_commit(name, revision, what="model")
        return ResolvedModel(name, name, None, f"hub:{name}@{commit}", revision=commit, hub_id=name)
    raise ModelLoadError(
        f"model {name!r}: not {DEFAULT_MODEL!r}, a folder, a .gguf file or a hub id 'org/name'"
    )


def is_hub_id(name: str) -> bool:
    return bool(_HUB_ID.match(name)) and not name.startswith((".", "/"))


def hub_commit(repo_id: str, revision: str | None = None, *, what: str = "model") -> str:
    """The commit a branch, tag or commit of a hub repository names: a full commit hash as it
    is; else the hub cache's ref (what ``from_pretrained`` would load offline); else, online, the
    hub's answer. Resolved once, so the fingerprint names the weights actually loaded."""
    rev = revision or "main"
    if _COMMIT.match(rev):
        return rev
    from huggingface_hub import constants

    ref = Path(constants.HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}" / "refs" / rev
    if ref.is_file():
        return ref.read_text(encoding="utf-8").strip()
    if constants.HF_HUB_OFFLINE:
        raise ModelLoadError(
            f"{what} {repo_id!r}: revision {rev!r} is not in the hub cache ({constants.HF_HUB_CACHE}) "
            "and the hub is offline (HF_HUB_OFFLINE); download it once online, or name a commit"
        )
    try:
        from huggingface_hub import HfApi

        commit = HfApi().model_info(repo_id, revision=rev).sha
    except Exception as e:
        raise ModelLoadError(
            f"{what} {repo_id!r}: revision {rev!r} cannot be resolved on the hub ({e})"
        ) from e
    if not commit:
        raise ModelLoadError(f"{what} {repo_id!r}: the hub named no commit for revision {rev!r}")
    return commit


def folder_fingerprint(path: Path) -> str:
    """Hash of a model or adapter folder: config files by content, weights by size+mtime
    (hashing gigabytes of weights at every session start would cost more than it protects)."""
    h = hashlib.sha256()
    for f in sorted(p for p in Path(path).rglob("*") if p.is_file()):
        rel = f.relative_to(path).as_posix()
        h.update(rel.encode())
        if f.suffix in (".json", ".txt", ".model") and f.stat().st_size < (1 << 22):
            h.update(f.read_bytes())
        elif f.suffix == ".safetensors" and f.stat().st_size < (1 << 28):
            h.update(file_sha256(f).encode())
        else:
            st = f.stat()
            h.update(f"{st.st_size}:{int(st.st_mtime)}".encode())
    return h.hexdigest()[:16]
