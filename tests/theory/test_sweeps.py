"""Sweeps and the explorer: consistency between methods, rules and the closed forms they are built from."""
from __future__ import annotations

import numpy as np
import pytest

from theory import TwoGaussians
from theory.explorer import DENSITY_GRID, RULES, ExplorerParams, explore
from theory.sweeps import METHODS, RISK_COLUMNS, optimal_ratio, ratio_grid, risk_vs_density, risk_vs_density_ratio

CASES = [
    (TwoGaussians(mu=(0.0, 3.0), sigma=(1.0, 1.5)), 0.5),
    (TwoGaussians(mu=(-1.0, 1.0), sigma=(1.0, 2.0)), 0.5),     # toy DRoP overshoots to the trivial rule
    (TwoGaussians(mu=(0.0, 0.5), sigma=(3.0, 0.5)), 0.4),      # worst-class prior found numerically
    (TwoGaussians(mu=(0.0, 2.0), sigma=(1.0, 1.0)), 0.85),     # equal variances, imbalanced
]


@pytest.mark.parametrize("g,prior0", CASES)
def test_risk_vs_density_methods(g: TwoGaussians, prior0: float) -> None:
    df = risk_vs_density(g, prior0, DENSITY_GRID)
    assert list(df["method"].unique()) == list(METHODS)
    assert len(df) == len(METHODS) * len(DENSITY_GRID)
    kept = prior0 * df["d0"] + (1 - prior0) * df["d1"]
    np.testing.assert_allclose(kept, df["density"], rtol=1e-10)
    by = {m: f.reset_index(drop=True) for m, f in df.groupby("method")}
    full = g.class_risks(g.optimal_threshold(prior0)).max()
    np.testing.assert_allclose(by["Random"]["worst_class_risk"], full)          # random pruning keeps the priors
    assert np.all(by["Optimum"]["worst_class_risk"] <= by["Random"]["worst_class_risk"] + 1e-12)
    assert np.all(by["Optimum"]["worst_class_risk"] <= by["Toy DRoP"]["worst_class_risk"] + 1e-12)
    at_one = df[df["density"] == 1.0]
    np.testing.assert_allclose(at_one["worst_class_risk"], full)
    np.testing.assert_allclose(df.loc[df["method"] == "SSP", "margin"].iloc[-1], 0.0)
    np.testing.assert_allclose(by["SSP"]["threshold"], g.ssp_threshold(prior0, by["SSP"]["margin"].to_numpy()))
    np.testing.assert_allclose(
        by["Toy DRoP"][["d0", "d1"]].to_numpy(), g.drop_densities(prior0, DENSITY_GRID)
    )


@pytest.mark.parametrize("g,prior0", CASES)
def test_risk_vs_density_ratio_has_its_minimum_at_the_optimal_ratio(g: TwoGaussians, prior0: float) -> None:
    ratios = ratio_grid(g, prior0)
    df = risk_vs_density_ratio(g, prior0, ratios)
    best = risk_vs_density_ratio(g, prior0, np.array([optimal_ratio(g, prior0)]))
    expected = g.class_risks(g.optimal_threshold(g.worst_class_prior())).max()
    assert best["worst_class_risk"].iloc[0] == pytest.approx(expected, abs=1e-7)
    assert df["worst_class_risk"].min() >= expected - 1e-7
    one = risk_vs_density_ratio(g, prior0, np.array([1.0]))
    assert one["threshold"].iloc[0] == g.optimal_threshold(prior0)
    np.testing.assert_allclose(df["worst_class_risk"], df[["risk_class0", "risk_class1"]].max(axis=1))


def test_explore_rules_and_frames() -> None:
    params = ExplorerParams(d0=0.6, d1=1.0, density=0.4, margin=0.3)
    ex = explore(params)
    g = params.model()
    assert tuple(ex.rules["rule"]) == RULES
    assert ex.rule("Full data")["threshold"] == g.optimal_threshold(0.5)
    assert ex.rule("Your class densities")["pruned_prior0"] == pytest.approx(g.pruned_prior(0.5, (0.6, 1.0)))
    assert ex.rule("SSP")["threshold"] == g.ssp_threshold(0.5, 0.3)
    assert ex.rule("Toy DRoP")["kept"] == pytest.approx(0.4)
    assert ex.rule("Worst-class optimum")["worst_class_risk"] == ex.rules["worst_class_risk"].min()
    for frame in (ex.rules, ex.ratio, ex.density, ex.curves, ex.bands, ex.ratio_marks):
        assert not frame.drop(columns=["margin"], errors="ignore").isna().any().any()
    assert set(RISK_COLUMNS) <= set(ex.density.columns)


def test_explore_rejects_invalid_model() -> None:
    with pytest.raises(ValueError, match="'mu' parameter of TwoGaussians"):
        explore(ExplorerParams(mu0=2.0, mu1=1.0))
