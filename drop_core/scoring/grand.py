"""GraNd (Paul et al., 2021), as the DRoP authors run it: the norm of the per-sample
gradient of the cross-entropy over **all** model parameters, in eval mode, after ~10% of
training, averaged over query inits.

The score function reads ``Recording.grad_norms``; the trainer side computes them
(``drop_core.train.outputs.final_outputs`` calls ``drop_core.train.grad_norms.per_sample_grad_norms``,
which gets each sample's norm from one batched backward, without per-sample gradients).
"""
from __future__ import annotations

import numpy as np

from drop_core.scoring.base import ScorerParams, field_stack, register_scorer
from drop_core.scoring.recording import Recording


@register_scorer("grand", needs={"grad_norms"}, query="early",
                 description="GraNd: per-sample gradient norm of early query models, mean over inits")
def grand_scores(recordings: list[Recording], rng: np.random.Generator,
                 params: ScorerParams) -> np.ndarray:
    return np.mean([g.astype(np.float64) for g in field_stack(recordings, "grad_norms")], axis=0)
