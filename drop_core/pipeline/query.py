"""The query stage: query model(s) -> validation recall -> per-sample scores, cached on disk.

Which query model(s) a run trains depends on the scorer's schedule (docs/drop-method.md,
"Query models"): ``early`` scorers (EL2N, GraNd) train ``query_inits`` models for
``query_fraction`` of the epochs and average over inits; ``full`` scorers (Forgetting,
Dynamic Uncertainty, CoreSet, SSP, AUM) train one model for the full length. The scores always
come from these models.

The validation recalls a quota rule reads (DRoP) come from ``query_schedule``:

- ``early`` (default): the scorer's query models; a scorer without any (``random``) gets the
  early schedule (the authors' code leaves this case open; their first commit and README use
  it). Recall is taken at each model's best-validation-accuracy epoch, averaged over inits.
- ``full``: one full-length query model (``query_epochs`` if set, else ``epochs``; best-epoch
  recall). It is the very model (same key) a full-length scorer trains, so Forgetting+DRoP
  trains nothing extra and Random+DRoP with ``full`` shares it with them.
- ``reference``: the full-data reference model, i.e. the final model of the same config at
  density 1 (:func:`reference_model`: same seed, epochs, augmentation), recall at its last
  epoch. It is cached under :func:`reference_key`, which a density-1 run's final model and
  ``correction="logit_adjust"`` share, so it is trained once for every density.

``query_schedule`` never changes a scorer's query model or scores, so their keys are computed
with it at its default. Each model whose recall the quotas read is checked for degeneracy
(:func:`degenerate_warning`). At density 1, and with ``correction="cdbw"``, nothing is pruned and
no query model is trained.

Every query init (weights, per-epoch records, final outputs, validation recall and confusion)
and every score vector is cached under :func:`drop_core.config.query_key` /
:func:`~drop_core.config.score_key`, so a run that changes only final-stage fields trains only
its final model, and a run killed mid-way resumes from the inits it finished.
"""
from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from drop_core.cache import Cache, config_hash
from drop_core.config import (
    RESULTS_VERSION,
    ResolvedConfig,
    RunConfig,
    ensure_resolved,
    fields_of,
    query_key,
    score_key,
)
from drop_core.data import load_dataset
from drop_core.data.base import Dataset
from drop_core.data.imbalance import apply_imbalance
from drop_core.models import build_model
from drop_core.quotas import quoter_needs_recalls
from drop_core.scoring import SCORERS, ScorerParams, compute_scores
from drop_core.scoring.recording import Recording
from drop_core.train.outputs import FINAL_FIELDS, final_outputs
from drop_core.train.trainer import RECORDS, Stopped, TrainConfig, predict, train

ProgressFn = Callable[[dict], None]

# Degenerate query models (docs/drop-method.md, "Query models"): flagged when either holds.
MIN_SKILL = 0.1        # (accuracy - chance) / (1 - chance) below this: near chance
MAX_SHIFT = 0.3        # total-variation distance of predicted vs true validation class shares: collapsed

# Fields that cannot change the final model of a density-1 run without correction: the reference
# model's key leaves them out. Every other setting field (a new one included) enters it.
REFERENCE_FREE = frozenset({"query_model", "query_epochs", "query_fraction", "query_inits", "query_schedule",
                            "scorer", "density", "quoter", "selection", "strength", "min_per_class",
                            "epoch_scaling", "correction", "forgetting_never_learned", "du_window", "ssp_clusters",
                            "ssp_variant"})


@dataclass(frozen=True)
class QueryPlan:
    """What the query stage trains: ``schedule`` "early"/"full"/"none", ``inits`` runs of ``epochs`` epochs.

    ``recall``: where the quota rule's recalls come from: "scorer" (these models), "full" (one
    full-length query model), "reference" (the full-data model) or "none".
    """

    schedule: str
    epochs: int
    inits: int
    record: frozenset[str]      # per-epoch Recording fields
    final: frozenset[str]       # final-output Recording fields (the scorer's)
    needs_recall: bool
    recall: str = "none"

    def key_facts(self) -> dict:
        """What a query model's identity takes from the plan (the init count is not part of it)."""
        return {"epochs": self.epochs, "record": sorted(self.record)}


@dataclass
class QueryStageResult:
    recordings: list[Recording]
    val_recall: np.ndarray | None       # (K,) the recalls the quotas read; None without them
    scores: np.ndarray | None           # (N,); None when nothing is pruned and the scorer needs query models
    cache_hit: bool                     # query models were needed and all came from the cache
    plan: QueryPlan
    timings: dict[str, float]
    warnings: list[str] = field(default_factory=list)   # degenerate query models


def load_run_data(cfg: ResolvedConfig) -> Dataset:
    """The run's dataset: loaded, then long-tailed by ``imbalance`` (training split only)."""
    data = load_dataset(cfg.dataset, root=cfg.data_root, download=cfg.download, seed=cfg.data_seed)
    return apply_imbalance(data, cfg.imbalance)


def query_plan(cfg: ResolvedConfig) -> QueryPlan:
    """The query schedule of a resolved config (see the module docstring)."""
    spec = SCORERS.get(cfg.scorer)
    needs_recall = quoter_needs_recalls(cfg.quoter)
    schedule, recall = spec.query, "none"
    if needs_recall:
        recall = {"early": "scorer", "full": "scorer" if schedule == "full" else "full",
                  "reference": "reference"}[cfg.query_schedule]
        if schedule == "none" and recall == "scorer":
            schedule = "early"
    if cfg.density == 1.0 or cfg.correction == "cdbw":     # nothing is pruned
        return QueryPlan("none", 0, 0, frozenset(), frozenset(), needs_recall and cfg.correction != "cdbw")
    if schedule == "none":
        return QueryPlan("none", 0, 0, frozenset(), frozenset(), needs_recall, recall)
    if schedule == "full":
        return dataclasses.replace(full_plan(cfg), final=frozenset(spec.needs & set(FINAL_FIELDS)),
                                   needs_recall=needs_recall, recall=recall)
    epochs = cfg.query_epochs or max(1, round(cfg.query_fraction * cfg.epochs))
    return QueryPlan("early", int(epochs), int(cfg.query_inits), frozenset(spec.needs & set(RECORDS)),
                     frozenset(spec.needs & set(FINAL_FIELDS)), needs_recall, recall)


def full_plan(cfg: ResolvedConfig) -> QueryPlan:
    """One full-length query run recording every per-epoch field: full-length scorers and the ``full``
    recall schedule share it."""
    return QueryPlan("full", int(cfg.query_epochs or cfg.epochs), 1, frozenset(RECORDS), frozenset(), True, "full")


def derived_seed(*parts: int) -> int:
    """A 31-bit seed for one purpose of a run (query init i, scores, selection, final model)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0] & 0x7FFFFFFF)


FINAL_SEED = 4      # derived_seed(seed, FINAL_SEED): the final model (and the reference model)


def train_config(cfg: ResolvedConfig, epochs: int, *, seed: int, augment: bool, record: frozenset[str],
                 eval_val: bool, cdbw: bool = False) -> TrainConfig:
    """The trainer's settings for one training of this run."""
    return TrainConfig(epochs=epochs, batch_size=cfg.batch_size, lr=cfg.lr, momentum=cfg.momentum,
                       weight_decay=cfg.weight_decay, schedule=cfg.schedule, milestones=tuple(cfg.milestones),
                       label_smoothing=cfg.label_smoothing, augment=augment, precision=cfg.precision,
                       seed=seed, record=record, eval_val_every_epoch=eval_val, cdbw=cdbw)


def new_model(name: str, data: Dataset, seed: int) -> torch.nn.Module:
    """A freshly initialised model, seeded without touching the global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_model(name, data.input_shape, data.num_classes)


def budget(density: float, n: int) -> int:
    """round(d * N), halves up (the quota rules use the same budget)."""
    return int(math.floor(density * n + 0.5))


def _state(model: torch.nn.Module) -> dict[str, np.ndarray]:
    return {f"state.{k}": v.detach().cpu().numpy() for k, v in model.state_dict().items()}


def _load_state(model: torch.nn.Module, arrays: dict[str, np.ndarray]) -> torch.nn.Module:
    model.load_state_dict({k[6:]: torch.from_numpy(v) for k, v in arrays.items() if k.startswith("state.")})
    return model


def val_confusion(model: torch.nn.Module, data: Dataset, cfg: ResolvedConfig) -> np.ndarray:
    """(K, K) validation confusion matrix of ``model`` (rows true class, columns prediction)."""
    pred = predict(model, data.x_val, data, device=cfg.device, precision=cfg.precision).argmax(1).numpy()
    k = data.num_classes
    return np.bincount(data.y_val.numpy() * k + pred, minlength=k * k).reshape(k, k)


def _query_init(cfg: ResolvedConfig, plan: QueryPlan, data: Dataset, i: int, cache: Cache,
                progress: ProgressFn, should_stop: Callable[[], bool] | None
                ) -> tuple[Recording, np.ndarray, bool]:
    """Load or train query init ``i``; returns its recording, validation confusion matrix (at the
    epoch its recall is from) and whether it was trained now."""
    key, name = query_key(_scorer_cfg(cfg), plan.key_facts()), f"init{i}"
    entry = cache.load("query", key, name)
    trained = entry is None
    model = None
    if trained:
        seed = derived_seed(cfg.seed, 1, i)
        model = new_model(cfg.query_model, data, seed)
        tcfg = train_config(cfg, plan.epochs, seed=seed, augment=False, record=plan.record, eval_val=True)
        res = train(model, data, None, tcfg, device=cfg.device, should_stop=should_stop,
                    progress=lambda ev: progress({"stage": "query", "init": i, "inits": plan.inits, **ev}))
        arrays = _state(model)
        arrays.update({f"rec.{k}": v for k, v in res.per_epoch.items()})
        arrays["val_recall"] = np.asarray(res.val_recall, dtype=np.float64)
        arrays["val_confusion"] = np.asarray(res.val_confusion, dtype=np.int64)
        meta = {"val_accuracy": float(res.val_accuracy), "best_epoch": int(res.best_epoch),
                "seconds": res.seconds}
        entry = (arrays, meta)
    arrays, meta = entry
    missing = sorted(f for f in plan.final if f"rec.{f}" not in arrays)
    stale = "val_confusion" not in arrays    # cached before the degeneracy check: from the saved (last) weights
    if (missing or stale) and model is None:
        model = _load_state(new_model(cfg.query_model, data, 0), arrays)
    if missing:
        progress({"stage": "query", "init": i, "inits": plan.inits, "message": f"computing {', '.join(missing)}"})
        outs = final_outputs(model, data, set(missing), device=cfg.device, precision=cfg.precision)
        arrays.update({f"rec.{k}": v for k, v in outs.items()})
    if stale:
        arrays["val_confusion"] = val_confusion(model, data, cfg)
    if trained or missing or stale:
        cache.save("query", key, name, arrays, meta)
    rec = Recording(labels=data.y_train.numpy(), val_recall=arrays["val_recall"],
                    val_accuracy=meta["val_accuracy"], best_epoch=meta["best_epoch"],
                    **{k[4:]: v for k, v in arrays.items() if k.startswith("rec.")})
    return rec, arrays["val_confusion"], trained


def _scorer_cfg(cfg: ResolvedConfig) -> ResolvedConfig:
    """``cfg`` with ``query_schedule`` at its default: the schedule of the recalls never changes a scorer's
    query models or scores, so their keys are the same under every schedule."""
    return dataclasses.replace(cfg, query_schedule=RunConfig.__dataclass_fields__["query_schedule"].default)


def reference_key(cfg: ResolvedConfig) -> str:
    """Identity of the full-data reference model: every setting field but :data:`REFERENCE_FREE`, the
    data's identity and the results version. A density-1 run without correction, ``logit_adjust``
    and the ``reference`` recall schedule of any density share it."""
    values = cfg.to_dict()
    fields = [n for n in fields_of("data", "query", "score", "final") if n not in REFERENCE_FREE]
    return config_hash({"reference": {n: values[n] for n in fields}, "data_id": cfg.data_id,
                        "results_version": RESULTS_VERSION})


def reference_model(cfg: ResolvedConfig, data: Dataset, cache: Cache, *, stage: str, progress: ProgressFn,
                    should_stop: Callable[[], bool] | None) -> tuple[torch.nn.Module, np.ndarray, bool]:
    """The final model of ``cfg`` at density 1 without correction, from the cache or trained now.

    Returns the model, its validation confusion matrix after the last epoch, and whether it was
    trained now. ``stage`` names the progress events ("query" or "final").
    """
    key = reference_key(cfg)
    seed = derived_seed(cfg.seed, FINAL_SEED)
    model = new_model(cfg.model, data, seed)
    entry = cache.load("reference", key, "model")
    if entry is not None:
        progress({"stage": stage, "message": "the full-data reference model comes from the cache"})
        return _load_state(model, entry[0]), entry[0]["val_confusion"], False
    n = data.y_train.shape[0]
    progress({"stage": stage, "epoch": 0, "epochs": cfg.epochs,
              "message": f"full-data reference model on {n} samples, {cfg.epochs} epochs"})
    train_data = data if cfg.flip is None else dataclasses.replace(data, flip=cfg.flip)
    res = train(model, train_data, np.arange(n),
                train_config(cfg, cfg.epochs, seed=seed, augment=cfg.augment, record=frozenset(), eval_val=False),
                device=cfg.device, progress=lambda ev: progress({"stage": stage, **ev}), should_stop=should_stop)
    confusion = np.asarray(res.val_confusion, dtype=np.int64)
    cache.save("reference", key, "model", {**_state(model), "val_confusion": confusion},
               {"seconds": res.seconds})
    return model, confusion, True


def query_health(confusion: np.ndarray) -> dict[str, float | int | bool]:
    """The degeneracy facts of one query model from its (K, K) validation confusion matrix.

    ``accuracy``; ``chance`` (the largest true class share: always predicting that class); ``skill``
    = (accuracy - chance) / (1 - chance); ``shift``, the total-variation distance between the
    predicted and the true class shares (the fraction of predictions that would have to change
    class for the two histograms to match); ``top``, the most over-predicted class, with its
    predicted and true ``top_share``/``top_true``. ``degenerate`` when skill < :data:`MIN_SKILL` or
    shift >= :data:`MAX_SHIFT`.
    """
    cm = np.asarray(confusion, dtype=np.float64)
    n = cm.sum()
    true, pred = cm.sum(1) / n, cm.sum(0) / n
    accuracy, chance = float(np.trace(cm) / n), float(true.max())
    skill = (accuracy - chance) / (1.0 - chance) if chance < 1.0 else 0.0
    shift = float(0.5 * np.abs(pred - true).sum())
    top = int(np.argmax(pred - true))
    return {"accuracy": accuracy, "chance": chance, "skill": float(skill), "shift": shift, "top": top,
            "top_share": float(pred[top]), "top_true": float(true[top]),
            "degenerate": bool(skill < MIN_SKILL or shift >= MAX_SHIFT)}


def degenerate_warning(name: str, confusion: np.ndarray, classes: list[str]) -> str | None:
    """A loud warning when the query model ``name`` is degenerate (:func:`query_health`), else None."""
    h = query_health(confusion)
    if not h["degenerate"]:
        return None
    why = []
    if h["skill"] < MIN_SKILL:
        why.append("near chance")
    if h["shift"] >= MAX_SHIFT:
        why.append("its predictions collapsed onto few classes")
    return (f"DEGENERATE QUERY MODEL: {name} ({' and '.join(why)}): validation accuracy {h['accuracy']:.3f} "
            f"(chance {h['chance']:.3f}); it predicts class {classes[h['top']]!r} for {h['top_share']:.0%} of the "
            f"validation samples (true share {h['top_true']:.0%}; predicted and true class shares differ by "
            f"{h['shift']:.2f} in total variation). DRoP's quotas then follow its prediction bias, not class "
            f"difficulty. Fix: a longer query (--query-epochs N), more inits (--query-inits N), or "
            f"--query-schedule full / reference.")


def scorer_params(cfg: ResolvedConfig, data: Dataset) -> ScorerParams:
    """The scorers' options of this run."""
    return ScorerParams(budget=budget(cfg.density, data.y_train.shape[0]),
                        forgetting_never_learned=cfg.forgetting_never_learned, du_window=cfg.du_window,
                        ssp_clusters=cfg.ssp_clusters, ssp_variant=cfg.ssp_variant)


def _epochs(n: int) -> str:
    return f"{n} epoch" + ("" if n == 1 else "s")


def _recalls(cfg: ResolvedConfig, plan: QueryPlan, data: Dataset, cache: Cache, recordings: list[Recording],
             confusions: list[np.ndarray], emit: ProgressFn, should_stop: Callable[[], bool] | None
             ) -> tuple[np.ndarray | None, list[tuple[str, np.ndarray]], bool]:
    """The recalls the quotas read, the (name, confusion) of each model they come from, and whether
    a model was trained for them now."""
    if plan.recall == "scorer":
        names = [f"query model init {i} ({plan.schedule} schedule, {_epochs(plan.epochs)})"
                 for i in range(len(recordings))]
        return np.mean([r.val_recall for r in recordings], axis=0), list(zip(names, confusions)), False
    if plan.recall == "full":
        fp = full_plan(cfg)
        emit({"stage": "query", "init": 0, "inits": 1, "epoch": 0, "epochs": fp.epochs,
              "message": f"full-length query model for the recalls ({fp.epochs} epochs)"})
        rec, confusion, trained = _query_init(cfg, fp, data, 0, cache, emit, should_stop)
        return rec.val_recall, [(f"the full-length query model init 0 ({_epochs(fp.epochs)})", confusion)], trained
    if plan.recall == "reference":
        _, confusion, trained = reference_model(cfg, data, cache, stage="query", progress=emit,
                                                should_stop=should_stop)
        support = confusion.sum(1).astype(np.float64)
        recall = np.diagonal(confusion) / support    # a class without validation samples -> NaN
        return recall, [(f"the full-data reference model ({_epochs(cfg.epochs)})", confusion)], trained
    return None, [], False


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
        data = load_run_data(cfg)
    cache = Cache(cache_dir)
    plan = query_plan(cfg)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    recordings, confusions, trained_any = [], [], False
    for i in range(plan.inits):
        if should_stop is not None and should_stop():
            raise Stopped("stopped before query init")
        emit({"stage": "query", "init": i, "inits": plan.inits, "epoch": 0, "epochs": plan.epochs,
              "message": f"query model {i + 1}/{plan.inits} ({plan.schedule}, {plan.epochs} epochs)"})
        rec, confusion, trained = _query_init(cfg, plan, data, i, cache, emit, should_stop)
        recordings.append(rec)
        confusions.append(confusion)
        trained_any |= trained
    val_recall, checked, trained = _recalls(cfg, plan, data, cache, recordings, confusions, emit, should_stop)
    trained_any |= trained
    warnings = [w for name, cm in checked if (w := degenerate_warning(name, cm, list(data.classes)))]
    timings["query"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    emit({"stage": "score", "epoch": 0, "epochs": 0, "message": f"scoring with {cfg.scorer}"})
    scfg = _scorer_cfg(cfg)
    skey = score_key(scfg, query_key(scfg, plan.key_facts()) if plan.inits else None, data.y_train.shape[0])
    entry = cache.load("scores", skey, "scores")
    if plan.schedule == "none" and SCORERS.get(cfg.scorer).query != "none":
        scores = None            # density 1 or cdbw: nothing is pruned, no score is read
    elif entry is None:
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
    used_models = bool(recordings) or bool(checked)
    return QueryStageResult(recordings, val_recall, scores, used_models and not trained_any, plan, timings,
                            warnings)
