"""Which training samples are kept, given scores (higher = harder = kept first) and quotas.

- :func:`select_global`: the plain strategy, global top-``budget`` by score (no quotas).
- :func:`select_per_class`: Strategy+DRoP (or any quota rule), top-``n_k`` within class k.
- :func:`select_random_per_class`: Random+DRoP, ``n_k`` uniformly random samples of class k.
- :func:`select_strategyq`: Random+StrategyQ, random within class with the class counts
  another selection produced.
- :func:`select_ccs`: CCS (Zheng et al., ICLR 2023), stratified sampling over score bins
  after cutting off the hardest samples.

Every function is deterministic for a given RNG, and score ties are broken by a random
permutation drawn from it, never by dataset index (the authors' stable sort favours high
indices, which correlate with class id in ImageFolder datasets).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from drop_core.validate import param_error

__all__ = [
    "Selection",
    "select_ccs",
    "select_global",
    "select_per_class",
    "select_random_per_class",
    "select_strategyq",
]


@dataclass
class Selection:
    """Kept training indices (sorted) and how many each class kept."""

    indices: np.ndarray          # sorted kept train indices, int64
    kept_per_class: np.ndarray   # (K,) int64


def select_global(scores: ArrayLike, labels: ArrayLike, budget: int, num_classes: int, *,
                  rng: np.random.Generator | None = None) -> Selection:
    """Keep the ``budget`` highest-scored samples of the whole training set.

    ``rng`` breaks score ties; None means ``np.random.default_rng(0)``.
    """
    caller = "select_global"
    labels = _check_labels(labels, num_classes, caller)
    scores = _check_scores(scores, labels.size, caller)
    budget = _check_budget(budget, labels.size, caller)
    order = _rank(scores, _rng(rng))
    return _selection(order[:budget], labels, num_classes)


def select_per_class(scores: ArrayLike, labels: ArrayLike, quotas: ArrayLike, *,
                     rng: np.random.Generator | None = None) -> Selection:
    """Keep the ``quotas[k]`` highest-scored samples of each class k.

    ``rng`` breaks score ties; None means ``np.random.default_rng(0)``.
    """
    caller = "select_per_class"
    quotas = _check_quotas(quotas, caller)
    labels = _check_labels(labels, quotas.size, caller)
    scores = _check_scores(scores, labels.size, caller)
    _check_quotas_fit(quotas, labels, caller)
    order = _rank(scores, _rng(rng))
    by_class = labels[order]
    kept = [order[by_class == k][: quotas[k]] for k in range(quotas.size)]
    return _selection(np.concatenate(kept), labels, quotas.size)


def select_random_per_class(labels: ArrayLike, quotas: ArrayLike, rng: np.random.Generator) -> Selection:
    """Keep ``quotas[k]`` samples of each class k, uniformly at random (Random+DRoP)."""
    caller = "select_random_per_class"
    quotas = _check_quotas(quotas, caller)
    labels = _check_labels(labels, quotas.size, caller)
    _check_quotas_fit(quotas, labels, caller)
    kept = [rng.choice(np.flatnonzero(labels == k), size=int(quotas[k]), replace=False)
            for k in range(quotas.size)]
    return _selection(np.concatenate(kept), labels, quotas.size)


def select_strategyq(labels: ArrayLike, reference: Selection, rng: np.random.Generator) -> Selection:
    """Random+StrategyQ: random within class, with ``reference``'s kept count per class."""
    return select_random_per_class(labels, reference.kept_per_class, rng)


def select_ccs(scores: ArrayLike, labels: ArrayLike, budget: int, num_classes: int, rng: np.random.Generator, *,
               hard_cutoff: float = 0.1, bins: int = 50) -> Selection:
    """Coverage-centric coreset selection (Zheng et al., ICLR 2023).

    1. Drop the ``hard_cutoff`` fraction of highest-scored (hardest) samples, fewer if
       needed so that at least ``budget`` samples remain.
    2. Split the rest into ``bins`` equal-width score bins over their score range.
    3. Visit the non-empty bins from smallest to largest; each takes
       min(its size, floor(remaining budget / remaining bins)) random samples.

    The total is exactly ``budget``: the largest bin is visited last and takes the rest.
    """
    caller = "select_ccs"
    labels = _check_labels(labels, num_classes, caller)
    scores = _check_scores(scores, labels.size, caller)
    budget = _check_budget(budget, labels.size, caller)
    if not (isinstance(hard_cutoff, (int, float)) and 0.0 <= hard_cutoff < 1.0):
        raise param_error("hard_cutoff", caller, "a float in the range [0.0, 1.0)", hard_cutoff, ValueError)
    if not (isinstance(bins, (int, np.integer)) and not isinstance(bins, bool) and bins >= 1):
        raise param_error("bins", caller, "an int in the range [1, inf)", bins, ValueError)
    n = labels.size
    cut = min(int(np.floor(hard_cutoff * n + 0.5)), n - budget)
    pool = _rank(scores, rng)[cut:]
    s = scores[pool]
    lo, hi = (s.min(), s.max()) if s.size else (0.0, 0.0)
    width = (hi - lo) / bins
    which = np.minimum(((s - lo) / width).astype(np.int64), bins - 1) if width > 0 \
        else np.zeros(s.size, dtype=np.int64)
    sizes = np.bincount(which, minlength=bins)
    visit = [b for b in np.argsort(sizes, kind="stable") if sizes[b] > 0]
    kept, left = [], budget
    for i, b in enumerate(visit):
        take = min(int(sizes[b]), left // (len(visit) - i))
        kept.append(rng.choice(pool[which == b], size=take, replace=False))
        left -= take
    return _selection(np.concatenate(kept) if kept else np.zeros(0, np.int64), labels,
                      num_classes)


# --------------------------------------------------------------------------- helpers

def _rng(rng: np.random.Generator | None) -> np.random.Generator:
    return np.random.default_rng(0) if rng is None else rng


def _rank(scores: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """All indices, highest score first; equal scores in a random order from ``rng``."""
    perm = rng.permutation(scores.size)
    return perm[np.argsort(-scores[perm], kind="stable")]


def _selection(kept: np.ndarray, labels: np.ndarray, num_classes: int) -> Selection:
    idx = np.sort(np.asarray(kept, dtype=np.int64))
    return Selection(idx, np.bincount(labels[idx], minlength=num_classes).astype(np.int64))


def _check_labels(labels: ArrayLike, num_classes: int, caller: str) -> np.ndarray:
    if not (isinstance(num_classes, (int, np.integer)) and num_classes >= 1):
        raise param_error("num_classes", caller, "an int in the range [1, inf)", num_classes, ValueError)
    y = np.asarray(labels)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer) or (
            y.size and (y.min() < 0 or y.max() >= num_classes)):
        raise param_error("labels", caller, f"a 1-D integer array with values in [0, {num_classes - 1}]", labels,
                          ValueError, shown=_show(labels))
    return y.astype(np.int64)


def _check_scores(scores: ArrayLike, n: int, caller: str) -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64)
    if s.shape != (n,) or not np.all(np.isfinite(s)):
        raise param_error("scores", caller, f"a finite float array of shape ({n},) like 'labels'", scores,
                          ValueError, shown=f"shape {s.shape}")
    return s


def _check_budget(budget: int, n: int, caller: str) -> int:
    if not (isinstance(budget, (int, np.integer)) and not isinstance(budget, bool)
            and 0 <= budget <= n):
        raise param_error("budget", caller, f"an int in the range [0, {n}]", budget, ValueError)
    return int(budget)


def _check_quotas(quotas: ArrayLike, caller: str) -> np.ndarray:
    q = np.asarray(quotas)
    if q.ndim != 1 or q.size == 0 or not np.issubdtype(q.dtype, np.integer) or np.any(q < 0):
        raise param_error("quotas", caller, "a non-empty 1-D array of non-negative integers, one per class", quotas,
                          ValueError, shown=_show(quotas))
    return q.astype(np.int64)


def _check_quotas_fit(quotas: np.ndarray, labels: np.ndarray, caller: str) -> None:
    sizes = np.bincount(labels, minlength=quotas.size)
    over = np.flatnonzero(quotas > sizes)
    if over.size:
        k = int(over[0])
        raise ValueError(f"The 'quotas' parameter of {caller} asks for {int(quotas[k])} samples "
                         f"of class {k}, which has only {int(sizes[k])}.")


def _show(x: object) -> str:
    text = repr(x)
    return text if len(text) <= 60 else text[:57] + "..."
