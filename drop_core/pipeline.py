"""The DRoP pipeline: query model(s) -> validation recall -> scores -> quotas -> subset -> final model -> metrics.

One function, :func:`run`, takes a :class:`RunConfig` and returns a :class:`RunResult`.

Config resolution (nanoGPT ``configurator.py`` style): the preset fills every field the user
left unset (``None``), user values win, every override is logged, an unknown key is an
error. The run key hashes the whole resolved config plus a code version, so two runs with
the same key compute the same thing.

Query stage. Which query model(s) a run trains depends on the scorer's schedule
(notes §3.5): ``early`` scorers (EL2N, GraNd) train ``query_inits`` models for
``query_fraction`` of the epochs and average over inits; ``full`` scorers (Forgetting,
Dynamic Uncertainty, CoreSet, SSP, AUM) train one model for the full length. A scorer
without a query model (``random``) combined with a quota rule that reads validation recall
(DRoP) uses the ``early`` schedule: the authors' code leaves this case open (notes §2.3.7),
and the early schedule is the one of their first commit and of their README (5 inits).
Validation recall per class is taken at each query model's best-validation-accuracy epoch
and averaged over inits (notes §5.2). At density 1 nothing is pruned, so no query model is
trained.

Cache. Every query init (model weights, per-epoch records, final outputs, validation
recall) and every score vector is stored on disk under a hash of what determines it
(:mod:`drop_core.cache`), so a second run that changes only the density, the quota rule or
the selection trains only the final model, and a run killed mid-way resumes from the inits
it finished.
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import os
import platform
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from drop_core.cache import Cache, config_hash
from drop_core.data import DATASETS, load_dataset
from drop_core.data.base import Dataset
from drop_core.errors import DropError
from drop_core.metrics import class_recalls, summarize
from drop_core.models import MODELS, build_model
from drop_core.presets import EMBEDDED, PRESETS, preset_keys
from drop_core.quotas import QUOTERS, QuotaParams, quoter_needs_recalls
from drop_core.scoring import SCORERS, ScorerParams, compute_scores
from drop_core.select import (Selection, select_ccs, select_global, select_per_class, select_random_per_class,
                              select_strategyq)
from drop_core.store import Store
from drop_core.train.device import resolve_device
from drop_core.train.record import FINAL_FIELDS, final_outputs
from drop_core.train.recording import Recording
from drop_core.train.trainer import RECORDS, Stopped, TrainConfig, predict, train

log = logging.getLogger("drop_core.pipeline")

DEFAULT_DATASET = "digits"    # measured choice: see the README, "Research backend and CLI"
SELECTIONS = ("top", "random", "ccs")
ProgressFn = Callable[[dict], None]


def _f(help: str, **kw: Any) -> Any:
    """A config field with its CLI help text."""
    default = kw.pop("default", None)
    return field(default=default, metadata={"help": help, **kw})


@dataclass(frozen=True)
class RunConfig:
    """Every field that determines a result (hashed into the run key). ``None``: the preset decides."""

    dataset: str = _f("dataset name (see `list datasets`) or imagefolder:PATH", default=DEFAULT_DATASET)
    data_root: str | None = _f("folder holding the dataset files (torchvision datasets, TinyImageNet)")
    download: bool = _f("download a torchvision dataset into --data-root when missing", default=False, key=False)
    data_seed: int = _f("seed of generated datasets (gaussians)", default=0)
    model: str | None = _f("model name (see `list models`); default: the preset's model for the dataset")
    preset: str = _f("hyperparameter preset (see `list presets`)", default="cpu")
    epochs: int | None = _f("epochs of a full-data training run")
    batch_size: int | None = _f("mini-batch size")
    lr: float | None = _f("peak learning rate")
    momentum: float | None = _f("SGD momentum")
    weight_decay: float | None = _f("weight decay")
    schedule: str | None = _f("learning-rate schedule: multistep, onecycle or constant")
    milestones: tuple[float, ...] | None = _f("multistep lr drops (x0.2) as fractions of the epochs", nargs="+")
    label_smoothing: float | None = _f("label smoothing of the cross-entropy")
    augment: bool | None = _f("augment the final model's batches (flip/translate where the data allows)")
    flip: bool | None = _f("random horizontal flips when augmenting; default: the dataset's (on for natural "
                           "images and image folders; --no-flip where a mirror image changes the class)")
    precision: str | None = _f("auto, bf16 or fp32")
    epoch_scaling: bool | None = _f("final model trains int((0.5+0.5d)/d * epochs) epochs at kept fraction d")
    scorer: str = _f("pruning score (see `list scorers`)", default="random")
    quoter: str = _f("class quota rule (see `list quoters`)", default="drop")
    selection: str = _f("within-class selection: top (highest scores), random (uniform; with quoter "
                        "none: StrategyQ, random within the scorer's class counts) or ccs", default="top")
    density: float = _f("fraction of the training set kept, in (0, 1]", default=0.5)
    seed: int = _f("seed of query models, scores, selection and final model", default=0)
    device: str = _f("auto, cpu or cuda", default="auto")
    query_model: str | None = _f("model of the query runs; default: the final model")
    query_epochs: int | None = _f("epochs of each query run; default: query_fraction of the epochs "
                                  "(early scorers) or all of them (full scorers)")
    query_fraction: float | None = _f("length of early query runs as a fraction of the epochs")
    query_inits: int | None = _f("query models averaged for early scorers (full-length scorers train one)")
    strength: float = _f("DRoP strength tau: weights (1-r_k)**tau; 1 is the paper, 0 uniform", default=1.0)
    min_per_class: int | None = _f("every class keeps at least this many samples (0: the paper)")
    forgetting_never_learned: str = _f("forgetting score of never-learned samples: max (Toneva) or zero "
                                       "(authors' code)", default="max")
    du_window: int = _f("Dynamic Uncertainty window J", default=10)
    ssp_clusters: int | None = _f("SSP k-means prototypes; default: the number of classes")
    ssp_variant: str = _f("SSP: kmeans (nearest prototype) or class_mean (authors' SSPY)", default="kmeans")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunConfig:
        """Build from a dict (app, sweep); an unknown key is an error listing the valid ones."""
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise DropError(f"Unknown run config key {unknown[0]!r}. Valid keys: {', '.join(names)}.")
        vals = dict(values)
        if vals.get("milestones") is not None:
            vals["milestones"] = tuple(vals["milestones"])
        return cls(**vals)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class RunResult:
    """What a run produced (also what ``--json`` prints, without ``kept_indices``)."""

    average_accuracy: float                 # overall test accuracy
    worst_class_accuracy: float             # min per-class test recall
    class_accuracy: dict[str, float]        # class name -> test recall
    kept_per_class: dict[str, int]
    class_sizes: dict[str, int]             # training samples per class before pruning
    val_recall: dict[str, float]            # query models' validation recall ({} without a query model)
    train_size: int
    config: dict[str, Any]                  # the resolved config
    warnings: list[str]
    query_cache_hit: bool
    timings: dict[str, float]               # stage -> seconds
    worst_class: str = ""
    mean_recall: float = float("nan")
    recall_std: float = float("nan")
    recall_gap: float = float("nan")
    val_class_accuracy: dict[str, float] = field(default_factory=dict)   # final model on the val split
    final_epochs: int = 0
    key: str = ""
    run_id: int | None = None
    reused: bool = False                    # an identical finished run was returned from the store
    kept_indices: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64), repr=False)

    def to_dict(self, *, indices: bool = True) -> dict[str, Any]:
        """Plain dict (JSON-serialisable); ``indices=False`` leaves out ``kept_indices``."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "kept_indices"}
        if indices:
            d["kept_indices"] = self.kept_indices.tolist()
        return d

    @classmethod
    def from_store(cls, store: Store, run_id: int) -> RunResult:
        """Rebuild the result of a finished run from the store."""
        run = store.get_run(run_id)
        cm = store.class_metrics([run_id])
        test, val = cm[cm.split == "test"], cm[cm.split == "val"]
        names = list(test.class_name)
        summary = run["summary"] or {}
        return cls(
            average_accuracy=summary["average_accuracy"], worst_class_accuracy=summary["worst_class_accuracy"],
            class_accuracy=dict(zip(names, test.accuracy.astype(float))),
            kept_per_class=dict(zip(names, test.kept.astype(int).tolist())),
            class_sizes=dict(zip(names, test.class_size.astype(int).tolist())),
            val_recall={n: float(v) for n, v in zip(names, test.val_recall) if v is not None and v == v},
            train_size=int(summary["train_size"]), config=run["config"], warnings=list(summary.get("warnings", [])),
            query_cache_hit=bool(summary.get("query_cache_hit")), timings=run["timings"],
            worst_class=summary.get("worst_class", ""), mean_recall=summary.get("mean_recall", float("nan")),
            recall_std=summary.get("recall_std", float("nan")), recall_gap=summary.get("recall_gap", float("nan")),
            val_class_accuracy=dict(zip(val.class_name, val.accuracy.astype(float))),
            final_epochs=int(summary.get("final_epochs", 0)), key=run["key"], run_id=run_id,
            kept_indices=store.kept_indices(run_id))


class Cancelled(DropError):
    """The run was cancelled (store cancel flag or ``should_stop``)."""


# --- config resolution -----------------------------------------------------------------

def config_fields() -> list[dataclasses.Field]:
    return list(dataclasses.fields(RunConfig))


_KEY_FIELDS = [f.name for f in dataclasses.fields(RunConfig) if f.metadata.get("key", True)]
_unknown_preset_keys = preset_keys() - {f.name for f in dataclasses.fields(RunConfig)}
if _unknown_preset_keys:
    raise ValueError(f"presets set unknown config fields: {sorted(_unknown_preset_keys)}")


def _range_error(name: str, expected: str, got: Any) -> DropError:
    return DropError(f"The {name!r} parameter of run must be {expected}. Got {got!r} instead.")


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def _validate(cfg: RunConfig) -> None:
    """Check the user's values (names against the registries, numbers against their ranges)."""
    if not cfg.dataset.startswith("imagefolder:"):
        DATASETS.entry(cfg.dataset)
    PRESETS.entry(cfg.preset)
    SCORERS.entry(cfg.scorer)
    QUOTERS.entry(cfg.quoter)
    for name in (cfg.model, cfg.query_model):
        if name is not None:
            MODELS.entry(name)
    if not (_is_num(cfg.density) and 0.0 < cfg.density <= 1.0):
        raise _range_error("density", "a float in the range (0.0, 1.0]", cfg.density)
    if cfg.selection not in SELECTIONS:
        raise _range_error("selection", f"one of {', '.join(SELECTIONS)}", cfg.selection)
    if cfg.selection == "ccs" and cfg.quoter != "none":
        raise DropError(f"Selection 'ccs' chooses its own class counts; use it with quoter 'none'. "
                        f"Got quoter {cfg.quoter!r}.")
    for name in ("epochs", "batch_size", "query_epochs", "query_inits"):
        v = getattr(cfg, name)
        if v is not None and not (_is_int(v) and v >= 1):
            raise _range_error(name, "an int in the range [1, inf)", v)
    for name in ("seed", "data_seed", "min_per_class"):
        v = getattr(cfg, name)
        if v is not None and not (_is_int(v) and v >= 0):
            raise _range_error(name, "an int in the range [0, inf)", v)
    if not (_is_num(cfg.strength) and 0.0 <= cfg.strength <= 1.0):
        raise _range_error("strength", "a float in the range [0.0, 1.0]", cfg.strength)
    if cfg.query_fraction is not None and not (_is_num(cfg.query_fraction) and 0 < cfg.query_fraction <= 1):
        raise _range_error("query_fraction", "a float in the range (0.0, 1.0]", cfg.query_fraction)
    if cfg.lr is not None and not (_is_num(cfg.lr) and cfg.lr > 0):
        raise _range_error("lr", "a float in the range (0.0, inf)", cfg.lr)
    ScorerParams(forgetting_never_learned=cfg.forgetting_never_learned, du_window=cfg.du_window,
                 ssp_clusters=cfg.ssp_clusters, ssp_variant=cfg.ssp_variant)


def resolve(config: RunConfig) -> tuple[RunConfig, list[str]]:
    """Fill unset fields from the preset; returns the resolved config and the log of what was set.

    User values always win; each user value that differs from the preset's is logged at INFO
    ("Overriding: ..."), each value taken from the preset at DEBUG.
    """
    _validate(config)
    preset = PRESETS.get(config.preset)
    changes: dict[str, Any] = {}
    lines: list[str] = []
    model = config.model
    if model is None:
        model = changes["model"] = preset.default_model(config.dataset)
        lines.append(f"preset {config.preset!r}: model = {model!r} for dataset {config.dataset!r}")
    MODELS.entry(model)
    for key, value in preset.values_for(model).items():
        user = getattr(config, key)
        if user is None:
            changes[key] = value
            lines.append(f"preset {config.preset!r}: {key} = {value!r}")
        elif user != value:
            line = f"Overriding: {key} = {user!r} (preset {config.preset!r} has {value!r})"
            log.info(line)
            lines.append(line)
    for line in lines:
        if not line.startswith("Overriding"):
            log.debug(line)
    changes["device"] = resolve_device(config.device).type
    if changes.get("query_model", config.query_model) is None:
        changes["query_model"] = model
    resolved = dataclasses.replace(config, **changes)
    _validate(resolved)
    return resolved, lines


_CODE_VERSION: str | None = None
_NOT_CODE = {"cli.py", "__main__.py", "store.py", "sweep.py"}   # do not change what a run computes


def code_version() -> str:
    """Hash of the package sources that determine results (everything but the CLI, store and sweep)."""
    global _CODE_VERSION
    if _CODE_VERSION is None:
        root = Path(__file__).parent
        h = hashlib.sha256()
        for path in sorted(root.rglob("*.py")):
            if path.name not in _NOT_CODE:
                h.update(str(path.relative_to(root)).encode())
                h.update(path.read_bytes())
        _CODE_VERSION = h.hexdigest()[:12]
    return _CODE_VERSION


def run_key(config: RunConfig) -> str:
    """Identity of a run: the resolved config (minus fields that do not change results) and the code version."""
    d = (config if _is_resolved(config) else resolve(config)[0]).to_dict()
    return config_hash({"config": {k: d[k] for k in _KEY_FIELDS}, "code": code_version()})


# --- query stage ----------------------------------------------------------------------

@dataclass(frozen=True)
class QueryPlan:
    """What the query stage trains: ``schedule`` "early"/"full"/"none", ``inits`` runs of ``epochs`` epochs."""

    schedule: str
    epochs: int
    inits: int
    record: frozenset[str]      # per-epoch Recording fields
    final: frozenset[str]       # final-output Recording fields (the scorer's)
    needs_recall: bool


def query_plan(cfg: RunConfig) -> QueryPlan:
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


@dataclass
class QueryStageResult:
    recordings: list[Recording]
    val_recall: np.ndarray | None       # (K,) averaged over inits; None without a query model
    scores: np.ndarray                  # (N,)
    cache_hit: bool                     # query models were needed and all came from the cache
    plan: QueryPlan
    timings: dict[str, float]


def _seed(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0] & 0x7FFFFFFF)


def _train_config(cfg: RunConfig, epochs: int, *, seed: int, augment: bool, record: frozenset[str],
                  eval_val: bool) -> TrainConfig:
    return TrainConfig(epochs=epochs, batch_size=cfg.batch_size, lr=cfg.lr, momentum=cfg.momentum,
                       weight_decay=cfg.weight_decay, schedule=cfg.schedule, milestones=tuple(cfg.milestones),
                       label_smoothing=cfg.label_smoothing, augment=augment, precision=cfg.precision,
                       seed=seed, record=record, eval_val_every_epoch=eval_val)


def _new_model(name: str, data: Dataset, seed: int) -> torch.nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_model(name, data.input_shape, data.num_classes)


def _query_key(cfg: RunConfig, plan: QueryPlan) -> str:
    keys = ("dataset", "data_root", "data_seed", "query_model", "batch_size", "lr", "momentum", "weight_decay",
            "schedule", "milestones", "label_smoothing", "precision", "seed", "device")
    d = cfg.to_dict()
    return config_hash({"query": {k: d[k] for k in keys}, "epochs": plan.epochs, "record": sorted(plan.record),
                        "code": code_version()})


def _query_init(cfg: RunConfig, plan: QueryPlan, data: Dataset, i: int, cache: Cache,
                progress: ProgressFn, should_stop: Callable[[], bool] | None) -> tuple[Recording, bool]:
    """Load or train query init ``i``; returns its recording and whether it was trained now."""
    key, name = _query_key(cfg, plan), f"init{i}"
    entry = cache.load("query", key, name)
    trained = entry is None
    if trained:
        seed = _seed(cfg.seed, 1, i)
        model = _new_model(cfg.query_model, data, seed)
        tcfg = _train_config(cfg, plan.epochs, seed=seed, augment=False, record=plan.record, eval_val=True)
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
            model = _new_model(cfg.query_model, data, 0)
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


def _scorer_params(cfg: RunConfig, data: Dataset) -> ScorerParams:
    return ScorerParams(budget=_budget(cfg.density, data.y_train.shape[0]),
                        forgetting_never_learned=cfg.forgetting_never_learned, du_window=cfg.du_window,
                        ssp_clusters=cfg.ssp_clusters, ssp_variant=cfg.ssp_variant)


def query_stage(config: RunConfig, *, cache_dir: str | os.PathLike | None = None,
                progress: ProgressFn | None = None, should_stop: Callable[[], bool] | None = None,
                data: Dataset | None = None) -> QueryStageResult:
    """Train (or load from the cache) the query model(s) of ``config`` and compute the scores.

    A sweep calls this once per (dataset, model, scorer, seed) before its grid points, so
    the points differing only in density or quota rule train only their final models.
    """
    cfg = config if _is_resolved(config) else resolve(config)[0]
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
    params = _scorer_params(cfg, data)
    skey = config_hash({"query": _query_key(cfg, plan) if plan.inits else None, "inits": plan.inits,
                        "scorer": cfg.scorer, "params": dataclasses.asdict(params), "seed": cfg.seed,
                        "n": int(data.y_train.shape[0]), "code": code_version()})
    entry = cache.load("scores", skey, "scores")
    if entry is None:
        if recordings:
            recs = recordings
        else:   # no query model: scorers of kind "none" read only the labels
            recs = [Recording(labels=data.y_train.numpy(), val_recall=np.full(data.num_classes, np.nan),
                              val_accuracy=float("nan"), best_epoch=-1)]
        scores = compute_scores(cfg.scorer, recs, seed=_seed(cfg.seed, 2), params=params)
        cache.save("scores", skey, "scores", {"scores": scores})
    else:
        scores = entry[0]["scores"]
    timings["score"] = time.perf_counter() - t0
    return QueryStageResult(recordings, val_recall, scores, bool(recordings) and not trained_any, plan, timings)


def _is_resolved(cfg: RunConfig) -> bool:
    """True when nothing is left for the preset to fill (so resolving again would change nothing)."""
    return (cfg.device in ("cpu", "cuda") and cfg.model is not None and cfg.query_model is not None
            and all(getattr(cfg, k) is not None for k in preset_keys()))


# --- selection ------------------------------------------------------------------------

def _budget(density: float, n: int) -> int:
    """round(d * N), halves up (the quota rules use the same budget)."""
    return int(math.floor(density * n + 0.5))


def select_subset(cfg: RunConfig, scores: np.ndarray, labels: np.ndarray, val_recall: np.ndarray | None,
                  num_classes: int) -> Selection:
    """Quotas from the quota rule, then the kept indices by the selection mode."""
    sizes = np.bincount(labels, minlength=num_classes)
    rng = np.random.default_rng(_seed(cfg.seed, 3))
    budget = _budget(cfg.density, labels.size)
    if budget < 1:
        raise DropError(f"Density {cfg.density} keeps no sample of the {labels.size} training samples; "
                        f"raise the density.")
    if cfg.density == 1.0:
        return Selection(indices=np.arange(labels.size), kept_per_class=sizes)
    quotas = QUOTERS.get(cfg.quoter)(sizes, val_recall, cfg.density,
                                     QuotaParams(min_per_class=cfg.min_per_class, strength=cfg.strength))
    if cfg.selection == "ccs":
        return select_ccs(scores, labels, budget, num_classes, rng)
    if quotas is None:
        chosen = select_global(scores, labels, budget, num_classes, rng=rng)
        # StrategyQ: the scorer's own class counts, random within each class
        return select_strategyq(labels, chosen, rng) if cfg.selection == "random" else chosen
    if cfg.selection == "random":
        return select_random_per_class(labels, quotas, rng)
    return select_per_class(scores, labels, quotas, rng=rng)


def empty_class_warnings(cfg: RunConfig, data: Dataset, sel: Selection, val_recall: np.ndarray | None) -> list[str]:
    """One warning per class that keeps no training sample, naming the class and the reason."""
    out = []
    sizes = data.class_sizes()
    for k in np.flatnonzero((sel.kept_per_class == 0) & (sizes > 0)):
        why = ""
        if val_recall is not None and quoter_needs_recalls(cfg.quoter):
            why = f" (its validation recall is {val_recall[k]:.3f}, so the {cfg.quoter} quota gives it nothing)"
        out.append(f"Class {data.classes[k]!r} keeps 0 of {int(sizes[k])} training samples{why}; the final model "
                   f"never sees it. Set min_per_class (--min-per-class N) to give every class a floor.")
    return out


# --- the run --------------------------------------------------------------------------

def environment(device: str) -> dict[str, Any]:
    """Where a run executes: versions, device, host."""
    env = {"torch": torch.__version__, "python": platform.python_version(), "platform": platform.platform(),
           "host": socket.gethostname(), "device": device, "threads": torch.get_num_threads(),
           "code_version": code_version()}
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
    if store is not None and not force:
        done = store.finished_run_for_key(key)
        if done is not None:
            result = RunResult.from_store(store, done)
            result.reused = True
            if run_id is not None and run_id != done:
                store.save_result(run_id, result.to_dict())
                result.run_id = run_id
            return result
    if store is not None:
        if run_id is None:
            run_id = store.create_run(cfg.to_dict(), key, status="running")
        else:
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
            store.set_status(run_id, "failed", error=f"{type(e).__name__}: {e}")
        raise
    result.run_id = run_id
    if store is not None:
        store.save_result(run_id, result.to_dict())
        store.add_event(run_id, {"stage": "done", "epoch": 0, "epochs": 0, "message": "finished"})
    events({"stage": "done", "message": "finished"})
    return result


def _run(cfg: RunConfig, key: str, emit: ProgressFn, stop: Callable[[], bool],
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
    data = load_dataset(cfg.dataset, root=cfg.data_root, download=cfg.download, seed=cfg.data_seed)
    timings["load"] = time.perf_counter() - t0

    q = query_stage(cfg, cache_dir=cache_dir, progress=emit, should_stop=stop, data=data)
    timings.update(q.timings)

    t0 = time.perf_counter()
    labels = data.y_train.numpy()
    emit({"stage": "select", "message": f"{cfg.quoter} quotas, {cfg.selection} selection at density {cfg.density}"})
    sel = select_subset(cfg, q.scores, labels, q.val_recall, data.num_classes)
    for msg in empty_class_warnings(cfg, data, sel, q.val_recall):
        warn(msg)
    timings["select"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    kept = len(sel.indices) / labels.size
    epochs = cfg.epochs
    if cfg.epoch_scaling and kept < 1.0:
        epochs = max(1, int((0.5 + 0.5 * kept) * cfg.epochs / kept))
    seed = _seed(cfg.seed, 4)
    emit({"stage": "final", "epoch": 0, "epochs": epochs,
          "message": f"final model on {len(sel.indices)} samples, {epochs} epochs"})
    model = _new_model(cfg.model, data, seed)
    train_data = data if cfg.flip is None else dataclasses.replace(data, flip=cfg.flip)
    train(model, train_data, sel.indices,
          _train_config(cfg, epochs, seed=seed, augment=cfg.augment, record=frozenset(), eval_val=False),
          device=cfg.device, progress=lambda ev: emit({"stage": "final", **ev}), should_stop=stop)
    timings["final"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    emit({"stage": "eval", "message": "evaluating on the test split"})
    pred = predict(model, data.x_test, data, device=cfg.device, precision=cfg.precision).argmax(1).numpy()
    y_test = data.y_test.numpy()
    recalls = class_recalls(y_test, pred, data.num_classes)
    summary = summarize(recalls)
    val_pred = predict(model, data.x_val, data, device=cfg.device, precision=cfg.precision).argmax(1).numpy()
    val_acc = class_recalls(data.y_val.numpy(), val_pred, data.num_classes)
    timings["eval"] = time.perf_counter() - t0

    names = list(data.classes)
    worst = int(np.argmin(recalls))
    return RunResult(
        average_accuracy=float((pred == y_test).mean()), worst_class_accuracy=float(recalls[worst]),
        class_accuracy={n: float(r) for n, r in zip(names, recalls)},
        kept_per_class={n: int(c) for n, c in zip(names, sel.kept_per_class)},
        class_sizes={n: int(c) for n, c in zip(names, data.class_sizes())},
        val_recall={} if q.val_recall is None else {n: float(r) for n, r in zip(names, q.val_recall)},
        train_size=int(len(sel.indices)), config=cfg.to_dict(), warnings=warnings,
        query_cache_hit=q.cache_hit, timings=timings, worst_class=names[worst],
        mean_recall=float(summary["average_accuracy"]), recall_std=float(summary["std"]),
        recall_gap=float(summary["gap"]), val_class_accuracy={n: float(r) for n, r in zip(names, val_acc)},
        final_epochs=epochs, key=key, kept_indices=np.asarray(sel.indices, dtype=np.int64))
