"""The trainer: SGD over a device-resident dataset, with batched on-device augmentation.

The whole training split lives on the device (uint8 images / float32 features); a pruned
subset is an index tensor. Each epoch draws a permutation from a seeded generator on the
device, gathers mini-batches by index, augments and normalises them on the device, and
accumulates loss, accuracy and the requested per-sample records on the device as well:
the host sees one copy per epoch. The same code runs on CUDA (bf16 autocast) and on CPU
(bf16 autocast where the CPU has native bf16, else fp32), image models in channels_last.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from drop_core.data.base import Dataset
from drop_core.errors import DropError
from drop_core.train.augment import Normalizer, augment
from drop_core.train.device import PRECISIONS, Runtime, keep_freed_memory, resolve_runtime
from drop_core.train.evaluate import evaluate, forward_batches
from drop_core.train.schedules import SCHEDULES

RECORDS = ("correct", "p_true", "margin")      # per-epoch per-sample records a run can keep

ProgressFn = Callable[[dict], None]


class Stopped(Exception):
    """Training was cancelled: ``should_stop()`` returned True between two steps."""


class Diverged(DropError):
    """The training loss became NaN or infinite (checked once per epoch, at the epoch's one host sync)."""


@dataclass
class TrainConfig:
    """Everything that determines a training run besides model, data and subset."""

    epochs: int
    batch_size: int
    lr: float
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "multistep"                 # "multistep" (x0.2 at milestones) | "onecycle" | "constant"
    milestones: tuple[float, ...] = (0.5, 0.75)  # fractions of epochs, for multistep
    label_smoothing: float = 0.0
    augment: bool = True                        # final models augment; query models do not
    precision: str = "auto"                     # "auto" | "bf16" | "fp32"
    seed: int = 0
    record: frozenset[str] = frozenset()        # subset of {"correct", "p_true", "margin"} (per epoch)
    eval_val_every_epoch: bool = False          # query models: needed for best-val-epoch recall
    cdbw: bool = False                          # CDB-W: class weights 1 - val recall of the previous epoch


@dataclass
class TrainResult:
    model: nn.Module
    val_recall: np.ndarray          # (K,) at best-val epoch if eval_val_every_epoch else at the end
    val_accuracy: float
    best_epoch: int                 # 0-based
    per_epoch: dict[str, np.ndarray] = field(default_factory=dict)  # recorded (E, N_subset) arrays
    history: list[dict] = field(default_factory=list)  # per epoch {"epoch", "loss", "train_acc", "val_acc"?, "seconds"}
    seconds: float = 0.0
    val_confusion: np.ndarray | None = None     # (K, K) val confusion matrix of the epoch val_recall is from


def _bad(name: str, expected: str, got: object) -> DropError:
    return DropError(f"The {name!r} parameter of TrainConfig must be {expected}. Got {got!r} instead.")


def check_config(cfg: TrainConfig) -> None:
    """Raise DropError (sklearn-style message) for the first invalid field of ``cfg``."""
    if not isinstance(cfg.epochs, int) or cfg.epochs < 1:
        raise _bad("epochs", "an int >= 1", cfg.epochs)
    if not isinstance(cfg.batch_size, int) or cfg.batch_size < 1:
        raise _bad("batch_size", "an int >= 1", cfg.batch_size)
    if not (cfg.lr > 0 and math.isfinite(cfg.lr)):
        raise _bad("lr", "a finite float > 0", cfg.lr)
    if not 0 <= cfg.momentum < 1:
        raise _bad("momentum", "a float in the range [0.0, 1.0)", cfg.momentum)
    if not (cfg.weight_decay >= 0 and math.isfinite(cfg.weight_decay)):
        raise _bad("weight_decay", "a finite float >= 0", cfg.weight_decay)
    if cfg.schedule not in SCHEDULES:
        raise _bad("schedule", f"one of {', '.join(SCHEDULES.names())}", cfg.schedule)
    if not all(0 < m < 1 for m in cfg.milestones) or list(cfg.milestones) != sorted(cfg.milestones):
        raise _bad("milestones", "increasing fractions in the range (0.0, 1.0)", cfg.milestones)
    if not 0 <= cfg.label_smoothing < 1:
        raise _bad("label_smoothing", "a float in the range [0.0, 1.0)", cfg.label_smoothing)
    if cfg.precision not in PRECISIONS:
        raise _bad("precision", f"one of {', '.join(PRECISIONS)}", cfg.precision)
    if not set(cfg.record) <= set(RECORDS):
        raise _bad("record", f"a subset of {{{', '.join(RECORDS)}}}", sorted(cfg.record))


def _subset_indices(train_idx: np.ndarray | None, n_train: int) -> torch.Tensor:
    if train_idx is None:
        return torch.arange(n_train)
    idx = np.asarray(train_idx)
    if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
        raise DropError(f"train_idx must be a 1-D array of integer indices. Got shape {idx.shape}, dtype {idx.dtype}.")
    if idx.size < 2:
        raise DropError(f"train_idx must select at least 2 training samples. Got {idx.size}.")
    if idx.min() < 0 or idx.max() >= n_train:
        raise DropError(f"train_idx must lie in [0, {n_train - 1}]. Got values in [{idx.min()}, {idx.max()}].")
    return torch.as_tensor(idx, dtype=torch.long)


def _batch_bounds(n: int, batch_size: int) -> list[tuple[int, int]]:
    """Mini-batch slices of an epoch; the partial last batch is kept (merged into the previous one if it
    would hold a single sample, which BatchNorm cannot train on)."""
    bounds = [(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] == 1:
        bounds[-2:] = [(bounds[-2][0], n)]
    return bounds


def _batch_records(logits: torch.Tensor, y: torch.Tensor, want: frozenset[str]) -> dict[str, torch.Tensor]:
    """Per-sample records of one mini-batch from its (pre-step) logits."""
    logits = logits.detach().float()
    out: dict[str, torch.Tensor] = {}
    if "correct" in want:
        out["correct"] = logits.argmax(1) == y
    if "p_true" in want:
        out["p_true"] = logits.softmax(1).gather(1, y[:, None]).squeeze(1)
    if "margin" in want:
        true = logits.gather(1, y[:, None]).squeeze(1)
        other = logits.scatter(1, y[:, None], float("-inf")).amax(1)
        out["margin"] = true - other
    return out


RECORD_DTYPES = {"correct": (torch.bool, np.bool_), "p_true": (torch.float32, np.float32),
                 "margin": (torch.float32, np.float32)}


def make_optimizer(model: nn.Module, cfg: TrainConfig, steps: int) -> tuple[torch.optim.SGD, LambdaLR]:
    """SGD with momentum and weight decay (fused: one kernel per step, ~3x faster than foreach on CPU here)
    and its per-step LR schedule."""
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                          weight_decay=cfg.weight_decay, fused=True)
    factor = SCHEDULES.get(cfg.schedule)
    return opt, LambdaLR(opt, lambda t: factor(t, steps, cfg.epochs, cfg.milestones))


def train(
    model: nn.Module,
    data: Dataset,
    train_idx: np.ndarray | None,
    cfg: TrainConfig,
    *,
    device: str | torch.device = "cpu",
    progress: ProgressFn | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainResult:
    """Train ``model`` in place on ``data.x_train[train_idx]`` (all of it if None) and evaluate it on val.

    Per-epoch records (``cfg.record``) have shape (E, len(train_idx)), column j for sample
    ``train_idx[j]``, taken from the train-mode forward pass before the optimiser step.
    They are un-augmented when ``cfg.augment`` is False (query models); with augmentation
    on they come from the augmented batch. Validation runs every epoch when
    ``cfg.eval_val_every_epoch`` (the result keeps the per-class recall of the epoch with
    the highest val accuracy, earliest on ties), else once at the end.

    ``progress`` receives ``{"event": "step"|"epoch", "epoch" (0-based), "epochs", "step"
    (steps done in this epoch), "steps" (per epoch), "loss", "train_acc", "val_acc",
    "seconds" (since the start)}``; step events carry ``None`` for the metrics, because
    reading them would force a host sync every step. ``should_stop()`` is polled before
    every step; True raises :class:`Stopped`. An epoch whose mean loss is NaN or infinite raises
    :class:`Diverged`. The same seed gives the same result on CPU.
    """
    check_config(cfg)
    rt = resolve_runtime(device, cfg.precision)
    idx = _subset_indices(train_idx, data.x_train.shape[0])
    if rt.device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    else:
        keep_freed_memory()
    cuda_devices = [rt.device.index or 0] if rt.device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda_devices):
        torch.manual_seed(cfg.seed)       # model-internal randomness (dropout) only; data order uses `gen`
        return _train(model, data, idx, cfg, rt, progress, should_stop)


def _train(model: nn.Module, data: Dataset, idx: torch.Tensor, cfg: TrainConfig, rt: Runtime,
           progress: ProgressFn | None, should_stop: Callable[[], bool] | None) -> TrainResult:
    start = time.perf_counter()
    dev = rt.device
    rt.place(model, data.is_image).train()
    x_all, y_all, idx = data.x_train.to(dev), data.y_train.to(dev), idx.to(dev)
    normalize = Normalizer(data, dev)
    gen = torch.Generator(device=dev).manual_seed(cfg.seed)

    n, epochs = idx.numel(), cfg.epochs
    bounds = _batch_bounds(n, cfg.batch_size)
    steps = len(bounds)
    opt, sched = make_optimizer(model, cfg, steps)

    want = frozenset(cfg.record)
    per_epoch = {k: np.empty((epochs, n), dtype=RECORD_DTYPES[k][1]) for k in sorted(want)}
    row = {k: torch.empty(n, dtype=RECORD_DTYPES[k][0], device=dev) for k in want}
    history: list[dict] = []
    best = None   # (val accuracy, epoch, Evaluation)
    weight = None  # CDB-W class weights (K,): uniform in the first epoch

    def emit(event: dict) -> None:
        if progress is not None:
            progress({"epochs": epochs, "steps": steps, "seconds": time.perf_counter() - start, **event})

    for epoch in range(epochs):
        order = torch.randperm(n, generator=gen, device=dev)   # positions in the subset
        loss_sum = torch.zeros((), device=dev)
        hits = torch.zeros((), dtype=torch.long, device=dev)
        for step, (lo, hi) in enumerate(bounds, 1):
            if should_stop is not None and should_stop():
                raise Stopped(f"training stopped at epoch {epoch}, step {step} of {steps}")
            pos = order[lo:hi]
            rows = idx[pos]
            xb, yb = x_all.index_select(0, rows), y_all[rows]        # index_select: ~20x faster than [] on uint8
            if cfg.augment:
                xb = augment(xb, data, gen)
            xb = rt.layout(normalize(xb))
            with rt.autocast():
                logits = model(xb)
                loss = _loss(logits, yb, cfg.label_smoothing, weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            with torch.no_grad():
                loss_sum += loss.detach() * (hi - lo)
                hits += (logits.argmax(1) == yb).sum()
                for k, v in _batch_records(logits, yb, want).items():
                    row[k][pos] = v
            emit({"event": "step", "epoch": epoch, "step": step, "loss": None, "train_acc": None, "val_acc": None})

        loss_mean, acc = (torch.stack([loss_sum, hits.float()]) / n).tolist()   # the epoch's one host sync
        if not math.isfinite(loss_mean):
            raise Diverged(f"training diverged at epoch {epoch + 1} (loss {loss_mean}); lower --lr")
        for k in want:
            per_epoch[k][epoch] = row[k].cpu().numpy()
        entry = {"epoch": epoch, "loss": loss_mean, "train_acc": acc}
        if cfg.eval_val_every_epoch or cfg.cdbw or epoch == epochs - 1:
            ev = evaluate(model, data.x_val, data.y_val, normalize, rt, data.num_classes)
            entry["val_acc"] = ev.accuracy
            if cfg.cdbw:   # a class without validation samples (NaN recall) keeps weight 1
                weight = torch.as_tensor(np.nan_to_num(1.0 - ev.recall, nan=1.0), dtype=torch.float32, device=dev)
            if best is None or ev.accuracy > best[0] or not cfg.eval_val_every_epoch:
                best = (ev.accuracy, epoch, ev)
        entry["seconds"] = time.perf_counter() - start
        history.append(entry)
        emit({"event": "epoch", "step": steps, "val_acc": None, **entry})

    _, best_epoch, best_eval = best
    return TrainResult(model=model, val_recall=best_eval.recall, val_accuracy=best_eval.accuracy,
                       best_epoch=best_epoch, per_epoch=per_epoch, history=history,
                       seconds=time.perf_counter() - start, val_confusion=best_eval.confusion)


def _loss(logits: torch.Tensor, y: torch.Tensor, smoothing: float, weight: torch.Tensor | None) -> torch.Tensor:
    """Cross-entropy; with CDB-W class ``weight`` each sample counts w_y, normalised by the batch's sum of w_y
    as ``F.cross_entropy(weight=...)`` does (a batch whose classes all weigh 0 adds 0, never 0/0)."""
    if weight is None:
        return F.cross_entropy(logits, y, label_smoothing=smoothing)
    w = weight[y]
    per_sample = F.cross_entropy(logits, y, reduction="none", label_smoothing=smoothing)
    return (w * per_sample).sum() / w.sum().clamp_min(torch.finfo(w.dtype).tiny)


def predict(model: nn.Module, x: torch.Tensor, data: Dataset, *, device: str | torch.device = "cpu",
            batch_size: int | None = None, precision: str = "auto") -> torch.Tensor:
    """Eval-mode float32 logits (N, K), on the CPU, for raw inputs ``x`` (uint8 images or float32 features)."""
    rt = resolve_runtime(device, precision)
    logits, _ = forward_batches(model, x, Normalizer(data, rt.device), rt, batch_size=batch_size)
    return logits.cpu()
