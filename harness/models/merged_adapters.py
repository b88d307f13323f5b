"""A LoRA adapter merged into a copy of its base for evaluation: one matrix product per projection
instead of the base's plus the adapter's two, so a fine-tuned variant scores as fast as the base.

Each merged copy is built once per session (harness.models.pool keeps it beside the base) from a
fresh load of the base: ``PeftModel.from_pretrained(base, adapter).merge_and_unload()`` in the
evaluation dtype. An nf4 base is dequantized to bf16 first and the adapter added in bf16
("dequantize-merge"): the nf4 forward pass dequantizes to bf16 and adds the adapter's bf16 output
anyway, so the merged copy computes the same function up to one bf16 rounding of the sum (the
merged weights are not quantized again, which would add a second, larger rounding); it holds the
weights in bf16, about 3.5x the memory of the nf4 base. An int8 base is not merged (no exact
dequantization). The fingerprint says which merge made the numbers, so merged and unmerged
predictions never share a cache entry.

``$HARNESS_MERGE_ADAPTERS``: ``auto`` (default: merge on CUDA, where the adapter's extra kernels
cost time; on the CPU they cost little next to the base's), ``on`` or ``off``.
"""

from __future__ import annotations

import os

from harness.models.adapters import check_adapter_usable
from harness.models.errors import ModelLoadError

MERGE_ENV = "HARNESS_MERGE_ADAPTERS"
MERGE_MODES = ("auto", "on", "off")
_MERGES = {  # load mode -> how its merged copy is made (this text goes into the fingerprint)
    "fp32": "lora merged into the fp32 base",
    "bf16": "lora merged into the bf16 base",
    "nf4": "lora merged in bf16 into the dequantized nf4 base",
}


def merge_mode() -> str:
    mode = os.environ.get(MERGE_ENV, "auto").strip().lower() or "auto"
    if mode not in MERGE_MODES:
        raise ValueError(f"{MERGE_ENV}={mode!r}: choose one of {', '.join(MERGE_MODES)}")
    return mode


def merge_for(load: str, device_type: str) -> str | None:
    """How a variant loaded ``load`` on ``device_type`` has its adapter merged, or None (unmerged)."""
    mode = merge_mode()
    if mode == "off" or (mode == "auto" and device_type != "cuda"):
        return None
    return _MERGES.get(load)


def merged_model(load_base, adapter: str | os.PathLike, load: str):
    """A fresh copy of the base (``load_base()``) with ``adapter`` merged into its weights."""
    import torch
    from peft import PeftModel

    if load not in _MERGES:
        raise ValueError(f"load mode {load!r}: its adapters are not merged")
    check_adapter_usable(adapter)
    base = load_base()
    if load == "nf4":
        base = base.dequantize(dtype=torch.bfloat16)
    try:
        model = PeftModel.from_pretrained(base, str(adapter)).merge_and_unload()
    except Exception as e:
        raise ModelLoadError(f"adapter {str(adapter)!r}: failed to merge into its base: {e}") from e
    return model.eval()
