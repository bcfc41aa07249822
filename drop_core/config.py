"""A run's configuration and identity: every field declares its role once, and everything follows.

Each :class:`RunConfig` field carries a :class:`Role` in its dataclass metadata: the
``stage`` it first changes and its constraint (type, range, choices). From that one
declaration come

- validation (:func:`validate`, one message template, non-finite numbers rejected),
- the keys: :func:`query_key` (query models), :func:`score_key` (score vectors) and
  :func:`run_key` (a stored result), each hashing the fields of its stage and every stage
  before it, the data's identity and :data:`RESULTS_VERSION`,
- the CLI, sweep and bench flags (:func:`add_flags`), the sweep's grouping and the Results
  page's "settings" columns (:func:`setting_fields`).

Stages, in order: ``data`` (what the data is), ``query`` (the query models), ``score``
(the score vector from the query models), ``final`` (quotas, subset, final model) and
``runtime`` (cannot change a number: downloading). Device and precision can change numbers,
so they are ``query`` fields.

Config resolution (nanoGPT ``configurator.py`` style): the preset fills every field the user
left unset (``None``), user values win, every override is logged, an unknown key is an error.
:func:`resolve` returns a :class:`ResolvedConfig`, a distinct type the keys require.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drop_core.cache import config_hash
from drop_core.data import DATASETS
from drop_core.data.identity import data_identity, resolve_dataset_name
from drop_core.errors import DropError
from drop_core.models import MODELS
from drop_core.presets import PRESETS, preset_keys
from drop_core.quotas import QUOTERS
from drop_core.registry import Registry
from drop_core.scoring import SCORERS
from drop_core.train.device import PRECISIONS, resolve_device
from drop_core.train.schedules import SCHEDULES
from drop_core.validate import check_choice, check_number, is_number, param_error

log = logging.getLogger("drop_core.config")

# Bump when a change alters any number a run produces (guarded by tests/drop_core/test_golden.py);
# an edit that changes no result keeps every key, so stored runs and caches stay valid.
RESULTS_VERSION = 1

STAGES = ("data", "query", "score", "final", "runtime")
DEFAULT_DATASET = "digits"    # measured choice: see the README, "Research backend and CLI"
SELECTIONS = ("top", "random", "ccs")
QUERY_SCHEDULES = ("early", "full", "reference")   # where DRoP's recalls come from (docs/drop-method.md)
CORRECTIONS = ("none", "logit_adjust", "cdbw")       # train on everything and correct instead of pruning
DEVICES = ("auto", "cpu", "cuda")
OWNER = "run"                 # the name in validation messages


@dataclass(frozen=True)
class Role:
    """What a config field is: its stage, help text and constraint."""

    stage: str
    help: str
    kind: type                                  # bool, int, float, str or tuple (of floats)
    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False
    choices: Registry | tuple[str, ...] | Callable[[str], None] | None = None


def _f(stage: str, help: str, kind: type, *, default: Any = None, **constraint: Any) -> Any:
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}")
    return field(default=default, metadata={"role": Role(stage, help, kind, **constraint)})


def _check_dataset(name: str) -> None:
    if not (isinstance(name, str) and name.startswith("imagefolder:")):
        DATASETS.entry(name)


@dataclass(frozen=True)
class RunConfig:
    """Every setting of a run. ``None``: the preset decides."""

    dataset: str = _f("data", "dataset name (see `list datasets`) or imagefolder:PATH", str,
                      default=DEFAULT_DATASET, choices=_check_dataset)
    data_root: str | None = _f("data", "folder holding the dataset files (torchvision datasets, TinyImageNet)", str)
    download: bool = _f("runtime", "download a torchvision dataset into --data-root when missing", bool,
                        default=False)
    data_seed: int = _f("data", "seed of generated datasets (gaussians)", int, default=0, low=0)
    imbalance: float = _f("data", "long-tail ratio RHO: training class k keeps RHO**(-k/(K-1)) of its samples "
                          "(CIFAR-10-LT style; 1: none; validation and test untouched)", float, default=1.0, low=1.0)
    model: str | None = _f("final", "model name (see `list models`); default: the preset's model for the dataset",
                           str, choices=MODELS)
    preset: str = _f("final", "hyperparameter preset (see `list presets`)", str, default="cpu", choices=PRESETS)
    epochs: int | None = _f("query", "epochs of a full-data training run", int, low=1)
    batch_size: int | None = _f("query", "mini-batch size", int, low=1)
    lr: float | None = _f("query", "peak learning rate", float, low=0.0, open_low=True)
    momentum: float | None = _f("query", "SGD momentum", float, low=0.0, high=1.0, open_high=True)
    weight_decay: float | None = _f("query", "weight decay", float, low=0.0)
    schedule: str | None = _f("query", "learning-rate schedule: multistep, onecycle or constant", str,
                              choices=SCHEDULES)
    milestones: tuple[float, ...] | None = _f("query", "multistep lr drops (x0.2) as fractions of the epochs",
                                              tuple, low=0.0, high=1.0, open_low=True, open_high=True)
    label_smoothing: float | None = _f("query", "label smoothing of the cross-entropy", float, low=0.0, high=1.0,
                                       open_high=True)
    augment: bool | None = _f("final", "augment the final model's batches (flip/translate where the data allows)",
                              bool)
    flip: bool | None = _f("final", "random horizontal flips when augmenting; default: the dataset's (on for "
                           "natural images and image folders; --no-flip where a mirror image changes the class)", bool)
    precision: str | None = _f("query", "auto, bf16 or fp32", str, choices=PRECISIONS)
    epoch_scaling: bool | None = _f("final", "final model trains int((0.5+0.5d)/d * epochs) epochs at kept "
                                    "fraction d", bool)
    scorer: str = _f("score", "pruning score (see `list scorers`)", str, default="random", choices=SCORERS)
    quoter: str = _f("final", "class quota rule (see `list quoters`)", str, default="drop", choices=QUOTERS)
    selection: str = _f("final", "within-class selection: top (highest scores), random (uniform; with quoter "
                        "none: StrategyQ, random within the scorer's class counts) or ccs", str, default="top",
                        choices=SELECTIONS)
    density: float = _f("score", "fraction of the training set kept, in (0, 1] (a score field: CoreSet's "
                        "centres depend on the budget)", float, default=0.5, low=0.0, high=1.0, open_low=True)
    seed: int = _f("query", "seed of query models, scores, selection and final model", int, default=0, low=0)
    device: str = _f("query", "auto, cpu or cuda", str, default="auto", choices=DEVICES)
    query_model: str | None = _f("query", "model of the query runs; default: the final model", str, choices=MODELS)
    query_epochs: int | None = _f("query", "epochs of each query run; default: query_fraction of the epochs "
                                  "(early scorers) or all of them (full scorers)", int, low=1)
    query_fraction: float | None = _f("query", "length of early query runs as a fraction of the epochs", float,
                                      low=0.0, high=1.0, open_low=True)
    query_inits: int | None = _f("score", "query models averaged for early scorers (full-length scorers train "
                                 "one); each init is cached on its own, so the count is a score field", int, low=1)
    query_schedule: str = _f("query", "where DRoP's validation recalls come from: early (the scorer's query "
                             "models, else early ones), full (one full-length query model) or reference (the "
                             "full-data final model); scores keep the scorer's own schedule", str, default="early",
                             choices=QUERY_SCHEDULES)
    strength: float = _f("final", "DRoP strength tau: weights (1-r_k)**tau; 1 is the paper, 0 uniform", float,
                         default=1.0, low=0.0, high=1.0)
    min_per_class: int | None = _f("final", "every class keeps at least this many samples (0: the paper)", int,
                                   low=0)
    correction: str = _f("final", "train the final model on all data and correct instead of pruning: none, "
                         "logit_adjust (add log d_k of the quoter's class densities to the logits) or cdbw "
                         "(class weights 1 - validation recall of the previous epoch)", str, default="none",
                         choices=CORRECTIONS)
    forgetting_never_learned: str = _f("score", "forgetting score of never-learned samples: max (Toneva) or zero "
                                       "(authors' code)", str, default="max", choices=("max", "zero"))
    du_window: int = _f("score", "Dynamic Uncertainty window J", int, default=10, low=3)
    ssp_clusters: int | None = _f("score", "SSP k-means prototypes; default: the number of classes", int, low=1)
    ssp_variant: str = _f("score", "SSP: kmeans (nearest prototype) or class_mean (authors' SSPY)", str,
                          default="kmeans", choices=("kmeans", "class_mean"))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> RunConfig:
        """Build from a dict (app, sweep, store); an unknown key is an error listing the valid ones.

        A resolved config's dict is accepted: its derived entries (``data_id``) are recomputed by
        :func:`resolve`, never trusted.
        """
        names = [f.name for f in dataclasses.fields(cls)]
        vals = {k: v for k, v in values.items() if k not in _DERIVED}
        unknown = sorted(set(vals) - set(names))
        if unknown:
            raise DropError(f"Unknown run config key {unknown[0]!r}. Valid keys: {', '.join(names)}.")
        if vals.get("milestones") is not None and isinstance(vals["milestones"], (list, tuple)):
            vals["milestones"] = tuple(vals["milestones"])
        return cls(**vals)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class ResolvedConfig(RunConfig):
    """A config after :func:`resolve`: no field left to the preset, paths absolute, the data identified.

    ``data_id`` is a hash of what the data *is* (:func:`drop_core.data.identity.data_identity`:
    absolute paths and a fingerprint of the files), computed once at resolution.
    """

    data_id: str = ""


_DERIVED = tuple(f.name for f in dataclasses.fields(ResolvedConfig) if f.name not in
                 {g.name for g in dataclasses.fields(RunConfig)})


def role(name: str) -> Role:
    """The declared role of config field ``name``."""
    return _ROLES[name]


def fields_of(*stages: str) -> list[str]:
    """The config fields of the given stages, in declaration order."""
    return [n for n, r in _ROLES.items() if r.stage in stages]


def setting_fields() -> list[str]:
    """Fields that can change a number (every stage but ``runtime``): the Results page's settings."""
    return fields_of(*STAGES[:-1])


_ROLES: dict[str, Role] = {f.name: f.metadata["role"] for f in dataclasses.fields(RunConfig)}
_unknown_preset_keys = preset_keys() - set(_ROLES)
if _unknown_preset_keys:
    raise ValueError(f"presets set unknown config fields: {sorted(_unknown_preset_keys)}")


# --- validation ----------------------------------------------------------------------------

def check_field(name: str, value: Any, owner: str = OWNER) -> None:
    """Check one value against its declared constraint (``None`` is allowed where the preset decides)."""
    r = _ROLES[name]
    if value is None and RunConfig.__dataclass_fields__[name].default is None:
        return
    if r.kind in (int, float):
        check_number(name, owner, value, kind=r.kind, low=r.low, high=r.high, open_low=r.open_low,
                     open_high=r.open_high)
    elif r.kind is bool:
        if not isinstance(value, bool):
            raise param_error(name, owner, "a bool", value)
    elif r.kind is tuple:
        if not (isinstance(value, tuple) and value and all(is_number(v) for v in value)
                and all(0.0 < v < 1.0 for v in value) and list(value) == sorted(value)):
            raise param_error(name, owner, "increasing floats in the range (0.0, 1.0)", value)
    elif not isinstance(value, str):
        raise param_error(name, owner, "a str", value)
    if isinstance(r.choices, Registry):
        r.choices.entry(value)
    elif isinstance(r.choices, tuple):
        check_choice(name, owner, value, r.choices)
    elif r.choices is not None:
        r.choices(value)


def validate(cfg: RunConfig) -> None:
    """Check every field against its declaration, then the few rules that tie fields together."""
    for name in _ROLES:
        check_field(name, getattr(cfg, name))
    if cfg.selection == "ccs" and cfg.quoter != "none":
        raise DropError(f"Selection 'ccs' chooses its own class counts; use it with quoter 'none'. "
                        f"Got quoter {cfg.quoter!r}.")


# --- resolution ----------------------------------------------------------------------------

def resolve(config: RunConfig, *, data_id: str | None = None) -> tuple[ResolvedConfig, list[str]]:
    """Fill unset fields from the preset; returns the resolved config and the log of what was set.

    User values always win; each user value that differs from the preset's is logged at INFO
    ("Overriding: ..."), each value taken from the preset at DEBUG. Paths become absolute and
    the data's identity is computed (a changed folder gives new keys, never a stale result);
    ``data_id`` passes one already computed for the same dataset now (:func:`resolve_all`).
    """
    validate(config)
    preset = PRESETS.get(config.preset)
    changes: dict[str, Any] = {}
    lines: list[str] = []
    model = config.model
    if model is None:
        model = changes["model"] = preset.default_model(config.dataset)
        lines.append(f"preset {config.preset!r}: model = {model!r} for dataset {config.dataset!r}")
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
    changes["dataset"] = resolve_dataset_name(config.dataset)
    if config.data_root is not None:
        changes["data_root"] = str(Path(config.data_root).expanduser().resolve())
    values = {**config.to_dict(), **changes}
    values.pop("data_id", None)
    values["data_id"] = data_id or config_hash(data_identity(values["dataset"], values["data_root"]))
    resolved = ResolvedConfig(**values)
    validate(resolved)
    return resolved, lines


def ensure_resolved(config: RunConfig) -> ResolvedConfig:
    """``config`` itself when already resolved, else :func:`resolve`'s result."""
    return config if isinstance(config, ResolvedConfig) else resolve(config)[0]


def resolve_all(configs: Iterable[RunConfig]) -> list[ResolvedConfig]:
    """:func:`resolve` for many configs (a grid, the app's plan), fingerprinting each dataset once."""
    ids: dict[tuple[str, str | None], str] = {}
    out = []
    for config in configs:
        name = resolve_dataset_name(config.dataset)
        root = None if config.data_root is None else str(Path(config.data_root).expanduser().resolve())
        if (name, root) not in ids:
            ids[(name, root)] = config_hash(data_identity(name, root))
        out.append(resolve(config, data_id=ids[(name, root)])[0])
    return out


# --- keys ----------------------------------------------------------------------------------

def _stage_values(rc: ResolvedConfig, last: str) -> dict[str, Any]:
    upto = STAGES[:STAGES.index(last) + 1]
    d = rc.to_dict()
    return {n: d[n] for n in fields_of(*upto)}


def _require(rc: RunConfig) -> ResolvedConfig:
    if not isinstance(rc, ResolvedConfig):
        raise TypeError(f"keys need a ResolvedConfig (from resolve()); got {type(rc).__name__}")
    return rc


def query_key(rc: ResolvedConfig, plan: Mapping[str, Any]) -> str:
    """Identity of one query model: data and query fields, the data's identity, and what the
    scorer's schedule derives from them (``plan``: epochs and per-epoch records)."""
    rc = _require(rc)
    return config_hash({"fields": _stage_values(rc, "query"), "data_id": rc.data_id, "plan": dict(plan),
                        "results_version": RESULTS_VERSION})


def score_key(rc: ResolvedConfig, query: str | None, n_train: int) -> str:
    """Identity of a score vector: the query models' key (``None`` without a query model) and the
    score fields."""
    rc = _require(rc)
    return config_hash({"query": query, "fields": _stage_values(rc, "score"), "data_id": rc.data_id,
                        "n": int(n_train), "results_version": RESULTS_VERSION})


def run_key(config: RunConfig) -> str:
    """Identity of a stored result: every field but the runtime ones, the data's identity and
    :data:`RESULTS_VERSION` (never the source text). An unresolved config is resolved first."""
    rc = ensure_resolved(config)
    return config_hash({"fields": _stage_values(rc, "final"), "data_id": rc.data_id,
                        "results_version": RESULTS_VERSION})


# --- flags ---------------------------------------------------------------------------------

def _number(kind: type) -> Callable[[str], Any]:
    """argparse type: parses, then rejects inf/nan at once (the range is checked by validate)."""
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {kind.__name__} value: {text!r}") from None
        if not is_number(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        return value
    parse.__name__ = kind.__name__
    return parse


def plural(name: str) -> str:
    """The flag and ``args`` name of a field that takes several values: ``density`` -> ``densities``."""
    return name[:-1] + "ies" if name.endswith("y") else name + "s"


def add_flags(parser: argparse.ArgumentParser, names: Iterable[str] | None = None, *,
              multi: Iterable[str] = ()) -> None:
    """Add one ``--flag`` per config field (default ``None``: the preset's or the field's default).

    ``multi``: fields that take several values (a sweep's axes); their flag is the plural name.
    """
    defaults = RunConfig()
    multi = set(multi)
    for name in names if names is not None else _ROLES:
        r = _ROLES[name]
        default = getattr(defaults, name)
        shown = "the preset's" if default is None else repr(default)
        help_text = f"{r.help} (default: {shown})"
        flag = "--" + name.replace("_", "-")
        if r.kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif r.kind is tuple:
            parser.add_argument(flag, type=_number(float), nargs="+", default=None, metavar="F", help=help_text)
        elif name in multi:
            many = plural(name)
            parser.add_argument("--" + many.replace("_", "-"), dest=many,
                                type=_number(r.kind) if r.kind is not str else str, nargs="+", default=None,
                                metavar=name.upper(), help=help_text)
        else:
            parser.add_argument(flag, type=_number(r.kind) if r.kind is not str else str, default=None,
                                metavar=name.upper(), help=help_text)


def flag_values(args: argparse.Namespace, names: Iterable[str] | None = None) -> dict[str, Any]:
    """The config values the user set on the command line (``None`` flags left out)."""
    out = {}
    for name in names if names is not None else _ROLES:
        value = getattr(args, name, None)
        if value is not None:
            out[name] = tuple(value) if _ROLES[name].kind is tuple else value
    return out
