"""What a query-model training run records for the scorers (pure data, numpy)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Recording:
    """Per-sample records of one query-model run over the full training set (N samples, K classes).

    Per-epoch arrays have shape (E, N) and are taken from the train-mode mini-batch forward
    pass *before* the optimiser step, on the un-augmented sample, in the epoch the sample
    was presented (as in Toneva et al. and the authors' code). Final arrays come from one
    eval-mode pass of the final query model over the un-augmented training set. A field is
    None when the scorer that needs it was not requested.
    """

    labels: np.ndarray                          # (N,) int64
    val_recall: np.ndarray                      # (K,) per-class validation recall at the best-val-accuracy epoch
    val_accuracy: float                         # overall validation accuracy at that epoch
    best_epoch: int                             # 0-based epoch whose val accuracy was highest
    correct: np.ndarray | None = None           # (E, N) bool   prediction == label       (Forgetting)
    p_true: np.ndarray | None = None            # (E, N) float32 softmax prob of the label (Dynamic Uncertainty)
    margin: np.ndarray | None = None            # (E, N) float32 label logit - largest other logit (AUM)
    logits: np.ndarray | None = None            # (N, K) float32 final eval-mode logits   (EL2N)
    embeddings: np.ndarray | None = None        # (N, D) float32 penultimate features     (CoreSet, SSP)
    grad_norms: np.ndarray | None = None        # (N,)  float32 per-sample grad norm, all params (GraNd)
