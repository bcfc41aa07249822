"""Class quotas: how many training samples each class keeps at a given dataset density.

The central rule is DRoP's Algorithm 1 (Vysogorets et al., ICLR 2025): class densities
d_k proportional to the validation error 1 - r_k, budget d*N, classes whose density
exceeds 1 are saturated and their excess is redistributed over the unsaturated classes,
round after round. Every rule here returns integer counts n_k with

- sum_k n_k == round(d*N) (half up),
- 0 <= n_k <= N_k,
- |n_k - x_k| < 1 for the rule's exact real-valued count x_k,

using deterministic largest-remainder rounding (no random top-up).

Choices beyond the paper (documented in docs/drop-method.md, "Algorithm 1"):

- When every unsaturated class has zero error, Algorithm 1 divides by zero; here the rest
  of the budget is spread over those classes in proportion to their size.
- ``min_per_class`` gives every class at least min(min_per_class, N_k) samples; the rest
  of the budget follows Algorithm 1 over the other classes (0 = the paper).
- ``strength`` tau uses error weights (1 - r_k)**tau: 1 is the paper, 0 is uniform.
- ``authors_code_quotas`` reproduces the reference code's rule, counts proportional to
  error regardless of class size. It equals Algorithm 1 on balanced data only.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from drop_core.registry import Registry
from drop_core.validate import check_number, param_error

__all__ = [
    "QUOTERS",
    "QuotaParams",
    "authors_code_quotas",
    "drop_quotas",
    "exact_drop_counts",
    "quoter_needs_recalls",
    "uniform_quotas",
]


# --------------------------------------------------------------------------- validation

def _check_sizes(class_sizes: ArrayLike, caller: str) -> np.ndarray:
    sizes = np.asarray(class_sizes)
    ok = (
        sizes.ndim == 1
        and sizes.size > 0
        and (np.issubdtype(sizes.dtype, np.integer)
             or (np.issubdtype(sizes.dtype, np.floating) and np.all(np.isfinite(sizes))
                 and np.all(sizes == np.round(sizes))))
        and np.all(sizes >= 0)
    )
    if not ok:
        raise param_error("class_sizes", caller, "a non-empty 1-D array of non-negative integers", class_sizes,
                          ValueError, shown=_show(class_sizes))
    return sizes.astype(np.int64)


def _check_recalls(recalls: ArrayLike, num_classes: int, caller: str) -> np.ndarray:
    if recalls is None:
        raise param_error("recalls", caller, "an array of per-class validation recalls", None, ValueError)
    r = np.asarray(recalls, dtype=np.float64)
    if r.ndim != 1 or r.size != num_classes:
        raise param_error("recalls", caller, f"an array with one entry per class ({num_classes}, like "
                          f"'class_sizes')", recalls, ValueError, shown=f"shape {r.shape}")
    bad = ~((r >= 0.0) & (r <= 1.0))     # also catches NaN
    if bad.any():
        raise param_error("recalls", caller, "an array of floats in the range [0.0, 1.0]", recalls, ValueError,
                          shown=f"{float(r[bad][0])!r} (class {int(np.flatnonzero(bad)[0])})")
    return r


def _check_float(value: float, name: str, caller: str, lo: float, hi: float, lo_open: bool) -> float:
    check_number(name, caller, value, low=lo, high=hi, open_low=lo_open, cls=ValueError)
    return float(value)


def _check_min_per_class(value: int, caller: str) -> int:
    check_number("min_per_class", caller, value, kind=int, low=0, cls=ValueError)
    return int(value)


def _show(x: object) -> str:
    text = repr(x)
    return text if len(text) <= 60 else text[:57] + "..."


# --------------------------------------------------------------------------- arithmetic

def _budget(sizes: np.ndarray, density: float) -> int:
    """round(d * N), halves rounded up."""
    return int(math.floor(density * int(sizes.sum()) + 0.5))


def _water_fill(sizes: np.ndarray, weights: np.ndarray, budget: float,
                active: np.ndarray) -> np.ndarray:
    """Algorithm 1 on real counts: spend ``budget`` over the ``active`` classes.

    Each round gives every unsaturated class the count E * N_k w_k / Z with
    Z = sum_U N_k w_k and E frozen for the round; classes above N_k are capped and their
    excess becomes the next round's E. If Z = 0 (all unsaturated weights zero) the round
    spreads E in proportion to N_k instead. At most K rounds.
    """
    counts = np.zeros(sizes.size, dtype=np.float64)
    unsat = active & (sizes > 0)
    excess = float(budget)
    tol = 1e-9 * max(1.0, float(budget))
    while excess > tol and unsat.any():
        share = np.where(unsat, sizes * weights, 0.0)
        z = share.sum()
        if z <= 0.0:                       # every unsaturated class has zero error
            share = np.where(unsat, sizes.astype(np.float64), 0.0)
            z = share.sum()
        counts += excess * share / z
        over = unsat & (counts > sizes)
        excess = float((counts[over] - sizes[over]).sum())
        if not over.any():
            break
        counts[over] = sizes[over]
        unsat &= ~over
    return counts


def _allocate(sizes: np.ndarray, weights: np.ndarray, total: float, floor: int) -> np.ndarray:
    """Real-valued counts summing to ``total``: Algorithm 1 with the lower bound
    min(floor, N_k) per class.

    A class whose Algorithm-1 count falls below its bound is fixed at the bound, and the
    rest of the budget is re-run over the remaining classes, until no class is below.
    """
    lower = np.minimum(floor, sizes).astype(np.float64)
    fixed = np.zeros(sizes.size, dtype=bool)
    while True:
        rest = total - lower[fixed].sum()
        counts = _water_fill(sizes, weights, rest, ~fixed)
        counts[fixed] = lower[fixed]
        below = ~fixed & (counts < lower - 1e-9)
        if not below.any():
            return counts
        fixed |= below


def _check_floor(sizes: np.ndarray, floor: int, budget: int) -> None:
    need = int(np.minimum(floor, sizes).sum())
    if need > budget:
        raise ValueError(
            f"The 'min_per_class' parameter is too large: keeping min({floor}, N_k) samples "
            f"per class needs {need} samples, but the budget round(d*N) is only {budget}. "
            f"Lower min_per_class or raise the density."
        )


def _round_largest_remainder(exact: np.ndarray, sizes: np.ndarray, total: int,
                             recalls: np.ndarray) -> np.ndarray:
    """Integer counts summing to ``total``, each the floor or ceiling of ``exact``.

    The units left after flooring go to the largest fractional parts; ties go to the
    larger class, then the smaller exact count, then the lower recall (the harder class),
    then the lower class index. Only classes equal in all of these tie on the index, so
    the counts do not depend on the order in which classes are listed.
    """
    exact = np.clip(exact, 0.0, sizes)
    base = np.floor(exact + 1e-9).astype(np.int64)       # 2.9999999999 is 3, not 2
    base = np.minimum(base, sizes)
    frac = np.where(base < sizes, exact - base, -1.0)      # a full class cannot take more
    left = total - int(base.sum())
    if left > 0:
        order = np.lexsort((np.arange(sizes.size), recalls, exact, -sizes, -frac))
        order = order[base[order] < sizes[order]]
        base[order[:left]] += 1
    elif left < 0:                                          # only from float error
        order = np.lexsort((np.arange(sizes.size), -recalls, -exact, -sizes, frac))
        order = order[base[order] > 0]
        base[order[:-left]] -= 1
    return base


def _quotas(sizes: np.ndarray, weights: np.ndarray, density: float, floor: int,
            recalls: np.ndarray | None = None) -> np.ndarray:
    """Largest-remainder rounding of the exact counts at budget d*N to the total round(d*N).

    Rounding the exact counts at d*N itself (not at round(d*N)) keeps every count within 1
    of Algorithm 1's real-valued N_k d_k; the remainders always suffice to reach the total.
    """
    budget = _budget(sizes, density)
    _check_floor(sizes, floor, budget)
    exact = _allocate(sizes, weights, density * float(sizes.sum()), floor)
    tiebreak = np.zeros(sizes.size) if recalls is None else recalls
    return _round_largest_remainder(exact, sizes, budget, tiebreak)


def exact_drop_counts(class_sizes: ArrayLike, recalls: ArrayLike, density: float, *, min_per_class: int = 0,
                      strength: float = 1.0) -> np.ndarray:
    """The real-valued counts N_k * d_k that :func:`drop_quotas` rounds (for tests and plots)."""
    sizes, r, density, floor, tau = _check_drop_args(
        class_sizes, recalls, density, min_per_class, strength, "drop_quotas")
    _check_floor(sizes, floor, _budget(sizes, density))
    return _allocate(sizes, _error_weights(r, tau), density * float(sizes.sum()), floor)


def _error_weights(recalls: np.ndarray, strength: float) -> np.ndarray:
    return np.power(1.0 - recalls, strength)     # 0**0 == 1: strength 0 is uniform


def _check_drop_args(class_sizes: ArrayLike, recalls: ArrayLike, density: float, min_per_class: int,
                     strength: float, caller: str) -> tuple[np.ndarray, np.ndarray, float, int, float]:
    sizes = _check_sizes(class_sizes, caller)
    r = _check_recalls(recalls, sizes.size, caller)
    density = _check_float(density, "density", caller, 0.0, 1.0, lo_open=True)
    floor = _check_min_per_class(min_per_class, caller)
    tau = _check_float(strength, "strength", caller, 0.0, 1.0, lo_open=False)
    return sizes, r, density, floor, tau


# --------------------------------------------------------------------------- public rules

def drop_quotas(class_sizes: ArrayLike, recalls: ArrayLike, density: float, *, min_per_class: int = 0,
                strength: float = 1.0) -> np.ndarray:
    """DRoP class quotas (Algorithm 1): densities proportional to (1 - r_k)**strength.

    Args:
        class_sizes: (K,) training samples per class, N_k >= 0.
        recalls: (K,) validation recall per class, in [0, 1].
        density: fraction d of the training set to keep, in (0, 1].
        min_per_class: every class keeps at least min(min_per_class, N_k) samples.
        strength: tau in [0, 1]; 1 is the paper, 0 keeps class proportions.

    Returns:
        (K,) int64 counts summing to round(d*N), each within 1 of N_k * d_k.

    Example: N=(5000, 2500), r=(0.9, 0.8), d=0.5 gives (1875, 1875); the authors'
    code (:func:`authors_code_quotas`) gives (1250, 2500).
    """
    sizes, r, density, floor, tau = _check_drop_args(
        class_sizes, recalls, density, min_per_class, strength, "drop_quotas")
    return _quotas(sizes, _error_weights(r, tau), density, floor, r)


def uniform_quotas(class_sizes: ArrayLike, density: float, *, min_per_class: int = 0) -> np.ndarray:
    """Keep every class at the same density d (class proportions unchanged).

    ``min_per_class`` lifts small classes to min(min_per_class, N_k) as in :func:`drop_quotas`.
    """
    caller = "uniform_quotas"
    sizes = _check_sizes(class_sizes, caller)
    density = _check_float(density, "density", caller, 0.0, 1.0, lo_open=True)
    floor = _check_min_per_class(min_per_class, caller)
    return _quotas(sizes, np.ones(sizes.size), density, floor)


def authors_code_quotas(class_sizes: ArrayLike, recalls: ArrayLike, density: float, *, min_per_class: int = 0,
                        strength: float = 1.0) -> np.ndarray:
    """The reference code's rule: *counts* proportional to 1 - r_k, ignoring class sizes.

    Saturated classes are capped at N_k and their excess is redistributed in proportion
    to error over the others, as in ``quoters/drop.py``. Differences from that code, kept
    on purpose: the total is round(d*N) with largest-remainder rounding instead of int()
    flooring plus a random top-up from all classes; no class is skipped in the
    saturation pass; all-zero errors spread the budget by class size instead of raising
    ZeroDivisionError. On balanced data this equals :func:`drop_quotas`; on imbalanced
    data it does not (docs/drop-method.md, "Where the authors' code differs").

    ``min_per_class`` and ``strength`` (counts proportional to (1 - r_k)**strength, so 0
    gives equal counts per class) work as in :func:`drop_quotas`; the code has neither.
    """
    sizes, r, density, floor, tau = _check_drop_args(
        class_sizes, recalls, density, min_per_class, strength, "authors_code_quotas")
    # counts = E * w_k / sum(w) is Algorithm 1 with per-sample weight w_k / N_k
    weights = np.divide(_error_weights(r, tau), sizes, out=np.zeros(sizes.size),
                        where=sizes > 0)
    return _quotas(sizes, weights, density, floor, r)


# --------------------------------------------------------------------------- registry

@dataclass(frozen=True)
class QuotaParams:
    """Options of the quota rules: ``min_per_class`` applies to every rule with quotas,
    ``strength`` to the error-based ones (``drop``, ``drop_authors``)."""

    min_per_class: int = 0
    strength: float = 1.0


Quoter = Callable[[np.ndarray, "np.ndarray | None", float, QuotaParams], "np.ndarray | None"]
QUOTERS: Registry[Quoter] = Registry("quoter")

_NEEDS_RECALLS = frozenset({"drop", "drop_authors"})


def quoter_needs_recalls(name: str) -> bool:
    """Whether the quota rule ``name`` reads per-class validation recalls (a query model)."""
    QUOTERS.entry(name)                       # unknown name -> DropError listing the rules
    return name in _NEEDS_RECALLS


@QUOTERS.register("none", "no quotas: keep the globally top-scored samples")
def _none(class_sizes: np.ndarray, recalls: np.ndarray | None, density: float,
          params: QuotaParams) -> None:
    return None


@QUOTERS.register("uniform", "keep every class at the dataset density (class proportions kept)")
def _uniform(class_sizes: np.ndarray, recalls: np.ndarray | None, density: float,
             params: QuotaParams) -> np.ndarray:
    return uniform_quotas(class_sizes, density, min_per_class=params.min_per_class)


@QUOTERS.register("drop", "DRoP Algorithm 1: class densities proportional to validation error")
def _drop(class_sizes: np.ndarray, recalls: np.ndarray | None, density: float,
          params: QuotaParams) -> np.ndarray:
    return drop_quotas(class_sizes, recalls, density,
                       min_per_class=params.min_per_class, strength=params.strength)


@QUOTERS.register("drop_authors",
                  "DRoP as in the authors' code: class counts proportional to error "
                  "(differs from the paper on imbalanced data)")
def _drop_authors(class_sizes: np.ndarray, recalls: np.ndarray | None, density: float,
                  params: QuotaParams) -> np.ndarray:
    return authors_code_quotas(class_sizes, recalls, density,
                               min_per_class=params.min_per_class, strength=params.strength)
