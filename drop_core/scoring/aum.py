"""AUM (Pleiss et al., 2020): area under the margin.

The margin of a sample in an epoch is its label logit minus the largest other logit, from
the train-mode forward pass. AUM is its mean over epochs; a low (negative) AUM marks a hard
or mislabelled sample, so the score is -AUM (higher = harder), averaged over query runs.
"""
from __future__ import annotations

import numpy as np

from drop_core.scoring.base import ScorerParams, field_stack, register_scorer
from drop_core.scoring.recording import Recording


@register_scorer("aum", needs={"margin"}, query="full",
                 description="AUM: minus the mean margin over training epochs")
def aum_scores(recordings: list[Recording], rng: np.random.Generator,
               params: ScorerParams) -> np.ndarray:
    return -np.mean([m.astype(np.float64).mean(axis=0)
                     for m in field_stack(recordings, "margin")], axis=0)
