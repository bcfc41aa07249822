"""Finite-sample study of a GaussianMixture: shapes, determinism, bad input, and the paper's first claim."""
from __future__ import annotations

import numpy as np
import pytest

from theory import GaussianMixture
from theory.mixture_sim import METHODS, simulate_mixture, summarize_mixture_simulation

GM = GaussianMixture(2.5 * np.array([[1.0, 0.0], [-0.5, 0.87], [-0.5, -0.87]]), np.array([1.6, 0.8, 0.8]))
PRIORS = np.full(3, 1 / 3)


def test_every_method_reports_exact_risks_and_is_reproducible() -> None:
    sim = simulate_mixture(GM, PRIORS, 300, densities=(0.5,), repeats=2, seed=3)
    assert set(sim["method"]) == set(METHODS)
    risks = sim[[f"risk_{j}" for j in range(3)]].to_numpy()
    assert np.all((risks >= -1e-9) & (risks <= 1 + 1e-9))
    np.testing.assert_allclose(sim["worst_class_risk"], risks.max(1))
    kept = sim.groupby("method")["kept"].first()
    assert kept["Logit adjustment"] > kept["Random"]
    again = simulate_mixture(GM, PRIORS, 300, densities=(0.5,), repeats=2, seed=3)
    np.testing.assert_array_equal(sim.to_numpy(), again.to_numpy())
    summary = summarize_mixture_simulation(sim)
    assert set(summary["metric"]) == {"worst-class risk", "average risk"} and (summary["std"] >= 0).all()


def test_score_based_pruning_hurts_the_worst_class_more_than_random() -> None:
    sim = simulate_mixture(GM, PRIORS, 900, densities=(0.2,), repeats=3, seed=0, classifier="QDA")
    worst = sim.groupby("method")["worst_class_risk"].mean()
    assert worst["Margin"] > worst["Random"] and worst["EL2N"] > worst["Random"]


def test_qda_in_more_dimensions_than_a_pruned_class_has_points_skips_that_fit() -> None:
    means = np.zeros((3, 8))
    means[[0, 1, 2], [0, 1, 2]] = 2.0
    gm = GaussianMixture(means, np.array([1.4, 0.7, 0.7]))
    sim = simulate_mixture(gm, PRIORS, 60, densities=(0.2,), repeats=1, classifier="QDA")   # 20 per class, p = 8
    # quotas keep p + 2 per class; a global method keeps 12 points, too few for 9 per class, so it has no row
    assert set(sim["method"]) == {"Random+DRoP", "Logit adjustment", "Margin+DRoP", "EL2N+DRoP", "SSP+DRoP"}


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"n": 5}, "n"), ({"n": 300, "classifier": "svm"}, "classifier"), ({"n": 300, "repeats": 0}, "repeats"),
     ({"n": 300, "densities": (0.0,)}, "densities")],
)
def test_bad_input_names_the_parameter(kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=f"The '{name}' parameter of simulate_mixture"):
        simulate_mixture(GM, PRIORS, **kwargs)
