"""Random: uniform scores, so any top-k selection is a uniform random subset."""
from __future__ import annotations

import numpy as np

from drop_core.scoring.base import ScorerParams, register_scorer
from drop_core.scoring.recording import Recording


@register_scorer("random", needs=set(), query="none",
                 description="uniform random scores (random pruning)")
def random_scores(recordings: list[Recording], rng: np.random.Generator,
                  params: ScorerParams) -> np.ndarray:
    """U(0, 1) per sample, from ``rng``."""
    return rng.random(len(recordings[0].labels))
