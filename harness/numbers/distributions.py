"""A question's answer distribution over its choices: the probability of one choice, and how far
a variant's distribution moved from the reference's (a KL)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def _log_normalised(logps: Sequence[float], name: str):
    """``logps - logsumexp(logps)`` as a numpy vector: log-probabilities over the choices."""
    import numpy as np
    from scipy.special import logsumexp

    x = np.asarray(logps, dtype=float)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"{name} must be a non-empty sequence of numbers, got shape {x.shape}")
    if np.isnan(x).any() or np.isposinf(x).any():
        raise ValueError(f"{name} holds NaN or +inf: {list(x)}")
    if np.isneginf(x).all():
        raise ValueError(f"{name} gives every choice zero probability: {list(x)}")
    return x - logsumexp(x)


def renormalised_logprob(logps: Sequence[float], index: int) -> float:
    """Log-probability of choice ``index`` after renormalising over the choices.

    ``logps`` are log-scores of the same k choices (e.g. a model's log-probabilities of " A"
    .. " D" over its whole vocabulary); the result is ``logps[index] - logsumexp(logps)``, the
    log-probability of that choice given that the answer is one of the k.
    """
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(logps):
        raise ValueError(f"index must be a choice number in 0..{len(logps) - 1}, got {index!r}")
    return float(_log_normalised(logps, "logps")[index])


def choice_probability(scores: Sequence[float], index: int) -> float:
    """The probability of choice ``index`` among the choices: ``softmax(scores)[index]``, the
    scores being those whose largest is the predicted answer (so the measure and the prediction
    read the same distribution)."""
    return math.exp(renormalised_logprob(scores, index))


def categorical_kl(logp_reference: Sequence[float], logp_variant: Sequence[float]) -> float:
    """KL(P_ref || P_var) in nats between two answer distributions over the same choices.

    Each input is a vector of log-scores of the same choices, renormalised over the choices with
    a log-sum-exp first, so raw log-probabilities over the vocabulary work. KL is
    ``sum_i p_i (log p_i - log q_i)`` (Kullback & Leibler 1951); terms with p_i = 0 contribute 0
    and a choice with p_i > 0 but q_i = 0 makes it +inf. It is 0 exactly when the two agree and
    measures how much fine-tuning moved the model's belief, even where its argmax answer stayed.
    """
    import numpy as np

    log_p = _log_normalised(logp_reference, "logp_reference")
    log_q = _log_normalised(logp_variant, "logp_variant")
    if log_p.shape != log_q.shape:
        raise ValueError(f"logp_reference has {log_p.size} choices but logp_variant has {log_q.size}")
    p = np.exp(log_p)
    support = p > 0
    if np.isneginf(log_q[support]).any():
        return math.inf
    return max(float(np.sum(p[support] * (log_p[support] - log_q[support]))), 0.0)
