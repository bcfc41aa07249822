"""Finite-sample simulation: exact ERM against brute force, pruning budgets, convergence to the exact curves."""
from __future__ import annotations

import numpy as np
import pytest

from theory import TwoGaussians
from theory.simulate import erm_threshold, simulate, summarize_simulation
from theory.sweeps import METHODS, risk_vs_density


def errors_at(t: float, x: np.ndarray, y: np.ndarray) -> int:
    return int(np.sum((x > t) != y))


def test_erm_matches_brute_force_over_all_gaps() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 25)) + rng.integers(0, 2, size=(300, 1))
    y = rng.random((300, 25)) < 0.5
    keep = rng.random((300, 25)) < 0.7
    t = erm_threshold(x, y, keep)
    for row in range(300):
        xs, ys = x[row][keep[row]], y[row][keep[row]]
        s = np.sort(xs)
        cands = np.concatenate([[-np.inf, np.inf], 0.5 * (s[1:] + s[:-1])])
        best = min(errors_at(c, xs, ys) for c in cands)
        assert errors_at(t[row], xs, ys) == best
        assert np.isinf(t[row]) or not np.any(np.isclose(xs, t[row]))


def test_erm_single_row_and_trivial_cases() -> None:
    assert erm_threshold(np.array([1.0, 2.0, 3.0]), np.array([1, 1, 1])) == -np.inf
    assert erm_threshold(np.array([1.0, 2.0, 3.0]), np.array([0, 0, 0])) == np.inf
    assert erm_threshold(np.array([1.0, 2.0, 3.0, 4.0]), np.array([0, 0, 1, 1])) == 2.5
    assert erm_threshold(np.array([1.0, 2.0, 3.0, 4.0]), np.array([0, 1, 0, 1]), np.array([1, 0, 0, 1])) == 2.5


def test_simulate_budgets_and_determinism() -> None:
    g = TwoGaussians(mu=(0.0, 2.0), sigma=(1.0, 1.5))
    densities = np.array([0.2, 0.5, 1.0])
    sim = simulate(g, 0.3, 200, densities, repeats=5, seed=3)
    assert sim.equals(simulate(g, 0.3, 200, densities, repeats=5, seed=3))
    assert not sim.equals(simulate(g, 0.3, 200, densities, repeats=5, seed=4))
    assert list(sim["method"].unique()) == list(METHODS)
    for method in ("Random", "SSP"):
        part = sim[sim["method"] == method]
        np.testing.assert_array_equal(part["kept"], np.rint(part["density"] * 200))
    quota = sim[sim["method"].isin(["Toy DRoP", "Optimum"])]
    assert np.all(np.abs(quota["kept"] - quota["density"] * 200) <= 1)
    full = sim[sim["density"] == 1.0]
    assert full.groupby("repeat")["threshold"].nunique().eq(1).all()   # nothing pruned: one fit per repeat


def test_simulation_converges_to_the_exact_curves() -> None:
    g = TwoGaussians(mu=(0.0, 3.0), sigma=(1.0, 1.5))
    densities = np.array([0.3, 0.8])
    summary = summarize_simulation(simulate(g, 0.5, 20000, densities, repeats=4, seed=0))
    exact = risk_vs_density(g, 0.5, densities)
    worst = summary[summary["metric"] == "worst_class_risk"].merge(exact, on=["method", "density"])
    np.testing.assert_allclose(worst["mean"], worst["worst_class_risk"], atol=0.02)
    assert np.all((worst["min"] <= worst["mean"]) & (worst["mean"] <= worst["max"]))


def test_simulate_rejects_bad_sizes() -> None:
    g = TwoGaussians(mu=(0.0, 1.0), sigma=(1.0, 1.0))
    with pytest.raises(
        ValueError,
        match=r"^The 'n' parameter of simulate must be an int in the range \[10, 10000000\]. Got 5 instead.$",
    ):
        simulate(g, 0.5, 5)
    with pytest.raises(ValueError, match="'densities' parameter of simulate"):
        simulate(g, 0.5, 100, np.array([0.0, 0.5]))
