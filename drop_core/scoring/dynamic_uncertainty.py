"""Dynamic Uncertainty (He et al., 2023), as the DRoP authors coded it.

From p_t = p(y | x) recorded in every epoch t = 0..E-1 (train-mode forward pass), the
authors' ``scorers/dynamic_uncertainty.py`` adds, at the start of each epoch from J on,
the unbiased std of p over the J - 1 epochs recorded so far in its window. Unrolled, that
is the std over every window of J - 1 consecutive epochs among t = 0..E-2 (the last
epoch's p enters no window). The score here is the mean over those E - J + 1 windows; the
code divides the sum by E - J instead, a constant factor that does not change the
ranking. Needs E >= J. Averaged over query runs.
"""
from __future__ import annotations

import numpy as np

from drop_core.errors import DropError
from drop_core.scoring.base import ScorerParams, field_stack, register_scorer
from drop_core.scoring.recording import Recording


def dynamic_uncertainty(p_true: np.ndarray, window: int) -> np.ndarray:
    """(N,) mean over sliding windows of J-1 epochs (of p_true[:-1]) of the unbiased std."""
    p = np.asarray(p_true, dtype=np.float64)[:-1]
    w = window - 1
    if p.shape[0] < w:
        raise DropError(
            f"Dynamic Uncertainty with window J={window} needs at least {window} recorded "
            f"epochs; the query run recorded {p.shape[0] + 1}. Train the query model longer "
            f"or lower du_window.")
    zero = np.zeros((1, p.shape[1]))
    s1 = np.concatenate([zero, np.cumsum(p, axis=0)])        # prefix sums, float64
    s2 = np.concatenate([zero, np.cumsum(p * p, axis=0)])
    win1, win2 = s1[w:] - s1[:-w], s2[w:] - s2[:-w]            # (E-J+1, N) window sums
    var = np.maximum(win2 - win1 * win1 / w, 0.0) / (w - 1)
    return np.sqrt(var).mean(axis=0)


@register_scorer("dynamic_uncertainty", needs={"p_true"}, query="full",
                 description="Dynamic Uncertainty: sliding-window std of p(y|x) over training (J)")
def dynamic_uncertainty_scores(recordings: list[Recording], rng: np.random.Generator,
                               params: ScorerParams) -> np.ndarray:
    return np.mean([dynamic_uncertainty(p, params.du_window)
                    for p in field_stack(recordings, "p_true")], axis=0)
