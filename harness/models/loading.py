"""Load a model into memory: its tokenizer, and its base model in fp32, bf16, 8-bit or 4-bit nf4
on a device. Which weights a name means is harness.models.resolving (the default model's GGUF
file: harness.models.default_model); adapters are harness.models.adapters.

The names imported ``as`` themselves lived here before the split and are re-exported for the
modules of other packages that still import them from here (config, training, the CLI, fixtures).
"""

from __future__ import annotations

from harness.models.adapters import check_adapter_base as check_adapter_base
from harness.models.adapters import check_adapter_usable as check_adapter_usable
from harness.models.adapters import is_local_adapter as is_local_adapter
from harness.models.default_model import DEFAULT_MODEL as DEFAULT_MODEL
from harness.models.errors import ModelLoadError as ModelLoadError
from harness.models.resolving import ResolvedModel as ResolvedModel
from harness.models.resolving import resolve_model as resolve_model
from harness.progress import library_bars_only_on_a_terminal

LOAD_MODES = ("fp32", "bf16", "int8", "nf4")
AUTO = "auto"  # a load mode chosen by the device: bf16 on a CUDA device that supports it, else fp32


def resolve_load(load_mode: str, device: str) -> str:
    """``auto`` as the device decides it: bf16 on a CUDA device that supports it, else fp32."""
    if load_mode != AUTO:
        return load_mode
    if str(device).startswith("cuda"):
        import torch

        if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return "bf16"
    return "fp32"


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
        # transformers types .to through a decorator that mypy reads as taking the model first.
        model.to(device)  # type: ignore[arg-type]
    model.eval()
    return model
