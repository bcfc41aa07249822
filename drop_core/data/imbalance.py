"""Long-tailed training sets from any dataset: class k keeps RHO**(-k/(K-1)) of its training samples.

This is the CIFAR-10-LT construction (Cao et al., LDAM, 2019) applied to whatever was loaded: class 0
(the first in ``Dataset.classes``) keeps all its samples, the last class keeps 1/RHO of them, and the
classes in between follow the exponential profile. Counts are ``floor(N_k * RHO**(-k/(K-1)))``
(LDAM's ``int(...)``). Which samples a class keeps is a uniform random choice drawn from a fixed seed
(:data:`IMBALANCE_SEED` and the class index), never from the run's seed: every seed, scorer and density
sees the same long-tailed training set, and the kept samples stay in dataset order. Validation and
test splits, and the normalisation statistics, are those of the loaded dataset (as in CIFAR-10-LT).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from drop_core.data.base import Dataset
from drop_core.errors import DropError

IMBALANCE_SEED = 20190611     # fixed: the long-tailed subset must not depend on the run's seed


def imbalanced_counts(class_sizes: np.ndarray, rho: float) -> np.ndarray:
    """floor(N_k * rho**(-k/(K-1))) per class k; every class must keep at least one sample."""
    sizes = np.asarray(class_sizes, dtype=np.int64)
    k = sizes.size
    if not (isinstance(rho, (int, float)) and not isinstance(rho, bool) and np.isfinite(rho) and rho >= 1.0):
        raise DropError(f"The 'imbalance' parameter of run must be a float in the range [1.0, inf). Got {rho!r} "
                        f"instead.")
    if k < 2 or rho == 1.0:
        return sizes.copy()
    factor = np.power(float(rho), -np.arange(k) / (k - 1))
    counts = np.floor(sizes * factor + 1e-9).astype(np.int64)     # 1e-9: 500 * 0.1 is 50, not 49
    empty = np.flatnonzero(counts < 1)
    if empty.size:
        j = int(empty[0])
        limit = min(float(sizes[i]) ** ((k - 1) / i) for i in range(1, k))
        raise DropError(f"The 'imbalance' parameter of run must be a float in the range [1.0, {limit:.6g}] for "
                        f"this dataset (class {j}, {int(sizes[j])} training samples, would keep none). "
                        f"Got {rho!r} instead.")
    return counts


def apply_imbalance(data: Dataset, rho: float) -> Dataset:
    """``data`` with its training split made long-tailed (see the module docstring); ``rho`` 1 returns it as is."""
    counts = imbalanced_counts(data.class_sizes(), rho)
    if rho == 1.0:
        return data
    labels = data.y_train.numpy()
    keep = []
    for k, n_keep in enumerate(counts):
        members = np.flatnonzero(labels == k)
        rng = np.random.default_rng([IMBALANCE_SEED, k])
        keep.append(rng.choice(members, size=int(n_keep), replace=False))
    idx = torch.from_numpy(np.sort(np.concatenate(keep)))
    return dataclasses.replace(data, x_train=data.x_train[idx], y_train=data.y_train[idx],
                               source=f"{data.source} (long-tailed: imbalance {rho:g})")
