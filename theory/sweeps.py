"""Tidy sweeps of the exact toy model: one row per observation, risks on the original (test) distribution."""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import ndtr

from theory._checks import check_in_range
from theory.model import TwoGaussians

RISK_COLUMNS = ("risk_class0", "risk_class1", "average_risk", "worst_class_risk")
METHODS = ("Random", "SSP", "Toy DRoP", "Optimum")


def risk_columns(g: TwoGaussians, threshold: np.ndarray, prior0: float) -> dict[str, np.ndarray]:
    """Class-wise, average (weights prior0, 1 - prior0) and worst-class risk of the rules ``threshold``."""
    risks = g.class_risks(threshold)
    return {
        "risk_class0": risks[..., 0],
        "risk_class1": risks[..., 1],
        "average_risk": prior0 * risks[..., 0] + (1 - prior0) * risks[..., 1],
        "worst_class_risk": risks.max(axis=-1),
    }


def ratio_grid(g: TwoGaussians, prior0: float, num: int = 121) -> np.ndarray:
    """Log-spaced class-0 density ratios d0/d1 from 1/20 to 20, widened to show the optimal ratio with room."""
    best = optimal_ratio(g, prior0)
    lo, hi = min(0.05, best / 3), max(20.0, best * 3)
    return np.geomspace(lo, hi, num)


def optimal_ratio(g: TwoGaussians, prior0: float) -> float:
    """The density ratio d0/d1 that turns prior0 into the worst-class-optimal prior."""
    target = g.worst_class_prior()
    return (target / (1 - target)) / (prior0 / (1 - prior0))


def risk_vs_density_ratio(g: TwoGaussians, prior0: float, ratios: np.ndarray) -> pd.DataFrame:
    """Random within-class pruning with d0/d1 = ``ratio``: one row per ratio with the pruned prior, t* and risks.

    Only the ratio matters: random pruning rescales the priors and leaves the class densities unchanged.
    """
    r = check_in_range(ratios, "ratios", "risk_vs_density_ratio", 0.0, np.inf, lo_open=True, hi_open=True).ravel()
    pruned = prior0 * r / (prior0 * r + 1 - prior0)
    t = g.optimal_threshold(np.clip(pruned, 0.0, 1.0))
    return pd.DataFrame({"ratio": r, "pruned_prior0": pruned, "threshold": t, **risk_columns(g, t, prior0)})


def method_rules(g: TwoGaussians, prior0: float, densities: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
    """Per method, the rule each pruning method leads to at overall ``densities`` (exact population version).

    Random keeps the priors; Toy DRoP uses Algorithm 1 with the errors of t*(prior0); Optimum uses the
    worst-class-optimal reachable densities; SSP removes |x - mu_k| < M with M set so that the kept fraction
    equals the density. Arrays: density, d0, d1 (kept fraction per class), pruned_prior0, margin, threshold.
    """
    d = check_in_range(densities, "densities", "method_rules", 0.0, 1.0, lo_open=True).ravel()
    margin = np.asarray(g.ssp_margin(prior0, d))
    class_d = {
        "Random": np.stack([d, d], axis=-1),
        "SSP": g.ssp_kept(margin),
        "Toy DRoP": g.drop_densities(prior0, d),
        "Optimum": g.optimal_densities(prior0, d),
    }
    out = {}
    for method in METHODS:
        kept = class_d[method]
        pruned = np.asarray(g.pruned_prior(prior0, kept))
        if method == "SSP":
            threshold, m = g.ssp_threshold(prior0, margin), margin
        else:
            threshold, m = g.optimal_threshold(pruned), np.full(d.shape, np.nan)
        out[method] = {"density": d, "d0": kept[:, 0], "d1": kept[:, 1], "pruned_prior0": pruned, "margin": m,
                       "threshold": np.asarray(threshold)}
    return out


def risk_vs_density(g: TwoGaussians, prior0: float, densities: np.ndarray) -> pd.DataFrame:
    """Random, SSP, Toy DRoP and Optimum against overall density: one row per (method, density), exact risks."""
    rules = method_rules(g, prior0, densities)
    columns = {"method": np.repeat(list(rules), [len(r["density"]) for r in rules.values()])}
    for key in ("density", "d0", "d1", "pruned_prior0", "margin", "threshold"):
        columns[key] = np.concatenate([r[key] for r in rules.values()])
    return pd.DataFrame({**columns, **risk_columns(g, columns["threshold"], prior0)})


def class_density_curves(g: TwoGaussians, prior0: float, num: int = 201) -> pd.DataFrame:
    """Prior-weighted class densities prior_k N(x; mu_k, sigma_k^2) on a grid covering both classes (tidy)."""
    (mu0, mu1), (s0, s1) = g.mu, g.sigma
    x = np.linspace(min(mu0 - 4 * s0, mu1 - 4 * s1), max(mu0 + 4 * s0, mu1 + 4 * s1), num)
    pdf0 = prior0 * np.exp(-0.5 * ((x - mu0) / s0) ** 2) / (s0 * np.sqrt(2 * np.pi))
    pdf1 = (1 - prior0) * np.exp(-0.5 * ((x - mu1) / s1) ** 2) / (s1 * np.sqrt(2 * np.pi))
    return pd.DataFrame(
        {
            "x": np.concatenate([x, x]),
            "class": ["class 0"] * num + ["class 1"] * num,
            "density": np.concatenate([pdf0, pdf1]),
        }
    )


def ssp_bands(g: TwoGaussians, margin: float) -> pd.DataFrame:
    """The two bands |x - mu_k| < margin that SSP removes, with the fraction of each class they hold."""
    (mu0, mu1), (s0, s1) = g.mu, g.sigma
    return pd.DataFrame(
        {"class": ["class 0", "class 1"], "lo": [mu0 - margin, mu1 - margin], "hi": [mu0 + margin, mu1 + margin],
         "removed": [1 - 2 * ndtr(-margin / s0), 1 - 2 * ndtr(-margin / s1)]}
    )
