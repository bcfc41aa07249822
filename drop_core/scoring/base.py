"""Scorer contract: the spec every scorer registers and the options they share.

Orientation everywhere: **higher score = harder = kept first.**
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from drop_core.registry import Registry
from drop_core.scoring.recording import Recording
from drop_core.validate import check_choice, check_number

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
        owner = "ScorerParams"
        if self.budget is not None:
            check_number("budget", owner, self.budget, kind=int, low=0)
        check_choice("forgetting_never_learned", owner, self.forgetting_never_learned, _NEVER_LEARNED)
        check_number("du_window", owner, self.du_window, kind=int, low=3)
        if self.ssp_clusters is not None:
            check_number("ssp_clusters", owner, self.ssp_clusters, kind=int, low=1)
        check_choice("ssp_variant", owner, self.ssp_variant, _SSP_VARIANTS)


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

