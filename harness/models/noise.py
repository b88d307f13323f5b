"""One line of bitsandbytes' import that is not news, dropped by exact text.

``import peft`` imports bitsandbytes whatever the run (peft.helpers does, at module level: a
training run, or a benchmark that attaches an adapter), and
bitsandbytes' CPU backend, on a CPU with AVX-512 BF16, then tries to fetch an optional faster
4-bit matmul kernel from the Hugging Face kernels hub (package ``kernels``, not a dependency
here) and logs a WARNING when it cannot: "Failed to load CPU gemm_4bit_forward from
kernels-community: ...". An fp32 or CUDA run never calls that kernel, and a 4-bit CPU run falls
back to bitsandbytes' built-in CPU kernel, so the line is dropped from that one logger, before
anything imports bitsandbytes (``import harness`` installs it); the training recipe says which
kernel a 4-bit CPU run uses instead.
Every other record of that logger, and of any other, goes through.
"""

from __future__ import annotations

import logging

LOGGER = "bitsandbytes.backends.cpu.ops"
NOTICE = "Failed to load CPU gemm_4bit_forward from kernels-community"


class _DropKernelsHubNotice(logging.Filter):
    def __init__(self):
        super().__init__()
        self.dropped = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and record.msg.startswith(NOTICE):
            self.dropped += 1
            return False
        return True


def install() -> None:
    """Add the filter to bitsandbytes' CPU-backend logger (once)."""
    logger = logging.getLogger(LOGGER)
    if not any(isinstance(f, _DropKernelsHubNotice) for f in logger.filters):
        logger.addFilter(_DropKernelsHubNotice())


def kernels_hub_notice_dropped() -> bool:
    """Whether the notice came and was dropped (bitsandbytes then uses its built-in CPU kernel)."""
    return any(isinstance(f, _DropKernelsHubNotice) and f.dropped for f in logging.getLogger(LOGGER).filters)
