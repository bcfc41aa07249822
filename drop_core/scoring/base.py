"""Scorer contract: the spec every scorer registers and the options they share.

Orientation everywhere: **higher score = harder = kept first.**
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from drop_core.errors import DropError
from drop_core.registry import Registry
from drop_core.train.recording import Recording

QUERY_KINDS = ("early", "full", "none")
_NEVER_LEARNED = ("max", "zero")
_SSP_VARIANTS = ("kmeans", "class_mean")


@dataclass(frozen=True)
class ScorerParams:
    """Options of the scorers; each scorer reads only its own.

    budget: global number of samples kept (CoreSet picks this many centres).
    forgetting_never_learned: "max" (Toneva et al.: never-learned samples are the most
        forgotten) or "zero" (the authors' code).
    du_window: Dynamic Uncertainty window J (>= 3).
    ssp_clusters: k-means prototypes for SSP; None means the number of classes.
    ssp_variant: "kmeans" (nearest prototype) or "class_mean" (own-class mean, authors' SSPY).
    """

    budget: int | None = None
    forgetting_never_learned: str = "max"
    du_window: int = 10
    ssp_clusters: int | None = None
    ssp_variant: str = "kmeans"

    def __post_init__(self) -> None:
        if self.budget is not None and not _is_int(self.budget, 0):
            raise DropError(_msg("budget", "an int in the range [0, inf) or None", self.budget))
        if self.forgetting_never_learned not in _NEVER_LEARNED:
            raise DropError(_msg("forgetting_never_learned", "a str among {'max', 'zero'}",
                                 self.forgetting_never_learned))
        if not _is_int(self.du_window, 3):
            raise DropError(_msg("du_window", "an int in the range [3, inf)", self.du_window))
        if self.ssp_clusters is not None and not _is_int(self.ssp_clusters, 1):
            raise DropError(_msg("ssp_clusters", "an int in the range [1, inf) or None",
                                 self.ssp_clusters))
        if self.ssp_variant not in _SSP_VARIANTS:
            raise DropError(_msg("ssp_variant", "a str among {'kmeans', 'class_mean'}",
                                 self.ssp_variant))


ScoreFn = Callable[[list[Recording], np.random.Generator, ScorerParams], np.ndarray]


@dataclass(frozen=True)
class ScorerSpec:
    """A registered scorer: the function and what it needs from the query run."""

    name: str
    fn: ScoreFn
    needs: frozenset[str]   # Recording fields it reads; the trainer/record must fill them
    query: str              # "early" (10% epochs, several inits) | "full" (one run) | "none"
    description: str


SCORERS: Registry[ScorerSpec] = Registry("scorer")


def register_scorer(name: str, *, needs: set[str], query: str,
                    description: str) -> Callable[[ScoreFn], ScoreFn]:
    """Decorator registering a score function under ``name`` with its metadata."""
    if query not in QUERY_KINDS:
        raise ValueError(f"query must be one of {QUERY_KINDS}, got {query!r}")

    def deco(fn: ScoreFn) -> ScoreFn:
        SCORERS.add(name, ScorerSpec(name, fn, frozenset(needs), query, description), description)
        return fn

    return deco


def field_stack(recordings: list[Recording], field: str) -> list[np.ndarray]:
    """The arrays of ``field`` across recordings (compute_scores checked they exist)."""
    return [np.asarray(getattr(r, field)) for r in recordings]


def _is_int(value, lo: int) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= lo


def _msg(name: str, what: str, got) -> str:
    return f"The '{name}' parameter of ScorerParams must be {what}. Got {got!r} instead."
