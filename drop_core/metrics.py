"""Per-class metrics: the one place the CLI, the store and the app compute them.

Class accuracy is the *recall* of the class: correct predictions among the samples whose
true label is k. It is never the one-vs-rest binary accuracy (the authors' per-class
``'accuracy'`` key), which is inflated by the true negatives of every other class.
"""
from __future__ import annotations

import numpy as np

from drop_core.errors import DropError

__all__ = ["class_recalls", "summarize"]

SUMMARY_KEYS = ("average_accuracy", "worst_class_accuracy", "best_class_accuracy", "std", "gap")


def class_recalls(y_true, y_pred, num_classes) -> np.ndarray:
    """(K,) recall of each class. A class without samples in ``y_true`` raises DropError."""
    y, p = np.asarray(y_true), np.asarray(y_pred)
    if y.shape != p.shape or y.ndim != 1:
        raise ValueError(f"The 'y_true' and 'y_pred' parameters of class_recalls must be 1-D "
                         f"arrays of the same length. Got shapes {y.shape} and {p.shape} instead.")
    for name, a in (("y_true", y), ("y_pred", p)):
        if a.size and (not np.issubdtype(a.dtype, np.integer) or a.min() < 0
                       or a.max() >= num_classes):
            raise ValueError(f"The '{name}' parameter of class_recalls must hold integer class "
                             f"ids in [0, {num_classes - 1}].")
    support = np.bincount(y, minlength=num_classes)
    empty = np.flatnonzero(support == 0)
    if empty.size:
        raise DropError(
            f"Class accuracy is undefined for class(es) {empty.tolist()}: the evaluation split "
            f"has no samples of them. Use a split that contains every class.")
    hits = np.bincount(y[y == p], minlength=num_classes)
    return hits / support


def summarize(recalls) -> dict:
    """Summary of per-class accuracies (recalls).

    ``average_accuracy`` is the mean recall (equal to overall accuracy on a balanced split),
    ``worst_class_accuracy`` the min, ``best_class_accuracy`` the max, ``std`` the population
    standard deviation across classes and ``gap`` max - min.
    """
    r = np.asarray(recalls, dtype=np.float64)
    if r.ndim != 1 or r.size == 0 or not np.all(np.isfinite(r)):
        raise DropError(f"Cannot summarise class accuracies {_show(recalls)}: need a non-empty "
                        f"list of finite numbers.")
    return {
        "average_accuracy": float(r.mean()),
        "worst_class_accuracy": float(r.min()),
        "best_class_accuracy": float(r.max()),
        "std": float(r.std()),
        "gap": float(r.max() - r.min()),
    }


def _show(x) -> str:
    text = repr(x)
    return text if len(text) <= 60 else text[:57] + "..."
