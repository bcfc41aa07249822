"""Forgetting (Toneva et al., 2019): how often a sample goes from correct to wrong.

A forgetting event is a presentation where the sample is misclassified after being
classified correctly at its previous presentation (per-epoch train-mode predictions before
the optimiser step; the state before the first epoch counts as wrong, as in the authors'
code). Never-learned samples (never correct) are the most forgotten in Toneva et al.:
with ``forgetting_never_learned="max"`` they score E (the number of recorded epochs),
above any achievable count (at most E // 2); ``"zero"`` gives them 0 as the authors' code
does. Averaged over query runs.
"""
from __future__ import annotations

import numpy as np

from drop_core.scoring.base import ScorerParams, field_stack, register_scorer
from drop_core.scoring.recording import Recording


def forgetting_counts(correct: np.ndarray, never_learned: str = "max") -> np.ndarray:
    """(N,) forgetting events from ``correct`` (E, N) bool; see the module docstring."""
    c = np.asarray(correct, dtype=bool)
    events = (c[:-1] & ~c[1:]).sum(axis=0).astype(np.float64)
    if never_learned == "max":
        events[~c.any(axis=0)] = c.shape[0]
    return events


@register_scorer("forgetting", needs={"correct"}, query="full",
                 description="Forgetting: correct-to-wrong events in training (never learned = most)")
def forgetting_scores(recordings: list[Recording], rng: np.random.Generator,
                      params: ScorerParams) -> np.ndarray:
    return np.mean([forgetting_counts(c, params.forgetting_never_learned)
                    for c in field_stack(recordings, "correct")], axis=0)
