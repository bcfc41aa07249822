"""GaussianMixture against independent computations: quadrature (p <= 2), Monte Carlo (p > 2), TwoGaussians."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, stats

from theory import GaussianMixture, TwoGaussians
from theory.mixture import bayes_class_accuracy, gaussians_dataset_mixture


def random_mixture(rng: np.random.Generator, k: int, p: int) -> tuple[GaussianMixture, np.ndarray]:
    gm = GaussianMixture(rng.normal(0.0, 1.5, (k, p)), rng.uniform(0.5, 2.0, k))
    return gm, rng.dirichlet(np.full(k, 2.0))


def quad_risks_1d(gm: GaussianMixture, priors: np.ndarray) -> np.ndarray:
    """R_k by scipy.integrate.quad between the rule's change points (located on a fine grid, then integrated)."""
    lo = (gm.means[:, 0] - 12 * gm.stds).min()
    hi = (gm.means[:, 0] + 12 * gm.stds).max()
    grid = np.linspace(lo, hi, 200_001)
    labels = gm.bayes_predict(grid[:, None], priors)
    cuts = np.concatenate([[lo], grid[1:][labels[1:] != labels[:-1]], [hi]])
    out = []
    for k in range(gm.num_classes):
        right = 0.0
        for a, b in zip(cuts[:-1], cuts[1:]):
            if gm.bayes_predict(np.array([[0.5 * (a + b)]]), priors)[0] == k:
                right += integrate.quad(stats.norm(gm.means[k, 0], gm.stds[k]).pdf, a, b, epsabs=1e-12)[0]
        out.append(1.0 - right)
    return np.array(out)


def quad_risks_2d(gm: GaussianMixture, priors: np.ndarray, k: int) -> float:
    """R_k by scipy.integrate.quad over x1 of the exact x2-integral: on each vertical line the rule's change points
    are bracketed on a grid and refined by bisection, and the normal CDF integrates between them."""
    mu, s = gm.means[k], gm.stds[k]
    y = mu[1] + s * np.linspace(-9, 9, 2001)

    def labels(x1: float, ys: np.ndarray) -> np.ndarray:
        return gm.bayes_predict(np.column_stack([np.full_like(ys, x1), ys]), priors)

    def inner(x1: float) -> float:
        lab = labels(x1, y)
        lo, hi = y[:-1][lab[1:] != lab[:-1]], y[1:][lab[1:] != lab[:-1]]
        left = labels(x1, lo)
        for _ in range(45):                      # bisection to float resolution
            mid = 0.5 * (lo + hi)
            same = labels(x1, mid) == left
            lo, hi = np.where(same, mid, lo), np.where(same, hi, mid)
        cuts = np.concatenate([[-np.inf], 0.5 * (lo + hi), [np.inf]])
        probe = np.concatenate([y[:1], 0.5 * (lo + hi) + 1e-9]) if len(lo) else y[:1]
        wrong = labels(x1, probe) != k
        mass = np.diff(stats.norm.cdf(cuts, mu[1], s))
        return float((mass * wrong).sum()) * stats.norm.pdf(x1, mu[0], s)

    return integrate.quad(inner, mu[0] - 9 * s, mu[0] + 9 * s, epsabs=1e-8, limit=200)[0]


def mc_risks(gm: GaussianMixture, priors: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    risk = np.array(
        [(gm.bayes_predict(gm.sample(np.full(n, k), rng), priors) != k).mean() for k in range(gm.num_classes)]
    )
    return risk, np.sqrt(risk * (1 - risk) / n)


# ---------------------------------------------------------------- accuracy
@pytest.mark.parametrize("seed", range(4))
def test_p1_matches_quadrature(seed: int) -> None:
    rng = np.random.default_rng(seed)
    gm, priors = random_mixture(rng, int(rng.integers(2, 6)), 1)
    np.testing.assert_allclose(gm.class_risks(priors), quad_risks_1d(gm, priors), atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(2))
def test_p2_matches_quadrature(seed: int) -> None:
    rng = np.random.default_rng(10 + seed)
    gm, priors = random_mixture(rng, 3, 2)
    ours = gm.class_risks(priors)
    for k in range(3):
        assert ours[k] == pytest.approx(quad_risks_2d(gm, priors, k), abs=2e-4)


@pytest.mark.parametrize(("k", "p", "seed"), [(2, 7, 0), (4, 3, 1), (5, 4, 2)])
def test_higher_dimensions_match_monte_carlo(k: int, p: int, seed: int) -> None:
    gm, priors = random_mixture(np.random.default_rng(20 + seed), k, p)
    ref, se = mc_risks(gm, priors, 200_000, seed)
    assert np.all(np.abs(gm.class_risks(priors) - ref) < 1.5e-3 + 4 * se)


@pytest.mark.slow
def test_gaussians_dataset_matches_a_large_monte_carlo() -> None:
    """16-D, 10 classes, the in-span rule: within 1e-3 of 400 000 Monte Carlo points per class, up to their noise."""
    gm = gaussians_dataset_mixture()
    priors = np.full(10, 0.1)
    ref, se = mc_risks(gm, priors, 400_000, 7)
    assert np.all(np.abs(gm.class_risks(priors) - ref) < 1e-3 + 3 * se)


@pytest.mark.slow
@pytest.mark.parametrize("priors", [np.full(10, 0.1), np.linspace(1, 3, 10) / np.linspace(1, 3, 10).sum()])
def test_gaussians_dataset_risks_agree_across_independent_scramblings(priors: np.ndarray) -> None:
    """The integration error itself: four other scramblings of the Sobol points all land within 1e-3 of ours."""
    from scipy.special import ndtri
    from scipy.stats import qmc

    base = gaussians_dataset_mixture()
    ours = base.class_risks(priors)
    n, m = base._sobol_directions, base._basis.shape[1]
    for seed in range(4):
        other = GaussianMixture(base.means, base.stds)
        u = qmc.Sobol(m, scramble=True, rng=np.random.default_rng(100 + seed)).random(n)
        other.__dict__["_directions"] = (ndtri(np.clip(u, 1e-12, 1 - 1e-12)), np.full(n, 1.0 / n))
        assert other._in_span_sobol and np.abs(other.class_risks(priors) - ours).max() < 1e-3


def test_equal_stds_in_many_dimensions_keep_the_ray_rule() -> None:
    """Equal stds make v irrelevant, so the in-span rule would integrate an indicator; the rays stay in use there."""
    rng = np.random.default_rng(3)
    gm = GaussianMixture(rng.normal(0, 2, (3, 6)), np.ones(3))
    assert not gm._in_span_sobol
    ref, se = mc_risks(gm, np.full(3, 1 / 3), 200_000, 3)
    assert np.all(np.abs(gm.class_risks(np.full(3, 1 / 3)) - ref) < 1e-3 + 4 * se)


def test_in_span_rule_matches_monte_carlo_at_random_parameters() -> None:
    for seed in range(3):
        rng = np.random.default_rng(40 + seed)
        k = int(rng.integers(3, 6))
        gm, priors = random_mixture(rng, k, int(rng.integers(k, 9)))
        assert gm._in_span_sobol
        ref, se = mc_risks(gm, priors, 200_000, seed)
        assert np.all(np.abs(gm.class_risks(priors) - ref) < 1e-3 + 4 * se), (seed, gm)


@pytest.mark.parametrize("p0", [0.2, 0.5, 0.85])
def test_two_classes_equal_stds_agree_with_two_gaussians(p0: float) -> None:
    g = TwoGaussians(mu=(-0.5, 1.7), sigma=(1.3, 1.3))
    gm = GaussianMixture([-0.5, 1.7], [1.3, 1.3])
    np.testing.assert_allclose(gm.class_risks([p0, 1 - p0]), g.class_risks(g.optimal_threshold(p0)), atol=1e-10)
    assert gm.worst_class_priors()[0][0] == pytest.approx(g.worst_class_prior(), abs=1e-3)


def test_unequal_stds_beat_the_one_threshold_rule() -> None:
    """With unequal stds the Bayes rule has two thresholds, so it is better on average than TwoGaussians' t*."""
    g = TwoGaussians(mu=(0.0, 1.0), sigma=(0.7, 2.0))
    gm = GaussianMixture([0.0, 1.0], [0.7, 2.0])
    r_bayes = gm.class_risks([0.5, 0.5])
    r_one = g.class_risks(g.optimal_threshold(0.5))
    assert r_bayes.mean() < r_one.mean() - 1e-3
    assert np.all(r_bayes >= 0) and np.all(r_bayes <= 1)


def test_batched_priors_equal_one_at_a_time() -> None:
    gm, _ = random_mixture(np.random.default_rng(3), 4, 2)
    priors = np.random.default_rng(4).dirichlet(np.ones(4), size=(2, 3))
    batch = gm.class_risks(priors)
    assert batch.shape == (2, 3, 4)
    np.testing.assert_allclose(batch[1, 2], gm.class_risks(priors[1, 2]), atol=1e-12)


def test_a_larger_prior_lowers_that_class_risk() -> None:
    gm, _ = random_mixture(np.random.default_rng(5), 3, 2)
    r = gm.class_risks(np.array([[0.2, 0.4, 0.4], [0.4, 0.3, 0.3]]))
    assert r[1, 0] < r[0, 0] and r[1, 1] > r[0, 1]


# ---------------------------------------------------------------- minimax prior
def test_worst_class_priors_beat_a_brute_force_search_for_two_classes() -> None:
    gm = GaussianMixture([0.0, 1.0], [0.7, 2.0])
    grid = np.linspace(0.01, 0.99, 981)
    brute = gm.class_risks(np.column_stack([grid, 1 - grid])).max(1).min()
    priors, worst = gm.worst_class_priors()
    assert worst == pytest.approx(brute, abs=1e-3) and worst <= brute + 2e-4
    assert gm.class_risks(priors).max() == pytest.approx(worst, abs=1e-12)


def test_worst_class_priors_beat_a_brute_force_search_for_three_classes() -> None:
    gm = GaussianMixture([[0.0, 0.0], [2.0, 0.0], [0.5, 1.5]], [0.6, 1.0, 1.4])
    a, b = np.meshgrid(np.linspace(0.01, 0.98, 50), np.linspace(0.01, 0.98, 50))
    inside = a + b < 0.995
    grid = np.column_stack([a[inside], b[inside], 1 - a[inside] - b[inside]])
    brute = gm.class_risks(grid).max(1).min()
    priors, worst = gm.worst_class_priors()
    assert worst <= brute + 2e-4
    r = gm.class_risks(priors)
    assert r.max() - priors @ r < 2e-4     # the certificate: V <= minimax <= max R
    assert priors.sum() == pytest.approx(1.0) and np.all(priors > 0)


# ---------------------------------------------------------------- pruning and toy DRoP
def test_pruned_priors_rescale_by_the_densities() -> None:
    gm, priors = random_mixture(np.random.default_rng(6), 3, 1)
    d = np.array([1.0, 0.5, 0.25])
    out = gm.pruned_priors(priors, d)
    np.testing.assert_allclose(out, priors * d / (priors * d).sum())
    np.testing.assert_allclose(gm.pruned_priors(priors, np.full(3, 0.3)), priors)
    assert gm.pruned_priors(priors, np.array([[1, 1, 1], [1, 0, 1]])).shape == (2, 3)


@pytest.mark.parametrize("density", [0.1, 0.4, 0.8, 1.0])
def test_drop_densities_follow_algorithm_1(density: float) -> None:
    gm = GaussianMixture([0.0, 1.0, 3.0, 3.5], [0.5, 1.0, 1.0, 2.0])
    priors = np.array([0.4, 0.3, 0.2, 0.1])
    d = gm.drop_densities(priors, density)
    assert priors @ d == pytest.approx(density)
    assert np.all(d >= 0) and np.all(d <= 1 + 1e-12)
    errors = gm.class_risks(priors)
    free = d < 1 - 1e-12
    if free.sum() >= 2:   # unsaturated classes keep densities proportional to their errors
        np.testing.assert_allclose(d[free] / errors[free], (d[free] / errors[free])[0], rtol=1e-9)
    np.testing.assert_allclose(gm.drop_densities(priors, density, strength=0.0), np.full(4, density))


def test_drop_densities_without_errors_keep_the_density_everywhere() -> None:
    gm = GaussianMixture([0.0, 1e4, 2e4], [1.0, 1.0, 1.0])
    priors = np.array([0.5, 0.3, 0.2])
    assert np.all(gm.class_risks(priors) == 0)
    np.testing.assert_allclose(gm.drop_densities(priors, 0.3), np.full(3, 0.3))


# ---------------------------------------------------------------- finite classifiers
def test_rule_risks_of_bayes_rules() -> None:
    gm, priors = random_mixture(np.random.default_rng(8), 3, 2)
    balanced = np.full(3, 1 / 3)
    exact = gm.class_risks(balanced)
    np.testing.assert_allclose(gm.rule_risks(lambda x: gm.bayes_predict(x, balanced)), exact, atol=1e-12)
    np.testing.assert_allclose(gm.rule_risks(lambda x: gm.bayes_predict(x, priors)), gm.class_risks(priors), atol=2e-3)
    fewer = gm.rule_risks(lambda x: gm.bayes_predict(x, priors), 4096)   # a balanced prefix of the same points
    np.testing.assert_allclose(fewer, gm.class_risks(priors), atol=4e-3)
    for bad in (0, 3000, 2 * 16384, 4096.0):
        with pytest.raises(ValueError, match="The 'points' parameter of GaussianMixture.rule_risks"):
            gm.rule_risks(lambda x: gm.bayes_predict(x, priors), bad)


def test_bayes_class_accuracy_of_the_gaussians_dataset() -> None:
    acc = bayes_class_accuracy()
    assert acc.shape == (10,) and np.all(np.diff(acc) < 0.01)     # wider classes are harder
    gm = gaussians_dataset_mixture()
    assert gm.dim == 16 and gm.stds[0] == pytest.approx(0.6) and gm.stds[-1] == pytest.approx(1.6)


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("make", "name"),
    [
        (lambda: GaussianMixture([0.0], [1.0]), "means"),
        (lambda: GaussianMixture([[0.0, np.nan], [1.0, 1.0]], [1.0, 1.0]), "means"),
        (lambda: GaussianMixture([0.0, 1.0], [1.0, 0.0]), "stds"),
        (lambda: GaussianMixture([0.0, 1.0], [1.0, 1.0, 1.0]), "stds"),
        (lambda: GaussianMixture([0.0, 1.0], [1.0, 1.0]).class_risks([0.5, 0.6]), "priors"),
        (lambda: GaussianMixture([0.0, 1.0], [1.0, 1.0]).class_risks([1.0, 0.0]), "priors"),
        (lambda: GaussianMixture([0.0, 1.0], [1.0, 1.0]).class_risks([1.0]), "priors"),
        (lambda: GaussianMixture([0.0, 1.0], [1.0, 1.0]).pruned_priors([0.5, 0.5], [0.0, 0.0]), "densities"),
        (lambda: GaussianMixture([0.0, 1.0], [1.0, 1.0]).pruned_priors([0.5, 0.5], [1.5, 0.5]), "densities"),
        (lambda: GaussianMixture([0.0, 1.0], [1.0, 1.0]).drop_densities([0.5, 0.5], 0.0), "density"),
        (lambda: GaussianMixture([0.0, 1.0], [1.0, 1.0]).drop_densities([0.5, 0.5], 1.2), "density"),
    ],
)
def test_bad_input_names_the_parameter(make, name: str) -> None:
    with pytest.raises(ValueError, match=f"The '{name}' parameter of GaussianMixture"):
        make()
