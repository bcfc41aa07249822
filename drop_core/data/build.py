"""Assemble loaded arrays into a checked, split, normalised :class:`Dataset`."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from drop_core.data.base import Dataset
from drop_core.data.splits import check_class_counts, validation_split


def channel_stats(images: np.ndarray, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std of uint8 (N, C, H, W) images, in [0, 1] units (torchvision's convention).

    Accumulated in float64 over chunks, so 60k CIFAR images need a few MB of extra memory.
    """
    n, c = images.shape[:2]
    total = np.zeros(c)
    total_sq = np.zeros(c)
    for start in range(0, n, chunk):
        block = images[start : start + chunk].astype(np.float64) / 255.0
        total += block.sum(axis=(0, 2, 3))
        total_sq += np.square(block).sum(axis=(0, 2, 3))
    count = n * images.shape[2] * images.shape[3]
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
    return mean, std


def feature_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and std of float (N, D) data; a constant feature gets std 1 (no division by 0)."""
    mean = features.mean(axis=0, dtype=np.float64)
    std = features.std(axis=0, dtype=np.float64)
    return mean, np.where(std > 0, std, 1.0)


def assemble(
    name: str,
    classes: Sequence[str],
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    *,
    flip: bool = False,
    max_shift: int = 0,
    source: str = "",
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> Dataset:
    """Build a Dataset from the original train and test arrays.

    Images are uint8 (N, C, H, W); tabular data float32 (N, D). The original test split is
    divided into validation and test halves with :func:`validation_split`. ``mean``/``std``
    default to statistics of the train split (per channel in [0, 1] units for images, per
    feature for tabular data); pass published constants to override them.
    """
    classes = list(classes)
    y_train = np.asarray(y_train, dtype=np.int64)
    y_test = np.asarray(y_test, dtype=np.int64)
    check_class_counts(y_train, classes, "train")
    val_idx, test_idx = validation_split(y_test, classes)
    is_image = x_train.ndim == 4
    if mean is None or std is None:
        mean, std = channel_stats(x_train) if is_image else feature_stats(x_train)
    return Dataset(
        name=name,
        classes=classes,
        x_train=torch.from_numpy(np.ascontiguousarray(x_train)),
        y_train=torch.from_numpy(y_train),
        x_val=torch.from_numpy(np.ascontiguousarray(x_test[val_idx])),
        y_val=torch.from_numpy(y_test[val_idx]),
        x_test=torch.from_numpy(np.ascontiguousarray(x_test[test_idx])),
        y_test=torch.from_numpy(y_test[test_idx]),
        mean=torch.tensor(np.asarray(mean), dtype=torch.float32),
        std=torch.tensor(np.asarray(std), dtype=torch.float32),
        is_image=is_image,
        flip=flip,
        max_shift=max_shift if is_image else 0,
        source=source,
    )
