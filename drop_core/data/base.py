"""The in-memory dataset every loader returns and the trainer consumes."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Dataset:
    """A classification dataset held fully in memory, split into train / val / test.

    Images are uint8 tensors (N, C, H, W) in raw pixel space; tabular data are float32
    tensors (N, D). Labels are int64 tensors (N,). ``mean``/``std`` normalise inputs
    (per channel for images, per feature for tabular data) and are applied by the
    trainer on the device. The validation split is half of each class of the original
    test split (first half in dataset order, as in the paper's code) and is never used
    for reported test metrics.
    """

    name: str
    classes: list[str]
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    is_image: bool
    flip: bool = False          # random horizontal flip is label-preserving for this data
    max_shift: int = 0          # random translation of at most this many pixels (images only)
    source: str = ""            # where it was loaded from, for the run record

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def class_sizes(self) -> np.ndarray:
        """Number of training samples per class, shape (K,)."""
        return np.bincount(self.y_train.numpy(), minlength=self.num_classes)
