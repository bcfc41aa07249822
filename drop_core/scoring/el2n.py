"""EL2N (Paul et al., 2021): error L2 norm of early-training query models.

score = || softmax(f(x)) - onehot(y) ||_2 on the final eval-mode logits of a query model
trained for ~10% of the epochs, averaged over the query inits (as the authors' code).
"""
from __future__ import annotations

import numpy as np

from drop_core.scoring.base import ScorerParams, field_stack, register_scorer
from drop_core.scoring.recording import Recording


def el2n(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(N,) L2 distance between the softmax of ``logits`` (N, K) and one-hot ``labels``."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(len(labels)), labels] -= 1.0
    return np.sqrt(np.einsum("ij,ij->i", p, p))


@register_scorer("el2n", needs={"logits"}, query="early",
                 description="EL2N: ||softmax - onehot|| of early query models, mean over inits")
def el2n_scores(recordings: list[Recording], rng: np.random.Generator,
                params: ScorerParams) -> np.ndarray:
    labels = np.asarray(recordings[0].labels)
    return np.mean([el2n(z, labels) for z in field_stack(recordings, "logits")], axis=0)
