"""Everything the Theory page shows for one setting of its sliders, in one pure call (the page's hot path)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from theory.model import TwoGaussians
from theory.sweeps import (
    class_density_curves,
    optimal_ratio,
    ratio_grid,
    risk_columns,
    risk_vs_density,
    risk_vs_density_ratio,
    ssp_bands,
)

DENSITY_GRID = np.round(np.arange(0.05, 1.0 + 1e-9, 0.01), 2)
RULES = ("Full data", "Your class densities", "Worst-class optimum", "Toy DRoP", "SSP")


@dataclass(frozen=True)
class ExplorerParams:
    """The exact model's inputs: two classes, a prior, and the three ways of pruning the page compares."""

    mu0: float = 0.0
    mu1: float = 3.0
    sigma0: float = 1.0
    sigma1: float = 1.5
    prior0: float = 0.5
    d0: float = 1.0          # class densities for random within-class pruning ("your class densities")
    d1: float = 1.0
    density: float = 0.5     # overall density for toy DRoP and the density sweep
    margin: float = 0.5      # SSP margin around each class mean

    def model(self) -> TwoGaussians:
        """The two-Gaussian model; raises ValueError for sigma <= 0 or mu0 >= mu1."""
        return TwoGaussians(mu=(self.mu0, self.mu1), sigma=(self.sigma0, self.sigma1))


@dataclass(frozen=True)
class Exploration:
    """Tidy frames for the page: rules (one row per rule), curves, bands, ratio sweep, ratio marks, density sweep."""

    rules: pd.DataFrame
    curves: pd.DataFrame
    bands: pd.DataFrame
    ratio: pd.DataFrame
    ratio_marks: pd.DataFrame
    density: pd.DataFrame

    def rule(self, name: str) -> pd.Series:
        """One row of ``rules`` by rule name."""
        return self.rules.set_index("rule").loc[name]


def explore(p: ExplorerParams, densities: np.ndarray = DENSITY_GRID) -> Exploration:
    """Compute every exact number and curve of the Theory page (vectorised closed forms, no optimiser)."""
    g = p.model()
    prior0 = p.prior0
    best_prior = g.worst_class_prior()
    drop_d = g.drop_densities(prior0, p.density)
    ssp_kept = g.ssp_kept(p.margin)
    opt_ratio = optimal_ratio(g, prior0)
    opt_d = np.array([min(1.0, opt_ratio), min(1.0, 1.0 / opt_ratio)])

    class_d = np.array([[1.0, 1.0], [p.d0, p.d1], opt_d, drop_d, ssp_kept])
    pruned = g.pruned_prior(prior0, class_d)
    pruned[2] = best_prior  # exact, not re-derived through the ratio
    thresholds = g.optimal_threshold(pruned)
    thresholds[4] = g.ssp_threshold(prior0, p.margin)
    rules = pd.DataFrame(
        {"rule": RULES, "d0": class_d[:, 0], "d1": class_d[:, 1],
         "kept": prior0 * class_d[:, 0] + (1 - prior0) * class_d[:, 1],
         "pruned_prior0": pruned, "threshold": thresholds, **risk_columns(g, thresholds, prior0)}
    )

    marked = [0, 1, 2, 3]  # full data, your class densities, worst-class optimum, toy DRoP
    ratios = class_d[marked, 0] / class_d[marked, 1]
    ratios[2] = opt_ratio
    marks = pd.DataFrame(
        {
            "rule": [RULES[i] for i in marked],
            "ratio": ratios,
            "worst_class_risk": rules["worst_class_risk"].to_numpy()[marked],
        }
    )
    return Exploration(
        rules=rules,
        curves=class_density_curves(g, prior0),
        bands=ssp_bands(g, p.margin),
        ratio=risk_vs_density_ratio(g, prior0, ratio_grid(g, prior0)),
        ratio_marks=marks,
        density=risk_vs_density(g, prior0, densities),
    )

__all__ = ["DENSITY_GRID", "RULES", "ExplorerParams", "Exploration", "explore"]
