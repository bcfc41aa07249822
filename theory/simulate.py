"""Finite samples: draw n points, prune them, fit the threshold by exact 1-D ERM, score it on the true model."""
from __future__ import annotations

import numpy as np
import pandas as pd

from theory._checks import check_in_range, check_int
from theory.algorithm1 import drop_class_densities
from theory.model import TwoGaussians
from theory.sweeps import METHODS, RISK_COLUMNS, risk_columns

SIM_DENSITIES = np.round(np.arange(0.1, 1.0 + 1e-9, 0.1), 2)


def erm_threshold(x: np.ndarray, y: np.ndarray, keep: np.ndarray | None = None) -> float | np.ndarray:
    """Exact empirical risk minimiser of the rule "predict 1 iff x > t" over t in R and {-inf, +inf}.

    ``x`` (n,) or (R, n) with labels ``y`` (1 = class 1) and an optional mask ``keep`` of the points used;
    each row is fitted independently (sort + cumulative error counts, O(n log n)). Any t between two
    consecutive kept points has the same error; the fit returns the midpoint, or -inf / +inf beyond the
    extremes. Among several minimising gaps the middle one (in x order) is chosen. Assumes distinct x.
    """
    one_row = np.ndim(x) == 1
    x = np.atleast_2d(np.asarray(x, dtype=float))
    y = np.atleast_2d(np.asarray(y).astype(bool))
    keep = np.ones(x.shape, dtype=bool) if keep is None else np.atleast_2d(np.asarray(keep, dtype=bool))
    if not (x.shape == y.shape == keep.shape) or x.ndim != 2:
        raise ValueError(
            f"The 'x', 'y' and 'keep' parameters of erm_threshold must have one shape. "
            f"Got {x.shape}, {y.shape}, {keep.shape} instead."
        )
    order = np.argsort(x, axis=1, kind="stable")
    take = lambda a: np.take_along_axis(a, order, axis=1)  # noqa: E731
    t = _erm_sorted(take(x), take(y), take(keep))
    return float(t[0]) if one_row else t


def _erm_sorted(xs: np.ndarray, ys: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """ERM on rows already sorted by x; candidates are -inf and the gap right after each kept point."""
    rows, n = xs.shape
    ones = np.cumsum(ys & keep, axis=1)            # class-1 points at or left of each position (predicted 0: errors)
    zeros = np.cumsum(~ys & keep, axis=1)
    n0 = zeros[:, -1:]
    err = np.concatenate([n0, ones + n0 - zeros], axis=1).astype(float)   # candidate 0 = -inf
    valid = np.concatenate([np.ones((rows, 1), dtype=bool), keep], axis=1)
    err[~valid] = np.inf
    is_min = err == err.min(axis=1, keepdims=True)
    count = np.cumsum(is_min, axis=1)
    middle = (count[:, -1:] + 1) // 2
    best = np.argmax(count >= middle, axis=1)          # middle of the minimising candidates
    kept_x = np.where(keep, xs, np.inf)
    next_kept = np.minimum.accumulate(kept_x[:, ::-1], axis=1)[:, ::-1]
    next_kept = np.concatenate([next_kept[:, 1:], np.full((rows, 1), np.inf)], axis=1)
    pos = np.maximum(best - 1, 0)
    left = np.take_along_axis(xs, pos[:, None], axis=1)[:, 0]
    right = np.take_along_axis(next_kept, pos[:, None], axis=1)[:, 0]
    t = np.where(np.isfinite(right), 0.5 * (left + right), np.inf)
    return np.where(best == 0, -np.inf, t)


def _ranks(scores: np.ndarray) -> np.ndarray:
    """Row-wise rank of each entry, 0 = smallest."""
    return np.argsort(np.argsort(scores, axis=1, kind="stable"), axis=1, kind="stable")


def _within_class_ranks(y: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Row-wise rank of each entry among the entries of its own class (0 = smallest score)."""
    low, high = scores.min() - 1, scores.max() + 1
    rank0 = _ranks(np.where(y, high, scores))                          # class 0 first
    rank1 = _ranks(np.where(y, scores, low)) - (~y).sum(1, keepdims=True)  # class 1 after all of class 0
    return np.where(y, rank1, rank0)


def simulate(
    g: TwoGaussians,
    prior0: float,
    n: int,
    densities: np.ndarray = SIM_DENSITIES,
    *,
    repeats: int = 20,
    seed: int = 0,
) -> pd.DataFrame:
    """Finite-sample version of the density sweep: one row per (method, density, repeat), true risks of the fit.

    Each repeat draws n points (labels ~ Bernoulli(1 - prior0)), shared by all methods and densities, and keeps
    round(density n) of them (per class for DRoP and Optimum):
    - Random: a uniformly random subset.
    - SSP: the points farthest from their own class's sample mean (the supervised SSP score).
    - Toy DRoP: Algorithm 1 on the empirical class sizes with error weights equal to the exact class risks of
      the threshold fitted on all n points (the query model, validated on an infinite validation set);
      random within class, round(d_k N_k) per class.
    - Optimum: the worst-class-optimal class densities for the empirical prior, random within class.
    The threshold is then fitted by exact ERM (``erm_threshold``) and its class risks are exact.
    """
    owner = "simulate"
    p = float(check_in_range(prior0, "prior0", owner, 0.0, 1.0, lo_open=True, hi_open=True))
    n = check_int(n, "n", owner, 10, 10_000_000)
    repeats = check_int(repeats, "repeats", owner, 1, 100_000)
    seed = check_int(seed, "seed", owner, 0)
    dens = check_in_range(densities, "densities", owner, 0.0, 1.0, lo_open=True).ravel()

    rng = np.random.default_rng(seed)
    (mu0, mu1), (s0, s1) = g.mu, g.sigma
    y = rng.random((repeats, n)) >= p                       # True = class 1
    x = np.where(y, mu1 + s1 * rng.standard_normal((repeats, n)), mu0 + s0 * rng.standard_normal((repeats, n)))
    order = np.argsort(x, axis=1)
    x, y = np.take_along_axis(x, order, axis=1), np.take_along_axis(y, order, axis=1)
    everyone = np.ones_like(y)

    random_rank = _ranks(rng.random((repeats, n)))
    size = np.stack([(~y).sum(1), y.sum(1)], axis=1)        # (R, 2) class sizes
    class_mean = np.stack([np.where(~y, x, 0).sum(1), np.where(y, x, 0).sum(1)], axis=1) / np.maximum(size, 1)
    distance = np.abs(x - np.where(y, class_mean[:, 1:], class_mean[:, :1]))
    ssp_rank = _ranks(-distance)                            # 0 = farthest from its class mean
    within_rank = _within_class_ranks(y, random_rank)

    emp_prior = np.clip(size[:, 0] / n, 0.5 / n, 1 - 0.5 / n)
    query_errors = g.class_risks(_erm_sorted(x, y, everyone))  # (R, 2)

    rows = []
    for d in dens:
        budget = int(round(d * n))
        per_class = {
            "Toy DRoP": drop_class_densities(
                np.stack([emp_prior, 1 - emp_prior], 1), query_errors, np.full(repeats, d)
            ),
            "Optimum": g.optimal_densities(emp_prior, d),
        }
        for method in METHODS:
            if method == "Random":
                keep = random_rank < budget
            elif method == "SSP":
                keep = ssp_rank < budget
            else:
                quota = np.rint(per_class[method] * size).astype(int)      # (R, 2)
                keep = within_rank < np.where(y, quota[:, 1:], quota[:, :1])
            rows.append((method, d, keep.sum(1), (keep & ~y).sum(1), (keep & y).sum(1), _erm_sorted(x, y, keep)))
    # one frame at the end (a frame per method and density cost more than the fits themselves)
    method, density, kept, kept0, kept1, t = zip(*rows)
    t = np.concatenate(t)
    return pd.DataFrame({
        "method": np.repeat(method, repeats), "density": np.repeat(density, repeats),
        "repeat": np.tile(np.arange(repeats), len(rows)), "kept": np.concatenate(kept),
        "kept_class0": np.concatenate(kept0), "kept_class1": np.concatenate(kept1), "threshold": t,
        **risk_columns(g, t, p),
    })


def summarize_simulation(sim: pd.DataFrame) -> pd.DataFrame:
    """Mean, std, min and max over repeats of every risk column: one row per (method, density, metric)."""
    long = sim.melt(
        id_vars=["method", "density", "repeat"], value_vars=list(RISK_COLUMNS), var_name="metric", value_name="risk"
    )
    out = (
        long.groupby(["method", "density", "metric"], sort=False)["risk"]
        .agg(["mean", "std", "min", "max"])
        .reset_index()
    )
    return out.assign(std=out["std"].fillna(0.0))
