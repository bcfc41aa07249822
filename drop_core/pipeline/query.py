"""The query stage: query model(s) -> validation recall -> per-sample scores, cached on disk.

Which query model(s) a run trains depends on the scorer's schedule (docs/drop-method.md,
"Query models"): ``early`` scorers (EL2N, GraNd) train ``query_inits`` models for
``query_fraction`` of the epochs and average over inits; ``full`` scorers (Forgetting,
Dynamic Uncertainty, CoreSet, SSP, AUM) train one model for the full length. A scorer
without a query model (``random``) combined with a quota rule that reads validation recall
(DRoP) uses the ``early`` schedule: the authors' code leaves this case open, and the early
schedule is the one of their first commit and README (5 inits). Validation recall per class
is taken at each query model's best-validation-accuracy epoch and averaged over inits. At
density 1 nothing is pruned, so no query model is trained.

Every query init (weights, per-epoch records, final outputs, validation recall) and every
score vector is cached under :func:`drop_core.config.query_key` / :func:`~drop_core.config.score_key`,
so a run that changes only final-stage fields trains only its final model, and a run killed
mid-way resumes from the inits it finished.
"""
from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from drop_core.cache import Cache
from drop_core.config import ResolvedConfig, ensure_resolved, query_key, score_key
from drop_core.data import load_dataset
from drop_core.data.base import Dataset
from drop_core.models import build_model
from drop_core.quotas import quoter_needs_recalls
from drop_core.scoring import SCORERS, ScorerParams, compute_scores
from drop_core.train.record import FINAL_FIELDS, final_outputs
from drop_core.train.recording import Recording
from drop_core.train.trainer import RECORDS, Stopped, TrainConfig, train

ProgressFn = Callable[[dict], None]


@dataclass(frozen=True)
class QueryPlan:
    """What the query stage trains: ``schedule`` "early"/"full"/"none", ``inits`` runs of ``epochs`` epochs."""

    schedule: str
    epochs: int
    inits: int
    record: frozenset[str]      # per-epoch Recording fields
    final: frozenset[str]       # final-output Recording fields (the scorer's)
    needs_recall: bool

    def key_facts(self) -> dict:
        """What a query model's identity takes from the plan (the init count is not part of it)."""
        return {"epochs": self.epochs, "record": sorted(self.record)}


@dataclass
class QueryStageResult:
    recordings: list[Recording]
    val_recall: np.ndarray | None       # (K,) averaged over inits; None without a query model
    scores: np.ndarray                  # (N,)
    cache_hit: bool                     # query models were needed and all came from the cache
    plan: QueryPlan
    timings: dict[str, float]


def query_plan(cfg: ResolvedConfig) -> QueryPlan:
    """The query schedule of a resolved config (see the module docstring)."""
    spec = SCORERS.get(cfg.scorer)
    needs_recall = quoter_needs_recalls(cfg.quoter)
    schedule = spec.query
    if schedule == "none" and needs_recall:
        schedule = "early"
    if cfg.density == 1.0 or schedule == "none":
        return QueryPlan("none", 0, 0, frozenset(), frozenset(), needs_recall)
    if schedule == "full":
        epochs = cfg.query_epochs or cfg.epochs
        inits = 1                        # one full-length run, as in the paper
        record = frozenset(RECORDS)      # every per-epoch record: full-length scorers share one query run
    else:
        epochs = cfg.query_epochs or max(1, round(cfg.query_fraction * cfg.epochs))
        inits = cfg.query_inits
        record = frozenset(spec.needs & set(RECORDS))
    return QueryPlan(schedule, int(epochs), int(inits), record, frozenset(spec.needs & set(FINAL_FIELDS)),
                     needs_recall)


def derived_seed(*parts: int) -> int:
    """A 31-bit seed for one purpose of a run (query init i, scores, selection, final model)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0] & 0x7FFFFFFF)


def train_config(cfg: ResolvedConfig, epochs: int, *, seed: int, augment: bool, record: frozenset[str],
                 eval_val: bool) -> TrainConfig:
    """The trainer's settings for one training of this run."""
    return TrainConfig(epochs=epochs, batch_size=cfg.batch_size, lr=cfg.lr, momentum=cfg.momentum,
                       weight_decay=cfg.weight_decay, schedule=cfg.schedule, milestones=tuple(cfg.milestones),
                       label_smoothing=cfg.label_smoothing, augment=augment, precision=cfg.precision,
                       seed=seed, record=record, eval_val_every_epoch=eval_val)


def new_model(name: str, data: Dataset, seed: int) -> torch.nn.Module:
    """A freshly initialised model, seeded without touching the global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_model(name, data.input_shape, data.num_classes)


def budget(density: float, n: int) -> int:
    """round(d * N), halves up (the quota rules use the same budget)."""
    return int(math.floor(density * n + 0.5))


def _query_init(cfg: ResolvedConfig, plan: QueryPlan, data: Dataset, i: int, cache: Cache,
                progress: ProgressFn, should_stop: Callable[[], bool] | None) -> tuple[Recording, bool]:
    """Load or train query init ``i``; returns its recording and whether it was trained now."""
    key, name = query_key(cfg, plan.key_facts()), f"init{i}"
    entry = cache.load("query", key, name)
    trained = entry is None
    if trained:
        seed = derived_seed(cfg.seed, 1, i)
        model = new_model(cfg.query_model, data, seed)
        tcfg = train_config(cfg, plan.epochs, seed=seed, augment=False, record=plan.record, eval_val=True)
        res = train(model, data, None, tcfg, device=cfg.device, should_stop=should_stop,
                    progress=lambda ev: progress({"stage": "query", "init": i, "inits": plan.inits, **ev}))
        arrays = {f"state.{k}": v.detach().cpu().numpy() for k, v in model.state_dict().items()}
        arrays.update({f"rec.{k}": v for k, v in res.per_epoch.items()})
        arrays["val_recall"] = np.asarray(res.val_recall, dtype=np.float64)
        meta = {"val_accuracy": float(res.val_accuracy), "best_epoch": int(res.best_epoch),
                "seconds": res.seconds}
        entry = (arrays, meta)
    arrays, meta = entry
    missing = sorted(f for f in plan.final if f"rec.{f}" not in arrays)
    if missing:
        if not trained:
            model = new_model(cfg.query_model, data, 0)
            model.load_state_dict({k[6:]: torch.from_numpy(v) for k, v in arrays.items() if k.startswith("state.")})
        progress({"stage": "query", "init": i, "inits": plan.inits, "message": f"computing {', '.join(missing)}"})
        outs = final_outputs(model, data, set(missing), device=cfg.device, precision=cfg.precision)
        arrays.update({f"rec.{k}": v for k, v in outs.items()})
    if trained or missing:
        cache.save("query", key, name, arrays, meta)
    rec = Recording(labels=data.y_train.numpy(), val_recall=arrays["val_recall"],
                    val_accuracy=meta["val_accuracy"], best_epoch=meta["best_epoch"],
                    **{k[4:]: v for k, v in arrays.items() if k.startswith("rec.")})
    return rec, trained


def scorer_params(cfg: ResolvedConfig, data: Dataset) -> ScorerParams:
    """The scorers' options of this run."""
    return ScorerParams(budget=budget(cfg.density, data.y_train.shape[0]),
                        forgetting_never_learned=cfg.forgetting_never_learned, du_window=cfg.du_window,
                        ssp_clusters=cfg.ssp_clusters, ssp_variant=cfg.ssp_variant)


def query_stage(config: ResolvedConfig, *, cache_dir: str | os.PathLike | None = None,
                progress: ProgressFn | None = None, should_stop: Callable[[], bool] | None = None,
                data: Dataset | None = None) -> QueryStageResult:
    """Train (or load from the cache) the query model(s) of ``config`` and compute the scores.

    A sweep calls this once per query group before its grid points, so the points differing
    only in final-stage fields train only their final models.
    """
    cfg = ensure_resolved(config)
    emit = progress or (lambda ev: None)
    if data is None:
        data = load_dataset(cfg.dataset, root=cfg.data_root, download=cfg.download, seed=cfg.data_seed)
    cache = Cache(cache_dir)
    plan = query_plan(cfg)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    recordings, trained_any = [], False
    for i in range(plan.inits):
        if should_stop is not None and should_stop():
            raise Stopped("stopped before query init")
        emit({"stage": "query", "init": i, "inits": plan.inits, "epoch": 0, "epochs": plan.epochs,
              "message": f"query model {i + 1}/{plan.inits} ({plan.schedule}, {plan.epochs} epochs)"})
        rec, trained = _query_init(cfg, plan, data, i, cache, emit, should_stop)
        recordings.append(rec)
        trained_any |= trained
    timings["query"] = time.perf_counter() - t0
    val_recall = np.mean([r.val_recall for r in recordings], axis=0) if recordings else None

    t0 = time.perf_counter()
    emit({"stage": "score", "epoch": 0, "epochs": 0, "message": f"scoring with {cfg.scorer}"})
    skey = score_key(cfg, query_key(cfg, plan.key_facts()) if plan.inits else None, data.y_train.shape[0])
    entry = cache.load("scores", skey, "scores")
    if entry is None:
        if recordings:
            recs = recordings
        else:   # no query model: scorers of kind "none" read only the labels
            recs = [Recording(labels=data.y_train.numpy(), val_recall=np.full(data.num_classes, np.nan),
                              val_accuracy=float("nan"), best_epoch=-1)]
        scores = compute_scores(cfg.scorer, recs, seed=derived_seed(cfg.seed, 2), params=scorer_params(cfg, data))
        cache.save("scores", skey, "scores", {"scores": scores})
    else:
        scores = entry[0]["scores"]
    timings["score"] = time.perf_counter() - t0
    return QueryStageResult(recordings, val_recall, scores, bool(recordings) and not trained_any, plan, timings)
