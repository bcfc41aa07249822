"""Everything the Mixture page shows for one setting of its sliders, in two pure calls (the page's hot path):
:func:`explore_mixture` for the rule table, the plane and the class-risk bars, :func:`explore_sweep` for the density
sweep.

The parts that depend only on the model (class layout, stds, priors, DRoP strength) - the worst-class optimum and
the sweep over the overall density - and the rules no class-density slider moves (full data, toy DRoP, optimum) are
memoised by their inputs, so moving a class's density slider recomputes one prior vector's class risks and the
decision regions.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from theory.mixture import GaussianMixture, gaussians_dataset_mixture

MAX_CLASSES = 10
LAYOUTS = ("ring in the plane (p = 2)", "the `gaussians` dataset (p = 16)")
SWEEP_DENSITIES = np.round(np.arange(0.1, 1.0 + 1e-9, 0.1), 2)
RULES = ("Full data", "Your densities", "Toy DRoP", "Worst-class optimum")
GRID = 120         # decision-region lattice per axis (p = 2): the chart draws it as one image per rule
RING_RADIUS = 2.5


@dataclass(frozen=True)
class MixtureParams:
    """The page's inputs: K classes in a layout, per-class std / prior weight / density, and the DRoP settings."""

    k: int = 5
    layout: int = 0
    stds: tuple[float, ...] = (1.6, 0.8, 0.8, 0.8, 0.8)
    weights: tuple[float, ...] = (1.0,) * 5   # class priors up to a constant (normalised here)
    densities: tuple[float, ...] = (1.0,) * 5
    density: float = 0.5                      # overall density for toy DRoP
    strength: float = 1.0                     # DRoP strength tau: error weights R_k**tau

    def model(self) -> GaussianMixture:
        """The mixture: K means on a ring of radius 2.5, or the first K means of the `gaussians` dataset."""
        if self.layout == 1:
            means = gaussians_dataset_mixture().means[: self.k]
        else:
            angle = 2 * np.pi * np.arange(self.k) / self.k
            means = RING_RADIUS * np.column_stack([np.cos(angle), np.sin(angle)])
        return _mixture(tuple(map(tuple, means)), tuple(self.stds[: self.k]))

    def priors(self) -> np.ndarray:
        w = np.asarray(self.weights[: self.k], dtype=float)
        if np.any(w <= 0):
            raise ValueError(f"The 'weights' parameter of MixtureParams must be > 0. Got {tuple(w)} instead.")
        return w / w.sum()


@dataclass(frozen=True)
class Regions:
    """Decision regions on a lattice: ``labels[rule][i, j]`` is the class the rule picks at (xs[j], ys[i])."""

    xs: np.ndarray                   # (GRID,) increasing
    ys: np.ndarray                   # (GRID,) increasing
    labels: dict[str, np.ndarray]    # rule -> (GRID, GRID) class indices, rows along ys


@dataclass(frozen=True)
class MixtureExploration:
    """Tidy frames: per-class risks of each rule, one summary row per rule, regions, circles.

    The density sweep is not part of it (:func:`explore_sweep`): it costs ~20 prior vectors per model, seconds in
    16-D, and the page draws the numbers here before it."""

    classes: pd.DataFrame      # rule, class, density, prior_after, risk
    summary: pd.DataFrame      # rule, worst_class_risk, average_risk, kept
    regions: Regions | None    # p = 2 only
    circles: pd.DataFrame      # class, radius, x, y, order (p = 2 only, else empty)


@lru_cache(maxsize=32)
def _mixture(means: tuple[tuple[float, ...], ...], stds: tuple[float, ...]) -> GaussianMixture:
    """One GaussianMixture per layout, so its direction sets and minimax prior are built once."""
    return GaussianMixture(np.array(means), np.array(stds))


@lru_cache(maxsize=32)
def _model_level(gm: GaussianMixture, priors: tuple[float, ...], strength: float) -> tuple[pd.DataFrame, float]:
    """The density sweep (Random, toy DRoP at strength 1 and at ``strength``) and the optimum's reach."""
    pri = np.array(priors)
    opt_priors, opt_worst = gm.worst_class_priors()
    rows = []
    drop = {"Toy DRoP (strength 1)": gm.drop_densities(pri, SWEEP_DENSITIES, 1.0)}
    if strength != 1.0:
        drop[f"Toy DRoP (strength {strength:g})"] = gm.drop_densities(pri, SWEEP_DENSITIES, strength)
    batch = np.concatenate([pri[None]] + [gm.pruned_priors(pri, np.maximum(d, 1e-9)) for d in drop.values()])
    risks = gm.class_risks(batch)
    full = risks[0]
    reach = float(np.min(pri / opt_priors))
    curves = {"Random": np.repeat(full[None], len(SWEEP_DENSITIES), 0)}
    for i, name in enumerate(drop):
        curves[name] = risks[1 + i * len(SWEEP_DENSITIES): 1 + (i + 1) * len(SWEEP_DENSITIES)]
    curves["Worst-class optimum"] = np.where(SWEEP_DENSITIES[:, None] <= reach, gm.class_risks(opt_priors), np.nan)
    for name, r in curves.items():
        rows.append(pd.DataFrame({"method": name, "density": SWEEP_DENSITIES, "metric": "worst-class risk",
                                  "risk": r.max(1)}))
        rows.append(pd.DataFrame({"method": name, "density": SWEEP_DENSITIES, "metric": "average risk",
                                  "risk": r @ pri}))
    sweep = pd.concat(rows, ignore_index=True).dropna()
    return sweep, reach if np.isfinite(opt_worst) else 0.0


def _plane(gm: GaussianMixture, priors: dict[str, np.ndarray]) -> tuple[Regions, pd.DataFrame]:
    """Decision regions of each rule on a GRID x GRID lattice and each class's 1- and 2-std circles (p = 2)."""
    lo = (gm.means - 2.2 * gm.stds[:, None]).min(0)
    hi = (gm.means + 2.2 * gm.stds[:, None]).max(0)
    xs, ys = np.linspace(lo[0], hi[0], GRID), np.linspace(lo[1], hi[1], GRID)
    gx, gy = np.meshgrid(xs, ys)
    pts = np.column_stack([gx.ravel(), gy.ravel()])
    labels = {rule: gm.bayes_predict(pts, p).reshape(GRID, GRID) for rule, p in priors.items()}
    t = np.linspace(0, 2 * np.pi, 25)
    circles = pd.concat(
        [pd.DataFrame({"class": k, "radius": f"{r} std", "x": gm.means[k, 0] + r * gm.stds[k] * np.cos(t),
                       "y": gm.means[k, 1] + r * gm.stds[k] * np.sin(t), "order": np.arange(t.size)})
         for k in range(gm.num_classes) for r in (1, 2)], ignore_index=True)
    return Regions(xs, ys, labels), circles


@lru_cache(maxsize=64)
def _rule_risks(gm: GaussianMixture, priors: tuple[float, ...], density: float, strength: float) -> tuple:
    """Densities, priors after pruning and class risks of the rules no class-density slider moves (memoised)."""
    pri = np.array(priors)
    opt_priors, _ = gm.worst_class_priors()
    reach = float(np.min(pri / opt_priors))
    drop_d = gm.drop_densities(pri, density, strength)
    class_d = [np.ones(len(pri)), drop_d, np.minimum(1.0, opt_priors / pri * min(reach, 1.0))]
    after = [pri, gm.pruned_priors(pri, np.maximum(drop_d, 1e-9)), opt_priors]
    return class_d, after, gm.class_risks(np.stack(after))


def explore_sweep(p: MixtureParams) -> tuple[pd.DataFrame, float]:
    """The density sweep and the optimum's reach alone (memoised by the model): what the study's chart needs."""
    return _model_level(p.model(), tuple(p.priors()), float(p.strength))


def explore_mixture(p: MixtureParams) -> MixtureExploration:
    """Every number and frame of the Mixture page but the sweep; a class-density move costs one class_risks call."""
    gm, pri = p.model(), p.priors()
    dens = np.asarray(p.densities[: p.k], dtype=float)
    (full_d, drop_d, opt_d), (full_p, drop_p, opt_p), fixed = _rule_risks(gm, tuple(pri), float(p.density),
                                                                           float(p.strength))
    yours_p = gm.pruned_priors(pri, np.maximum(dens, 1e-9))
    class_d = {"Full data": full_d, "Your densities": dens, "Toy DRoP": drop_d, "Worst-class optimum": opt_d}
    after = {"Full data": full_p, "Your densities": yours_p, "Toy DRoP": drop_p, "Worst-class optimum": opt_p}
    risks = np.stack([fixed[0], gm.class_risks(yours_p), fixed[1], fixed[2]])   # in RULES order
    classes = pd.DataFrame({
        "rule": np.repeat(RULES, p.k), "class": np.tile(np.arange(p.k), len(RULES)),
        "density": np.concatenate([class_d[r] for r in RULES]),
        "prior_after": np.concatenate([after[r] for r in RULES]), "risk": risks.ravel(),
    })
    summary = pd.DataFrame({
        "rule": RULES, "worst_class_risk": risks.max(1), "average_risk": risks @ pri,
        "kept": [float(pri @ class_d[r]) for r in RULES],
    })
    if gm.dim == 2:
        regions, circles = _plane(gm, {"Full data": full_p, "Your densities": yours_p})
    else:
        regions, circles = None, pd.DataFrame()
    return MixtureExploration(classes, summary, regions, circles)
