"""The final model of a run: pruned (``correction="none"``), or trained on everything and corrected.

Corrections ask whether pruning is needed for DRoP's gain (docs/drop-method.md, "Corrections"):

- ``logit_adjust``: in the population, random class-wise pruning to densities d_k is a prior shift,
  i.e. adding log d_k to the logits of a model trained on everything. The d_k are the run's own
  kept fraction per class (what its quoter and selection would keep at ``density``); the model is
  the full-data reference model (:func:`~drop_core.pipeline.query.reference_model`, cached and
  shared with density-1 runs), and log d_k is added to its test and validation logits. A class with
  d_k = 0 gets log 0 = -inf: it is never predicted (warned).
- ``cdbw``: the full-data model trained with CDB-W class weights w_k = 1 - validation recall of
  class k in the previous epoch (uniform in the first), as in the authors' code.

Either way nothing is pruned: the final model sees every training sample.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from drop_core.cache import Cache
from drop_core.config import ResolvedConfig
from drop_core.data.base import Dataset
from drop_core.pipeline.query import FINAL_SEED, derived_seed, new_model, reference_model, train_config
from drop_core.select import Selection
from drop_core.train.trainer import train

ProgressFn = Callable[[dict], None]


@dataclass
class FinalModel:
    """A run's final model and what its evaluation adds to the logits."""

    model: torch.nn.Module
    epochs: int
    offsets: np.ndarray | None = None   # (K,) added to every logit row (logit adjustment), else None


def logit_offsets(kept_per_class: np.ndarray, class_sizes: np.ndarray) -> np.ndarray:
    """log d_k with d_k = kept_k / N_k (-inf where nothing is kept)."""
    kept = np.asarray(kept_per_class, dtype=np.float64)
    sizes = np.asarray(class_sizes, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return np.log(kept / sizes)


def zero_density_warnings(classes: list[str], offsets: np.ndarray) -> list[str]:
    """One warning per class whose logit adjustment is -inf (the quoter gives it density 0)."""
    return [f"Class {classes[k]!r} gets density 0 from the quoter, so logit adjustment adds log 0 = -inf to its "
            f"logit: the model never predicts it. Set min_per_class (--min-per-class N) to give every class a "
            f"floor." for k in np.flatnonzero(np.isneginf(offsets))]


def final_epochs(cfg: ResolvedConfig, kept_fraction: float) -> int:
    """Epochs of the final model: ``epochs``, scaled by (0.5 + 0.5d)/d with ``epoch_scaling`` at d < 1."""
    if cfg.epoch_scaling and kept_fraction < 1.0:
        return max(1, int((0.5 + 0.5 * kept_fraction) * cfg.epochs / kept_fraction))
    return cfg.epochs


def final_model(cfg: ResolvedConfig, data: Dataset, sel: Selection, cache: Cache, emit: ProgressFn,
                stop: Callable[[], bool] | None) -> FinalModel:
    """Train (or load) the final model of ``cfg``; ``sel`` is the run's selection (its kept counts set
    the logit adjustment; without correction it is the training set)."""
    n = data.y_train.shape[0]
    if cfg.correction == "logit_adjust" or (cfg.correction == "none" and cfg.density == 1.0):
        model, _, _ = reference_model(cfg, data, cache, stage="final", progress=emit, should_stop=stop)
        if cfg.correction == "none":
            return FinalModel(model, cfg.epochs)
        offsets = logit_offsets(sel.kept_per_class, data.class_sizes())
        densities = ", ".join(f"{c} {d:.3f}" for c, d in zip(data.classes, np.exp(offsets)))
        emit({"stage": "final", "message": f"logit adjustment: + log d_k, {cfg.quoter} densities {densities}"})
        return FinalModel(model, cfg.epochs, offsets)
    seed = derived_seed(cfg.seed, FINAL_SEED)
    model = new_model(cfg.model, data, seed)
    train_data = data if cfg.flip is None else dataclasses.replace(data, flip=cfg.flip)
    cdbw = cfg.correction == "cdbw"
    indices = np.arange(n) if cdbw else sel.indices
    epochs = final_epochs(cfg, len(indices) / n)
    emit({"stage": "final", "epoch": 0, "epochs": epochs,
          "message": f"final model on {len(indices)} samples, {epochs} epochs" + (", CDB-W class weights" if cdbw
                                                                                   else "")})
    train(model, train_data, indices,
          train_config(cfg, epochs, seed=seed, augment=cfg.augment, record=frozenset(), eval_val=False, cdbw=cdbw),
          device=cfg.device, progress=lambda ev: emit({"stage": "final", **ev}), should_stop=stop)
    return FinalModel(model, epochs)
