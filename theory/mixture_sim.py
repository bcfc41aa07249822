"""Finite samples from a GaussianMixture: draw, prune, fit a scikit-learn classifier, score it exactly.

Each repeat draws n labelled points per the priors, fits the classifier on all of them (the query model, whose exact
class risks are DRoP's validation errors, as if validated on infinite data), prunes by every method, refits, and
reports the refit's exact class risks via ``GaussianMixture.rule_risks``. Scores rank "hardest first" as in the paper:

- Margin: the full-data model's log-posterior of the true class minus the best other (small = near the boundary).
- EL2N-style: 1 - the full-data model's posterior of the true class.
- SSP-style: distance to the point's own class sample mean (far = hard).

Plain names keep the hardest points globally; "+DRoP" keeps the hardest within each class up to Algorithm 1's
quota; "Random+DRoP" keeps random points within the quotas. "Logit adjustment" keeps every point and shifts the
full-data model's log-posteriors by log d_k with DRoP's densities d: in the population that is exactly what random
class-wise pruning to d does, so its gap to Random+DRoP is what pruning costs over a post-hoc prior shift.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis, QuadraticDiscriminantAnalysis
from sklearn.linear_model import LogisticRegression

from theory.algorithm1 import drop_class_densities
from theory.mixture import GaussianMixture

CLASSIFIERS = {   # name -> (a new estimator, the fewest points per class it can be fitted on in p dimensions)
    "LDA": (LinearDiscriminantAnalysis, lambda p: 2),
    "QDA": (lambda: QuadraticDiscriminantAnalysis(reg_param=1e-3), lambda p: p + 1),   # a full-rank covariance
    "logistic": (lambda: LogisticRegression(max_iter=500), lambda p: 2),
}
SCORES = ("Margin", "EL2N", "SSP")
METHODS = ("Random", "Random+DRoP", "Logit adjustment") + tuple(s + v for s in SCORES for v in ("", "+DRoP"))
SIM_DENSITIES = (0.2, 0.4, 0.6, 0.8)
SIM_RULE_POINTS = 4096   # rule_risks points per class for each refit: within 0.003 of 16384 points at p = 2 and
                         # 0.016 at p = 16 (60 to 150 points per class), 4 to 6 times faster; the spread over
                         # repeats is larger, and all methods share the points, so comparisons are tighter still


def _check(name: str, ok: bool, what: str, got: object) -> None:
    if not ok:
        raise ValueError(f"The '{name}' parameter of simulate_mixture must be {what}. Got {got!r} instead.")


def _hardness(model, x: np.ndarray, y: np.ndarray, k: int) -> dict[str, np.ndarray]:
    log_post = model.predict_log_proba(x)
    own = log_post[np.arange(len(y)), y]
    others = np.where(np.arange(k)[None] == y[:, None], -np.inf, log_post).max(1)
    means = np.stack([x[y == j].mean(0) for j in range(k)])
    return {"Margin": -(own - others), "EL2N": 1.0 - np.exp(own), "SSP": np.linalg.norm(x - means[y], axis=1)}


def _keep_top(score: np.ndarray, count: int) -> np.ndarray:
    keep = np.zeros(score.size, dtype=bool)
    keep[np.argsort(-score, kind="stable")[:count]] = True
    return keep


def _keep_per_class(score: np.ndarray, y: np.ndarray, quota: np.ndarray) -> np.ndarray:
    keep = np.zeros(score.size, dtype=bool)
    for j, q in enumerate(quota):
        idx = np.flatnonzero(y == j)
        keep[idx[np.argsort(-score[idx], kind="stable")[:q]]] = True
    return keep


def simulate_mixture(
    gm: GaussianMixture, priors: np.ndarray, n: int, *, densities: tuple[float, ...] = SIM_DENSITIES,
    strength: float = 1.0, classifier: str = "LDA", repeats: int = 5, seed: int = 0,
) -> pd.DataFrame:
    """One row per (method, density, repeat): exact class risks of the refit, worst-class and average risk.

    Every class draws at least p + 2 points and DRoP's quotas keep as many; a global method that keeps fewer than the
    classifier needs in some class (2, or p + 1 for QDA) has no row at that density.
    """
    pri = gm.check_priors(priors, "simulate_mixture")
    k, p = gm.num_classes, gm.dim
    _check("n", isinstance(n, (int, np.integer)) and n >= k * (p + 2), f"an int >= {k * (p + 2)}", n)
    _check("repeats", isinstance(repeats, (int, np.integer)) and repeats >= 1, "an int >= 1", repeats)
    _check("classifier", classifier in CLASSIFIERS, f"one of {sorted(CLASSIFIERS)}", classifier)
    dens = np.asarray(densities, dtype=float)
    _check("densities", dens.ndim == 1 and np.all((dens > 0) & (dens <= 1)), "floats in (0, 1]", densities)
    make, fewest = CLASSIFIERS[classifier][0], CLASSIFIERS[classifier][1](gm.dim)
    floor = p + 2
    rows = []
    for rep in range(repeats):
        rng = np.random.default_rng([seed, rep])
        counts = np.maximum(rng.multinomial(n, pri), floor)
        y = np.repeat(np.arange(k), counts)
        x = gm.sample(y, rng)
        full = make().fit(x, y)
        errors = gm.rule_risks(full.predict, SIM_RULE_POINTS)
        hard = _hardness(full, x, y, k)
        random_score = rng.random(y.size)
        for d in dens:
            drop_d = drop_class_densities(counts / counts.sum(), np.power(errors, strength), np.asarray(d))
            quota = np.minimum(counts, np.maximum(np.rint(drop_d * counts).astype(int), floor))
            budget = int(round(d * y.size))
            keeps = {"Random": _keep_top(random_score, budget), "Random+DRoP": _keep_per_class(random_score, y, quota)}
            for name in SCORES:
                keeps[name] = _keep_top(hard[name], budget)
                keeps[name + "+DRoP"] = _keep_per_class(hard[name], y, quota)
            for method in METHODS:
                if method == "Logit adjustment":
                    shift = np.log(np.maximum(drop_d, 1e-12))
                    risks = gm.rule_risks(lambda pts, s=shift, f=full: np.argmax(f.predict_log_proba(pts) + s, axis=1),
                                          SIM_RULE_POINTS)
                    kept = y.size
                else:
                    keep = keeps[method]
                    if np.bincount(y[keep], minlength=k).min() < fewest:   # too few left to fit the classifier
                        continue
                    risks = gm.rule_risks(make().fit(x[keep], y[keep]).predict, SIM_RULE_POINTS)
                    kept = int(keep.sum())
                rows.append({"method": method, "density": float(d), "repeat": rep, "kept": kept,
                             "worst_class_risk": float(risks.max()), "average_risk": float(pri @ risks),
                             **{f"risk_{j}": float(r) for j, r in enumerate(risks)}})
    return pd.DataFrame(rows)


def summarize_mixture_simulation(sim: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over repeats of the worst-class and average risk: one row per (method, density, metric)."""
    long = sim.melt(id_vars=["method", "density", "repeat"], value_vars=["worst_class_risk", "average_risk"],
                    var_name="metric", value_name="risk")
    long["metric"] = long["metric"].map({"worst_class_risk": "worst-class risk", "average_risk": "average risk"})
    out = long.groupby(["method", "density", "metric"], sort=False)["risk"].agg(["mean", "std"]).reset_index()
    return out.assign(std=out["std"].fillna(0.0))
