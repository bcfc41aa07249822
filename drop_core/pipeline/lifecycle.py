"""A run's lifecycle: resolve -> (stored result?) -> load -> query stage -> subset -> final model -> metrics.

:func:`run` takes a :class:`~drop_core.config.RunConfig` and returns a :class:`RunResult`. With
a store it creates (or adopts) the run row, records the environment and progress events, polls
the cancel flag and saves the result, or marks the run failed / cancelled / interrupted.
"""
from __future__ import annotations

import logging
import os
import platform
import socket
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from drop_core.analysis import class_intervals
from drop_core.cache import Cache
from drop_core.config import RESULTS_VERSION, ResolvedConfig, RunConfig, resolve, run_key
from drop_core.data.base import Dataset
from drop_core.errors import DropError, user_error
from drop_core.metrics import class_recalls, summarize
from drop_core.pipeline.corrections import FinalModel, final_model, zero_density_warnings
from drop_core.pipeline.query import load_run_data, query_stage
from drop_core.pipeline.result import RunResult
from drop_core.pipeline.subset import check_budget, empty_class_warnings, select_subset
from drop_core.presets import EMBEDDED
from drop_core.select import Selection
from drop_core.store import Store
from drop_core.train.trainer import Stopped, predict

log = logging.getLogger("drop_core.pipeline")
ProgressFn = Callable[[dict], None]


class Cancelled(DropError):
    """The run was cancelled (store cancel flag or ``should_stop``)."""


# --- the run --------------------------------------------------------------------------

def environment(device: str) -> dict[str, Any]:
    """Where a run executes: versions, device, host."""
    env = {"torch": torch.__version__, "python": platform.python_version(), "platform": platform.platform(),
           "host": socket.gethostname(), "device": device, "threads": torch.get_num_threads(),
           "results_version": RESULTS_VERSION}
    if device == "cuda":
        env["device_name"] = torch.cuda.get_device_name()
        env["cuda"] = torch.version.cuda
    else:
        env["device_name"] = platform.processor() or platform.machine()
    return env


class StopPoll:
    """should_stop for the trainer: the caller's callback or the store's cancel flag (polled every 0.5 s)."""

    def __init__(self, store: Store | None, run_id: int | None, user: Callable[[], bool] | None) -> None:
        self.store, self.run_id, self.user = store, run_id, user
        self.last, self.flag = 0.0, False

    def __call__(self) -> bool:
        if self.user is not None and self.user():
            return True
        if self.store is not None and not self.flag and time.monotonic() - self.last > 0.5:
            self.last = time.monotonic()
            self.flag = self.store.cancel_requested(self.run_id)
        return self.flag


class _Events:
    """Progress fan-out: every event to the caller, stage changes and epochs to the store."""

    def __init__(self, store: Store | None, run_id: int | None, user: ProgressFn | None) -> None:
        self.store, self.run_id, self.user = store, run_id, user

    def __call__(self, event: dict) -> None:
        ev = {"epoch": 0, "epochs": 0, "message": "", **event}
        if not ev["message"] and ev.get("event") == "epoch":
            ev["message"] = f"{ev['stage']} epoch {ev['epoch'] + 1}/{ev['epochs']} loss {ev.get('loss', 0):.3f}"
        if self.user is not None:
            self.user(ev)
        if self.store is not None and ev.get("event") != "step":
            self.store.add_event(self.run_id, ev)


def run(config: RunConfig, *, store: Store | None = None, run_id: int | None = None,
        progress: ProgressFn | None = None, should_stop: Callable[[], bool] | None = None,
        force: bool = False, cache_dir: str | os.PathLike | None = None) -> RunResult:
    """Run the pipeline for ``config``.

    With a ``store``: creates the run row (or adopts ``run_id``), records the environment and
    progress events, polls the cancel flag, saves the result or marks the run failed /
    cancelled / interrupted. An identical finished config (same run key) is returned from the
    store without training unless ``force``.
    """
    cfg, _ = resolve(config)
    key = run_key(cfg)
    if store is not None and run_id is None:
        if force:
            run_id = store.create_run(cfg.to_dict(), key, status="running")
        else:
            # one transaction: never two rows for a key; a created row is running and owned by this process
            run_id, state = store.claim_run(cfg.to_dict(), key, start=True, follow=True)
            if state == "finished":
                return _stored(store, run_id)
            if state == "active":
                return _follow(store, run_id, progress)
    elif store is not None and not force:
        done = store.finished_run_for_key(key)
        if done is not None and done != run_id:   # the app queued run_id; an identical one finished meanwhile
            result = RunResult.from_store(store, done)
            store.save_result(run_id, result.to_dict())
            result.run_id, result.reused = run_id, True
            return result
    if store is not None:
        store.set_status(run_id, "running")
        store.set_environment(run_id, environment(cfg.device))
    stop = StopPoll(store, run_id, should_stop)
    events = _Events(store, run_id, progress)
    try:
        result = _run(cfg, key, events, stop, cache_dir)
    except Stopped:
        if store is not None:
            store.set_status(run_id, "cancelled", error="cancelled by request")
        raise Cancelled(f"Run {run_id if run_id is not None else key} was cancelled.") from None
    except KeyboardInterrupt:
        if store is not None:
            store.set_status(run_id, "interrupted", error="interrupted (KeyboardInterrupt)")
        raise
    except BaseException as e:
        if store is not None:
            user = user_error(e) if isinstance(e, Exception) else None
            store.set_status(run_id, "failed", error=str(user) if user is not None else f"{type(e).__name__}: {e}")
        raise
    result.run_id = run_id
    if store is not None:
        store.save_result(run_id, result.to_dict())
        store.add_event(run_id, {"stage": "done", "epoch": 0, "epochs": 0, "message": "finished"})
    events({"stage": "done", "message": "finished"})
    return result


def _follow(store: Store, run_id: int, progress: ProgressFn | None) -> RunResult:
    """Wait for run ``run_id`` (finished, or being computed by another process) and return its result.

    Two identical runs started at once on one store train once: the second follows the first.
    """
    def waiting(row: dict) -> None:
        if progress is not None:
            progress({"stage": "load", "epoch": 0, "epochs": 0,
                      "message": f"waiting for the identical run {run_id} ({row['status']}) in another process"})

    try:
        status = store.wait_for(run_id, on_wait=waiting)
    finally:
        store.unfollow(run_id)
    if status != "finished":
        row = store.get_run(run_id)
        raise DropError(f"The identical run {run_id} that this one waited for ended {status}"
                        f"{': ' + row['error'] if row.get('error') else ''}. Rerun to compute it again "
                        f"(or add --force).")
    return _stored(store, run_id)


def _stored(store: Store, run_id: int) -> RunResult:
    """The result of finished run ``run_id``, marked as reused (nothing was trained for it now)."""
    result = RunResult.from_store(store, run_id)
    result.reused = True
    return result


def _run(cfg: ResolvedConfig, key: str, emit: ProgressFn, stop: Callable[[], bool],
         cache_dir: str | os.PathLike | None) -> RunResult:
    timings: dict[str, float] = {}
    warnings: list[str] = []

    def warn(msg: str) -> None:
        warnings.append(msg)
        log.warning(msg)
        emit({"stage": "warning", "message": msg})

    if cfg.preset == "paper" and cfg.device == "cpu" and cfg.dataset not in EMBEDDED:
        warn("The 'paper' preset on a CPU takes hours to days per run on image datasets; use it on a GPU or "
             "pick --preset cpu.")
    t0 = time.perf_counter()
    emit({"stage": "load", "message": f"loading {cfg.dataset}"})
    data = load_run_data(cfg)
    timings["load"] = time.perf_counter() - t0
    cdbw = cfg.correction == "cdbw"          # trains on everything and reads no quota
    if not cdbw:
        check_budget(cfg, data.class_sizes())
    cache = Cache(cache_dir)
    cache.check_writable()                    # an unwritable cache is found before any training

    q = query_stage(cfg, cache_dir=cache_dir, progress=emit, should_stop=stop, data=data)
    timings.update(q.timings)
    for msg in q.warnings:
        warn(msg)

    t0 = time.perf_counter()
    labels = data.y_train.numpy()
    if cdbw:
        sel = Selection(indices=np.arange(labels.size), kept_per_class=data.class_sizes())
    else:
        emit({"stage": "select",
              "message": f"{cfg.quoter} quotas, {cfg.selection} selection at density {cfg.density}"})
        sel = select_subset(cfg, q.scores, labels, q.val_recall, data.num_classes)
        if cfg.correction == "none":
            for msg in empty_class_warnings(cfg, data, sel, q.val_recall):
                warn(msg)
    timings["select"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    final = final_model(cfg, data, sel, cache, emit, stop)
    if final.offsets is not None:
        for msg in zero_density_warnings(list(data.classes), final.offsets):
            warn(msg)
        sel = Selection(indices=np.arange(labels.size), kept_per_class=data.class_sizes())   # nothing is pruned
    timings["final"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    emit({"stage": "eval", "message": "evaluating on the test split"})
    pred = _predict(final, data.x_test, data, cfg)
    y_test = data.y_test.numpy()
    recalls = class_recalls(y_test, pred, data.num_classes)
    summary = summarize(recalls)
    val_acc = class_recalls(data.y_val.numpy(), _predict(final, data.x_val, data, cfg), data.num_classes)
    timings["eval"] = time.perf_counter() - t0

    names = list(data.classes)
    worst = int(np.argmin(recalls))
    counts = {n: int(c) for n, c in zip(names, np.bincount(y_test, minlength=data.num_classes))}
    accuracy = {n: float(r) for n, r in zip(names, recalls)}
    return RunResult(
        average_accuracy=float((pred == y_test).mean()), worst_class_accuracy=float(recalls[worst]),
        class_accuracy=accuracy, test_counts=counts, class_accuracy_ci=class_intervals(accuracy, counts),
        kept_per_class={n: int(c) for n, c in zip(names, sel.kept_per_class)},
        class_sizes={n: int(c) for n, c in zip(names, data.class_sizes())},
        val_recall={} if q.val_recall is None else {n: float(r) for n, r in zip(names, q.val_recall)},
        train_size=int(len(sel.indices)), config=cfg.to_dict(), warnings=warnings,
        query_cache_hit=q.cache_hit, timings=timings, worst_class=names[worst],
        mean_recall=float(summary["average_accuracy"]), recall_std=float(summary["std"]),
        recall_gap=float(summary["gap"]), val_class_accuracy={n: float(r) for n, r in zip(names, val_acc)},
        final_epochs=final.epochs, key=key, kept_indices=np.asarray(sel.indices, dtype=np.int64))


def _predict(final: FinalModel, x: torch.Tensor, data: Dataset, cfg: ResolvedConfig) -> np.ndarray:
    """Predicted classes of the final model, its logits shifted by the correction's offsets."""
    logits = predict(final.model, x, data, device=cfg.device, precision=cfg.precision)
    if final.offsets is not None:
        logits = logits + torch.as_tensor(final.offsets, dtype=logits.dtype)
    return logits.argmax(1).numpy()
