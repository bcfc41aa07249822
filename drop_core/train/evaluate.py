"""Batched eval-mode forward passes and per-class metrics computed on the device."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from drop_core.train.augment import Normalizer
from drop_core.train.device import Runtime


@dataclass
class Evaluation:
    """Metrics of one model on one split (K classes)."""

    accuracy: float             # overall accuracy
    loss: float                 # mean cross-entropy
    recall: np.ndarray          # (K,) per-class recall (= per-class accuracy); NaN for a class with no samples
    class_loss: np.ndarray      # (K,) mean cross-entropy per class; NaN for a class with no samples
    confusion: np.ndarray       # (K, K) int64, rows = true class, columns = predicted class


def confusion_matrix(y_true: torch.Tensor, y_pred: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(K, K) counts, rows = true class, columns = prediction, by one ``bincount``."""
    flat = y_true.long() * num_classes + y_pred.long()
    return torch.bincount(flat, minlength=num_classes * num_classes).view(num_classes, num_classes)


def class_recall(confusion: torch.Tensor) -> torch.Tensor:
    """Per-class recall from a confusion matrix; NaN (never 0) for a class without samples."""
    support = confusion.sum(1).double()
    return confusion.diagonal().double() / support   # 0 / 0 -> NaN


def class_mean(values: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Mean of ``values`` within each class (``scatter_add``); NaN for a class without samples."""
    sums = torch.zeros(num_classes, dtype=torch.float64, device=values.device)
    sums.scatter_add_(0, labels.long(), values.double())
    counts = torch.bincount(labels.long(), minlength=num_classes).double()
    return sums / counts


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode under ``no_grad``, restoring its previous mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        model.train(was_training)


def forward_batches(
    model: nn.Module,
    x: torch.Tensor,
    normalizer: Normalizer,
    runtime: Runtime,
    *,
    batch_size: int | None = None,
    features: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Eval-mode float32 logits (N, K) on the device, and penultimate features (N, D) if asked for.

    ``x`` holds raw inputs (uint8 images or float32 features) on any device; batches are
    moved, normalised and laid out on ``runtime.device``; ``batch_size`` defaults to the
    device's ``Runtime.eval_batch``.
    """
    batch_size = batch_size or runtime.eval_batch
    runtime.place(model, x.dim() == 4)
    logits, feats = [], []
    with eval_mode(model), runtime.autocast():
        for start in range(0, x.shape[0], batch_size):
            xb = runtime.layout(normalizer(x[start:start + batch_size].to(runtime.device, non_blocking=True)))
            if features:
                f = model.features(xb)
                feats.append(f.float())
                logits.append(model.head(f).float())
            else:
                logits.append(model(xb).float())
    if not logits:
        raise ValueError("forward_batches needs at least one input row")
    return torch.cat(logits), (torch.cat(feats) if features else None)


def evaluate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    normalizer: Normalizer,
    runtime: Runtime,
    num_classes: int,
    *,
    batch_size: int | None = None,
) -> Evaluation:
    """Accuracy, loss, per-class recall and per-class loss of ``model`` on (x, y); one host copy at the end."""
    logits, _ = forward_batches(model, x, normalizer, runtime, batch_size=batch_size)
    y = y.to(runtime.device)
    losses = F.cross_entropy(logits, y, reduction="none")
    cm = confusion_matrix(y, logits.argmax(1), num_classes)
    summary = torch.stack([cm.diagonal().sum().double() / y.numel(), losses.double().mean()])
    acc, loss = summary.tolist()
    return Evaluation(
        accuracy=acc,
        loss=loss,
        recall=class_recall(cm).cpu().numpy(),
        class_loss=class_mean(losses, y, num_classes).cpu().numpy(),
        confusion=cm.cpu().numpy(),
    )
