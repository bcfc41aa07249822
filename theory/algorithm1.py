"""Algorithm 1 of DRoP in continuous form: class densities proportional to class error, saturating at 1."""
from __future__ import annotations

import numpy as np


def drop_class_densities(priors: np.ndarray, errors: np.ndarray, density: np.ndarray) -> np.ndarray:
    """Class densities ``(..., K)`` with sum_k priors_k d_k == density and 0 <= d_k <= 1 (Algorithm 1).

    Each round hands the unspent budget E to the unsaturated classes U as d_k += E e_k / sum_{j in U} N_j e_j
    (N_k = ``priors``, e_k = ``errors``), caps d_k at 1 and returns the excess to E; at most K rounds.
    If every class in U has zero error, the round spreads E by class size (equal densities) instead of
    dividing by zero. ``priors`` and ``errors`` broadcast to ``density.shape + (K,)``; priors must be > 0.
    """
    density = np.asarray(density, dtype=float)
    priors = np.asarray(priors, dtype=float)
    errors = np.asarray(errors, dtype=float)
    shape = np.broadcast_shapes(density.shape + (1,), priors.shape, errors.shape)
    priors = np.broadcast_to(priors, shape)
    errors = np.broadcast_to(errors, shape)
    d = np.zeros(shape)
    excess = np.broadcast_to(density[..., None], shape[:-1] + (1,)).copy()
    unsaturated = np.ones(shape, dtype=bool)
    for _ in range(shape[-1]):
        by_error = np.where(unsaturated, priors * errors, 0.0)
        by_size = np.where(unsaturated, priors, 0.0)
        weight = np.where(by_error.sum(-1, keepdims=True) > 0, by_error, by_size)
        total = weight.sum(-1, keepdims=True)
        share = np.divide(weight, total, out=np.zeros(shape), where=total > 0)
        d = d + excess * share / priors
        over = d > 1.0
        excess = np.where(over, priors * (d - 1.0), 0.0).sum(-1, keepdims=True)
        d = np.where(over, 1.0, d)
        unsaturated &= ~over
    return d
