"""Deterministic splits: the paper's validation half of the test split, and a stratified train/test split.

Validation split (docs/drop-method.md, "Validation split"; authors' ``vision_data.py``): for every
class k, the first ``floor(n_k / 2)`` test samples *in dataset order* form the validation
split and the remaining ``n_k - floor(n_k / 2)`` form the test split. It involves no RNG, so
it is identical for every seed and every run, and reported test metrics never see a
validation sample.
"""
from __future__ import annotations

import numpy as np

from drop_core.errors import DropError
from drop_core.validate import check_number


def check_class_counts(labels: np.ndarray, classes: list[str], split: str, *, minimum: int = 1) -> None:
    """Raise DropError naming the first class with fewer than ``minimum`` samples in ``split``."""
    counts = np.bincount(labels, minlength=len(classes))
    for k, count in enumerate(counts[: len(classes)]):
        if count < minimum:
            raise DropError(
                f"Class {classes[k]!r} has {count} {split} sample(s); every class needs at least {minimum} "
                f"in the {split} split."
            )
    if labels.size and (labels.min() < 0 or labels.max() >= len(classes)):
        raise DropError(f"The {split} labels must lie in [0, {len(classes) - 1}]; got {labels.min()}..{labels.max()}.")


def validation_split(test_labels: np.ndarray, classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Split the original test set into (val_idx, test_idx), the first half of each class going to validation.

    Every class needs at least 2 test samples (one for each half); a class with fewer is
    a DropError, never a silent NaN recall later. Both index arrays are sorted.
    """
    test_labels = np.asarray(test_labels)
    check_class_counts(test_labels, classes, "test", minimum=2)
    order = np.argsort(test_labels, kind="stable")                  # grouped by class, dataset order within
    counts = np.bincount(test_labels, minlength=len(classes))
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    rank = np.arange(order.size) - np.repeat(starts, counts)       # position within its class
    to_val = rank < np.repeat(counts // 2, counts)
    return np.sort(order[to_val]), np.sort(order[~to_val])


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic stratified (train_idx, test_idx): ``round(test_fraction * n_k)`` of each class to test.

    Within a class the samples are permuted by ``np.random.default_rng(seed)``; both
    returned arrays are sorted, so the test split keeps dataset order.
    """
    check_number("test_fraction", "stratified_split", test_fraction, low=0.0, high=1.0, open_low=True,
                 open_high=True, cls=ValueError)
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    test = []
    for k in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == k))
        test.append(members[: int(round(test_fraction * members.size))])
    test_idx = np.sort(np.concatenate(test))
    train_mask = np.ones(labels.size, dtype=bool)
    train_mask[test_idx] = False
    return np.flatnonzero(train_mask), test_idx
