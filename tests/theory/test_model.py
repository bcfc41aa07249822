"""TwoGaussians against independent numerics: scipy integration, brute-force grids, a literal Algorithm 1."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, stats

from theory import TwoGaussians
from theory.algorithm1 import drop_class_densities


def random_models(count: int, seed: int) -> list[tuple[TwoGaussians, float]]:
    """Random models and priors; a quarter with equal variances, some with heavy overlap or extreme priors."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        mu0 = rng.uniform(-3, 3)
        gap = rng.uniform(0.05, 4)
        s0 = rng.uniform(0.2, 3)
        s1 = s0 if i % 4 == 0 else rng.uniform(0.2, 3)
        prior0 = rng.uniform(0.001, 0.999) if i % 5 else rng.choice([0.001, 0.02, 0.98, 0.999])
        out.append((TwoGaussians(mu=(mu0, mu0 + gap), sigma=(s0, s1)), float(prior0)))
    return out


def t_grid(g: TwoGaussians, num: int = 20001) -> np.ndarray:
    lo = min(g.mu) - 12 * max(g.sigma)
    hi = max(g.mu) + 12 * max(g.sigma)
    return np.concatenate([[-np.inf], np.linspace(lo, hi, num), [np.inf]])


def literal_algorithm1(sizes: list[float], errors: list[float], density: float) -> np.ndarray:
    """Algorithm 1 as printed (E frozen per round), with the zero-error fallback spreading by class size."""
    k = len(sizes)
    d, unsat, excess = np.zeros(k), set(range(k)), density * sum(sizes)
    while excess > 1e-15 and unsat:
        z = sum(sizes[j] * errors[j] for j in unsat)
        weights = {j: errors[j] / z for j in unsat} if z > 0 else {j: 1 / sum(sizes[i] for i in unsat) for j in unsat}
        budget, excess = excess, 0.0
        for j in sorted(unsat):
            d[j] += budget * weights[j]
            if d[j] > 1:
                unsat.discard(j)
                excess += sizes[j] * (d[j] - 1)
                d[j] = 1.0
    return d


# ---------------------------------------------------------------- class risks
@pytest.mark.parametrize("g,prior0", random_models(12, seed=1))
def test_class_risks_match_integrated_densities(g: TwoGaussians, prior0: float) -> None:
    (mu0, mu1), (s0, s1) = g.mu, g.sigma
    for t in [-np.inf, mu0 - s0, 0.5 * (mu0 + mu1), mu1 + 0.3 * s1, np.inf]:
        r0 = integrate.quad(lambda x: stats.norm.pdf(x, mu0, s0), t, np.inf)[0] if t < np.inf else 0.0
        r1 = integrate.quad(lambda x: stats.norm.pdf(x, mu1, s1), -np.inf, t)[0] if t > -np.inf else 0.0
        np.testing.assert_allclose(g.class_risks(t), [r0, r1], atol=1e-9)
        np.testing.assert_allclose(g.average_risk(t, prior0), prior0 * r0 + (1 - prior0) * r1, atol=1e-9)


def test_class_risks_shape_and_trivial_rules() -> None:
    g = TwoGaussians(mu=(0.0, 1.0), sigma=(1.0, 2.0))
    t = np.array([[-np.inf, 0.0], [1.0, np.inf]])
    r = g.class_risks(t)
    assert r.shape == (2, 2, 2)
    np.testing.assert_array_equal(r[0, 0], [1.0, 0.0])
    np.testing.assert_array_equal(r[1, 1], [0.0, 1.0])


# ---------------------------------------------------------------- t* (Eq. 3 / Eq. 6)
@pytest.mark.parametrize("g,prior0", random_models(120, seed=2))
def test_optimal_threshold_is_global_minimiser_on_a_grid(g: TwoGaussians, prior0: float) -> None:
    t_star = g.optimal_threshold(prior0)
    grid_risk = g.average_risk(t_grid(g), prior0)
    assert g.average_risk(t_star, prior0) <= grid_risk.min() + 1e-12
    if np.isfinite(t_star):  # a finite t* is a stationary point: dR/dt = prior1 p1 - prior0 p0 = 0
        slope = (1 - prior0) * stats.norm.pdf(t_star, g.mu[1], g.sigma[1]) - prior0 * stats.norm.pdf(
            t_star, g.mu[0], g.sigma[0]
        )
        assert abs(slope) < 1e-9


def test_optimal_threshold_vectorises_over_priors() -> None:
    g = TwoGaussians(mu=(-1.0, 1.0), sigma=(1.0, 2.0))
    priors = np.linspace(0.0, 1.0, 101)
    vec = g.optimal_threshold(priors)
    np.testing.assert_array_equal(vec, [g.optimal_threshold(float(p)) for p in priors])
    assert vec[0] == -np.inf and vec[-1] == np.inf


def test_optimal_threshold_regimes_from_the_notes() -> None:
    """Worked example of the reconstruction (README, toy model): t*(0.5) = 0.2376 for mu=(-1,1), sigma=(1,2); at prior 0.2 Eq. 6 fails, t* = -inf."""
    g = TwoGaussians(mu=(-1.0, 1.0), sigma=(1.0, 2.0))
    assert g.optimal_threshold(0.5) == pytest.approx(0.2376, abs=1e-4)
    assert g.eq6_discriminant(0.2) < 0
    assert g.optimal_threshold(0.2) == -np.inf
    assert g.average_risk(-np.inf, 0.2) == pytest.approx(0.2)


def test_trivial_rule_wins_although_eq6_holds() -> None:
    """Eq. 6 can hold while the local minimum is worse than predicting one class everywhere."""
    g = TwoGaussians(mu=(0.0, 0.5), sigma=(0.5, 3.0))
    prior0 = 0.3
    assert g.eq6_discriminant(prior0) > 0
    assert g.optimal_threshold(prior0) == -np.inf
    finite = np.linspace(g.mu[0] - 6 * g.sigma[0], g.mu[1] + 6 * g.sigma[1], 20001)  # tails round to prior0
    assert g.average_risk(finite, prior0).min() > prior0


@pytest.mark.parametrize("prior0", [0.01, 0.2, 0.5, 0.77, 0.99])
def test_equal_variances_closed_form(prior0: float) -> None:
    mu0, mu1, s = -0.3, 1.1, 0.8
    expected = 0.5 * (mu0 + mu1) + s**2 * np.log(prior0 / (1 - prior0)) / (mu1 - mu0)
    assert TwoGaussians(mu=(mu0, mu1), sigma=(s, s)).optimal_threshold(prior0) == pytest.approx(
        expected, rel=1e-12, abs=1e-12
    )
    nearly = TwoGaussians(mu=(mu0, mu1), sigma=(s, s * (1 + 1e-11))).optimal_threshold(prior0)
    assert nearly == pytest.approx(expected, abs=1e-8)


@settings(max_examples=60, deadline=None)
@given(
    mu0=st.floats(-3, 3),
    gap=st.floats(0.05, 4),
    s0=st.floats(0.2, 3),
    s1=st.floats(0.2, 3),
    prior0=st.floats(0.001, 0.999),
)
def test_mirror_symmetry_sigma0_greater_than_sigma1(
    mu0: float, gap: float, s0: float, s1: float, prior0: float
) -> None:
    """Reflecting x -> -x swaps the classes: t*(prior0) of the model equals -t*(1 - prior0) of its mirror."""
    g = TwoGaussians(mu=(mu0, mu0 + gap), sigma=(s0, s1))
    mirror = TwoGaussians(mu=(-mu0 - gap, -mu0), sigma=(s1, s0))
    t, t_m = g.optimal_threshold(prior0), mirror.optimal_threshold(1 - prior0)
    if np.isfinite(t) or np.isfinite(t_m):
        assert t == pytest.approx(-t_m, rel=1e-9, abs=1e-9)
    else:
        assert t == -t_m


# ---------------------------------------------------------------- worst-class optimum (B.2)
def worst_on_prior_grid(g: TwoGaussians) -> float:
    priors = np.linspace(1e-4, 1 - 1e-4, 20001)
    return g.class_risks(g.optimal_threshold(priors)).max(axis=-1).min()


@pytest.mark.parametrize("g,_", random_models(40, seed=3))
def test_worst_class_prior_beats_a_prior_grid(g: TwoGaussians, _: float) -> None:
    p = g.worst_class_prior()
    worst = g.class_risks(g.optimal_threshold(p)).max()
    assert np.isfinite(g.optimal_threshold(p))
    assert worst <= worst_on_prior_grid(g) + 1e-9


def test_worst_class_prior_is_proportional_to_std_when_t_is_finite() -> None:
    g = TwoGaussians(mu=(-1.0, 1.0), sigma=(1.0, 2.0))
    assert g.worst_class_prior() == pytest.approx(1 / 3)
    r = g.class_risks(g.optimal_threshold(1 / 3))
    assert r[0] == pytest.approx(r[1], abs=1e-12)


@pytest.mark.parametrize("sigma", [(0.5, 3.0), (3.0, 0.5)])
def test_worst_class_prior_numerical_fallback(sigma: tuple[float, float]) -> None:
    """With heavy overlap the trivial rule wins at s0/(s0+s1); the optimum moves towards 1/2 and beats the grid."""
    g = TwoGaussians(mu=(0.0, 0.5), sigma=sigma)
    naive = sigma[0] / sum(sigma)
    assert not np.isfinite(g.optimal_threshold(naive))
    p = g.worst_class_prior()
    assert p != pytest.approx(naive) and abs(p - 0.5) < abs(naive - 0.5)
    assert g.class_risks(g.optimal_threshold(p)).max() <= worst_on_prior_grid(g) + 1e-9


# ---------------------------------------------------------------- pruning priors, toy DRoP, optimal densities
def test_pruned_prior_depends_only_on_the_density_ratio() -> None:
    g = TwoGaussians(mu=(0.0, 2.0), sigma=(1.0, 1.5))
    d = np.array([[1.0, 1.0], [0.3, 0.6], [0.5, 1.0], [0.2, 0.0]])
    np.testing.assert_allclose(g.pruned_prior(0.3, d), [0.3, 0.3 / (0.3 + 0.7 * 2), 0.3 / (0.3 + 0.7 * 2), 1.0])


@pytest.mark.parametrize("g,prior0", random_models(30, seed=4))
def test_drop_densities_follow_the_literal_algorithm(g: TwoGaussians, prior0: float) -> None:
    prior0 = float(np.clip(prior0, 0.01, 0.99))
    errors = g.class_risks(g.optimal_threshold(prior0))
    densities = np.array([0.05, 0.3, 0.5, 0.7, 0.9, 1.0])
    got = g.drop_densities(prior0, densities)
    for dens, row in zip(densities, got):
        np.testing.assert_allclose(row, literal_algorithm1([prior0, 1 - prior0], list(errors), dens), atol=1e-12)
    np.testing.assert_allclose(prior0 * got[:, 0] + (1 - prior0) * got[:, 1], densities, rtol=1e-13, atol=1e-15)
    assert np.all((got >= 0) & (got <= 1))


def test_drop_densities_are_proportional_to_errors_until_saturation() -> None:
    g = TwoGaussians(mu=(0.0, 2.0), sigma=(1.0, 1.5))
    errors = g.class_risks(g.optimal_threshold(0.5))
    low = g.drop_densities(0.5, 0.3)
    assert low[0] / low[1] == pytest.approx(errors[0] / errors[1])
    high = g.drop_densities(0.5, 0.95)
    assert high[np.argmax(errors)] == 1.0 and 0.5 * high.sum() == pytest.approx(0.95)


def test_drop_densities_with_zero_error_weight_spread_by_prior() -> None:
    """When t* = -inf class 1 has zero error: it gets nothing until class 0 saturates, then the rest."""
    g = TwoGaussians(mu=(-1.0, 1.0), sigma=(1.0, 2.0))
    assert g.optimal_threshold(0.2) == -np.inf
    np.testing.assert_allclose(g.drop_densities(0.2, 0.1), [0.5, 0.0])
    np.testing.assert_allclose(g.drop_densities(0.2, 0.5), [1.0, 0.3 / 0.8])
    all_zero = drop_class_densities(np.array([0.25, 0.75]), np.zeros(2), np.array([0.4]))
    np.testing.assert_allclose(all_zero, [[0.4, 0.4]])


@settings(max_examples=80, deadline=None)
@given(
    sizes=st.lists(st.floats(0.05, 1.0), min_size=2, max_size=5),
    errors=st.lists(st.one_of(st.just(0.0), st.floats(1e-6, 1.0)), min_size=5, max_size=5),
    density=st.floats(0.01, 1.0),
)
def test_algorithm1_properties(sizes: list[float], errors: list[float], density: float) -> None:
    priors = np.array(sizes) / sum(sizes)
    err = np.array(errors[: len(sizes)])
    d = drop_class_densities(priors, err, np.array(density))
    assert np.all((d >= 0) & (d <= 1))
    assert priors @ d == pytest.approx(density, rel=1e-12, abs=1e-14)
    np.testing.assert_allclose(d, literal_algorithm1(list(priors), list(err), density), atol=1e-12)
    perm = np.arange(len(sizes))[::-1]
    np.testing.assert_allclose(drop_class_densities(priors[perm], err[perm], np.array(density)), d[perm], atol=1e-12)


@pytest.mark.parametrize("g,prior0", random_models(20, seed=5))
def test_optimal_densities_beat_every_reachable_split(g: TwoGaussians, prior0: float) -> None:
    prior0 = float(np.clip(prior0, 0.01, 0.99))
    for density in [0.1, 0.5, 0.9]:
        best = g.optimal_densities(prior0, density)
        assert prior0 * best[0] + (1 - prior0) * best[1] == pytest.approx(density)
        worst = g.class_risks(g.optimal_threshold(g.pruned_prior(prior0, best))).max()
        d0 = np.linspace(max(0.0, (density - (1 - prior0)) / prior0), min(1.0, density / prior0), 2001)
        d1 = (density - prior0 * d0) / (1 - prior0)
        split = np.stack([d0, np.clip(d1, 0, 1)], axis=-1)[(d0 > 0) | (d1 > 0)]
        grid_worst = g.class_risks(g.optimal_threshold(g.pruned_prior(prior0, split))).max(axis=-1).min()
        assert worst <= grid_worst + 1e-9


# ---------------------------------------------------------------- SSP
@pytest.mark.parametrize("g,prior0", random_models(6, seed=6))
def test_ssp_risk_matches_integrated_pruned_densities(g: TwoGaussians, prior0: float) -> None:
    prior0 = float(np.clip(prior0, 0.01, 0.99))
    (mu0, mu1), (s0, s1) = g.mu, g.sigma
    margin = 0.7 * min(s0, s1)

    def mass(mu: float, s: float, lo: float, hi: float) -> float:
        """P(lo < x < hi, |x - mu| >= margin) by quadrature over the two kept pieces."""
        pieces = [(lo, min(hi, mu - margin)), (max(lo, mu + margin), hi)]
        return sum(integrate.quad(lambda x: stats.norm.pdf(x, mu, s), a, b)[0] for a, b in pieces if a < b)

    kept = prior0 * mass(mu0, s0, -np.inf, np.inf) + (1 - prior0) * mass(mu1, s1, -np.inf, np.inf)
    for t in [mu0 - 2 * s0, mu0, 0.5 * (mu0 + mu1), mu1 + 0.1, mu1 + 3 * s1]:
        expected = (prior0 * mass(mu0, s0, t, np.inf) + (1 - prior0) * mass(mu1, s1, -np.inf, t)) / kept
        assert g.ssp_risk(t, prior0, margin) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("g,prior0", random_models(60, seed=7))
def test_ssp_threshold_is_global_minimiser_of_the_pruned_risk(g: TwoGaussians, prior0: float) -> None:
    prior0 = float(np.clip(prior0, 0.01, 0.99))
    grid = t_grid(g, 40001)
    for margin in [0.0, 0.2 * g.sigma[0], 1.0 * max(g.sigma), 2.5 * max(g.sigma)]:
        t = g.ssp_threshold(prior0, margin)
        assert g.ssp_risk(t, prior0, margin) <= g.ssp_risk(grid, prior0, margin).min() + 1e-12


def test_ssp_threshold_examples_from_the_notes() -> None:
    """Worked example of the reconstruction: the argmin stays at t* for M = 0.25, jumps to 1.5 at M = 0.5 and to -2.0 at M = 1."""
    g = TwoGaussians(mu=(-1.0, 1.0), sigma=(1.0, 2.0))
    np.testing.assert_allclose(
        g.ssp_threshold(0.5, [0.0, 0.25, 0.5, 1.0]), [g.optimal_threshold(0.5), g.optimal_threshold(0.5), 1.5, -2.0]
    )


def test_ssp_prunes_the_easy_class_more_and_margin_inverts_density() -> None:
    g = TwoGaussians(mu=(-1.0, 1.0), sigma=(1.0, 2.0))
    kept = g.ssp_kept(0.5)
    assert kept[0] < kept[1]
    densities = np.array([0.05, 0.4, 0.99, 1.0])
    margins = g.ssp_margin(0.3, densities)
    k = g.ssp_kept(margins)
    np.testing.assert_allclose(0.3 * k[:, 0] + 0.7 * k[:, 1], densities, rtol=1e-12)
    assert margins[-1] == 0.0


# ---------------------------------------------------------------- invalid input
@pytest.mark.parametrize(
    "call,message",
    [
        (
            lambda: TwoGaussians(mu=(0, 1), sigma=(1, 0)),
            "The 'sigma' parameter of TwoGaussians must be a pair of floats > 0. Got (1, 0) instead.",
        ),
        (
            lambda: TwoGaussians(mu=(1, 1), sigma=(1, 1)),
            "The 'mu' parameter of TwoGaussians must be a pair (mu0, mu1) with mu0 < mu1. Got (1, 1) instead.",
        ),
        (
            lambda: TwoGaussians(mu=(0, np.nan), sigma=(1, 1)),
            "The 'mu' parameter of TwoGaussians must be a pair of finite floats. Got (0, nan) instead.",
        ),
        (
            lambda: TwoGaussians(mu=(0, 1), sigma=(1,)),
            "The 'sigma' parameter of TwoGaussians must be a pair of finite floats. Got (1,) instead.",
        ),
        (
            lambda: G.optimal_threshold(1.5),
            "The 'prior0' parameter of TwoGaussians.optimal_threshold must be a float in the range [0.0, 1.0]. Got 1.5 instead.",
        ),
        (
            lambda: G.average_risk(0.0, [0.5, -0.1]),
            "The 'prior0' parameter of TwoGaussians.average_risk must be a float in the range [0.0, 1.0]. Got -0.1 instead.",
        ),
        (
            lambda: G.class_risks(np.nan),
            "The 't' parameter of TwoGaussians.class_risks must be a float in the range [-inf, inf]. Got nan instead.",
        ),
        (
            lambda: G.drop_densities(0.5, 0.0),
            "The 'density' parameter of TwoGaussians.drop_densities must be a float in the range (0.0, 1.0]. Got 0.0 instead.",
        ),
        (
            lambda: G.drop_densities(1.0, 0.5),
            "The 'prior0' parameter of TwoGaussians.drop_densities must be a float in the range (0.0, 1.0). Got 1.0 instead.",
        ),
        (
            lambda: G.pruned_prior(0.5, (1.2, 1.0)),
            "The 'densities' parameter of TwoGaussians.pruned_prior must be a float in the range [0.0, 1.0]. Got 1.2 instead.",
        ),
        (
            lambda: G.pruned_prior(0.5, (0.0, 0.0)),
            "The 'densities' parameter of TwoGaussians.pruned_prior must keep some data (d0 or d1 > 0). Got (0.0, 0.0) instead.",
        ),
        (
            lambda: G.ssp_threshold(0.5, -0.1),
            "The 'margin' parameter of TwoGaussians.ssp_threshold must be a float in the range [0.0, inf). Got -0.1 instead.",
        ),
    ],
)
def test_invalid_parameters_raise_value_error_naming_them(call, message: str) -> None:
    with pytest.raises(ValueError) as info:
        call()
    assert str(info.value) == message


G = TwoGaussians(mu=(0.0, 1.0), sigma=(1.0, 1.0))
