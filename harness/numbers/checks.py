"""What every statistic of the harness shares: its significance level and the checks of its
arguments (a bad alpha or count is one clear ValueError, never a NaN further on)."""

from __future__ import annotations

import numbers

ALPHA = 0.05
CONFIDENCE = 0.95

# Largest number of resampled values held at once by the bootstrap and the permutation test
# (resamples x items): bounds memory on MMLU's 14,042 items without changing the result, since
# scipy draws the batches from the same generator stream in order.
RESAMPLE_CELLS = 2_000_000


def check_alpha(alpha: float) -> None:
    if isinstance(alpha, bool) or not (isinstance(alpha, numbers.Real) and 0.0 < alpha < 1.0):
        raise ValueError(f"alpha must be a number strictly between 0 and 1, got {alpha!r}")


def check_count(name: str, value: int) -> None:
    # numbers.Integral admits numpy's integers too; bool is an int but never a count here
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"{name} must be a whole number >= 0, got {value!r}")
