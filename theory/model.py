"""The paper's toy model (DRoP, Section 4 / Appendix B): two 1-D Gaussian classes and threshold rules.

Class k has x ~ N(mu_k, sigma_k^2) with mu0 < mu1 and prior phi_k (phi0 = ``prior0``, phi1 = 1 - prior0).
A rule t in R or {-inf, +inf} predicts class 1 iff x > t. Every function is a closed form, vectorised
over its array arguments. The paper's typeset equations were not recoverable; equation numbers follow the
reconstruction that the Toy model page's formulas panel shows (``app/pages/toy_model.py``, ``formulas_ui``).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy.special import ndtr

from theory._checks import check_in_range, check_pair, scalar_or_array
from theory.algorithm1 import drop_class_densities

_OWNER = "TwoGaussians"


@dataclass(frozen=True)
class TwoGaussians:
    """Two univariate Gaussian classes: class k is N(mu[k], sigma[k]**2), mu[0] < mu[1], sigma > 0."""

    mu: tuple[float, float]
    sigma: tuple[float, float]

    def __post_init__(self) -> None:
        mu = check_pair(self.mu, "mu", _OWNER)
        sigma = check_pair(self.sigma, "sigma", _OWNER)
        if min(sigma) <= 0:
            raise ValueError(
                f"The 'sigma' parameter of {_OWNER} must be a pair of floats > 0. Got {self.sigma!r} instead."
            )
        if mu[0] >= mu[1]:
            raise ValueError(
                f"The 'mu' parameter of {_OWNER} must be a pair (mu0, mu1) with mu0 < mu1. Got {self.mu!r} instead."
            )
        object.__setattr__(self, "mu", mu)
        object.__setattr__(self, "sigma", sigma)

    # ------------------------------------------------------------------ risks (Eq. 1)
    def class_risks(self, t: float | np.ndarray) -> np.ndarray:
        """Class-wise risks (Eq. 1) of the rule ``t``: array ``t.shape + (2,)`` of (P(x > t | 0), P(x <= t | 1)).

        ``t`` may contain -inf (predict 1 everywhere) and +inf (predict 0 everywhere).
        """
        t = check_in_range(t, "t", f"{_OWNER}.class_risks", -np.inf, np.inf)
        return self._class_risks(t)

    def average_risk(self, t: float | np.ndarray, prior0: float | np.ndarray) -> float | np.ndarray:
        """Statistical risk R(t) = prior0 R0(t) + (1 - prior0) R1(t) (Eq. 1); broadcasts ``t`` against ``prior0``."""
        t = check_in_range(t, "t", f"{_OWNER}.average_risk", -np.inf, np.inf)
        p = check_in_range(prior0, "prior0", f"{_OWNER}.average_risk", 0.0, 1.0)
        return scalar_or_array(self._average_risk(t, p))

    # ------------------------------------------------------------------ average-risk minimiser (Eq. 3 / Eq. 6)
    def eq6_discriminant(self, prior0: float | np.ndarray) -> float | np.ndarray:
        """(mu1-mu0)^2 + 2 (s1^2-s0^2) log(prior0 s1 / ((1-prior0) s0)): a finite stationary point iff >= 0 (Eq. 6)."""
        p = check_in_range(prior0, "prior0", f"{_OWNER}.eq6_discriminant", 0.0, 1.0, lo_open=True, hi_open=True)
        return scalar_or_array(self._discriminant(p))

    def optimal_threshold(self, prior0: float | np.ndarray) -> float | np.ndarray:
        """Global minimiser t*(prior0) of the average risk over R and {-inf, +inf}.

        The only finite local minimum is the root of dR/dt = 0 where the sign changes from - to + (Eq. 3:
        the larger root if sigma1 > sigma0, the smaller if sigma0 > sigma1, the midpoint formula if they are
        equal); it exists iff Eq. 6 holds. It competes with the trivial rules R(-inf) = prior0 and
        R(+inf) = 1 - prior0; on a tie the finite rule wins.
        """
        p = check_in_range(prior0, "prior0", f"{_OWNER}.optimal_threshold", 0.0, 1.0)
        return scalar_or_array(self._optimal_threshold(p))

    # ------------------------------------------------------------------ worst-class optimum (B.2)
    def worst_class_prior(self) -> float:
        """The prior0 whose average-risk minimiser has the smallest worst-class risk max(R0, R1).

        This is s0 / (s0 + s1) (the class risks are then equal) when t* at that prior is finite. Otherwise the
        trivial rule wins there (worst-class risk 1); the optimum is then the prior nearest to it at which a
        finite t* is still globally optimal, found by vectorised bisection towards 1/2 (where t* is always finite) and
        returned 1e-9 inside that region, so that round-off in later arithmetic cannot flip the rule.
        """
        return self._worst_class_prior

    @cached_property
    def _worst_class_prior(self) -> float:
        s0, s1 = self.sigma
        p = s0 / (s0 + s1)
        if np.isfinite(self._optimal_threshold(np.asarray(p))):
            return p
        infeasible, feasible = p, 0.5
        for _ in range(20):  # each round: 33 points from the infeasible to the feasible end, keep the bracketing pair
            grid = np.linspace(infeasible, feasible, 33)
            first = int(np.argmax(np.isfinite(self._optimal_threshold(grid))))  # grid[0] is infeasible, so first >= 1
            if (grid[first - 1], grid[first]) == (infeasible, feasible):
                break  # float resolution reached
            infeasible, feasible = grid[first - 1], grid[first]
        return float(feasible + np.sign(0.5 - feasible) * 1e-9)

    # ------------------------------------------------------------------ pruning
    def pruned_prior(
        self, prior0: float | np.ndarray, densities: np.ndarray | tuple[float, float]
    ) -> float | np.ndarray:
        """Class-0 prior after random within-class pruning keeping fractions ``densities = (d0, d1)`` (last axis).

        prior0' = prior0 d0 / (prior0 d0 + (1 - prior0) d1); the class-conditional densities do not change.
        """
        owner = f"{_OWNER}.pruned_prior"
        p = check_in_range(prior0, "prior0", owner, 0.0, 1.0, lo_open=True, hi_open=True)
        d = check_in_range(densities, "densities", owner, 0.0, 1.0)
        if d.shape[-1:] != (2,):
            raise ValueError(
                f"The 'densities' parameter of {owner} must have a last axis of length 2. Got shape {d.shape} instead."
            )
        kept0, kept1 = p * d[..., 0], (1 - p) * d[..., 1]
        total = kept0 + kept1
        if np.any(total <= 0):
            raise ValueError(
                f"The 'densities' parameter of {owner} must keep some data (d0 or d1 > 0). Got {densities!r} instead."
            )
        return scalar_or_array(kept0 / total)

    def drop_densities(self, prior0: float | np.ndarray, density: float | np.ndarray) -> np.ndarray:
        """Toy DRoP: class densities ``density.shape + (2,)`` from Algorithm 1 with error weights R_k(t*(prior0)).

        The query model is the full-data optimum t*(prior0); class k's validation error is its exact risk.
        Densities saturate at 1 and prior0 d0 + (1 - prior0) d1 == density; if every unsaturated class has
        zero error, the rest of the budget is spread by prior (equal densities).
        """
        owner = f"{_OWNER}.drop_densities"
        p = float(check_in_range(prior0, "prior0", owner, 0.0, 1.0, lo_open=True, hi_open=True))
        d = check_in_range(density, "density", owner, 0.0, 1.0, lo_open=True)
        errors = self._class_risks(self._optimal_threshold(np.asarray(p)))
        return drop_class_densities(np.array([p, 1 - p]), errors, d)

    def optimal_densities(self, prior0: float | np.ndarray, density: float | np.ndarray) -> np.ndarray:
        """Worst-class-optimal class densities ``shape + (2,)`` at overall ``density`` (B.2).

        Random within-class pruning reaches the priors prior0' in [max(0, 1 - (1-prior0)/density),
        min(1, prior0/density)]; the worst-class risk of t*(prior0') is quasi-convex in prior0', so the best
        reachable prior is ``worst_class_prior()`` clipped to that interval.
        """
        owner = f"{_OWNER}.optimal_densities"
        p = check_in_range(prior0, "prior0", owner, 0.0, 1.0, lo_open=True, hi_open=True)
        d = check_in_range(density, "density", owner, 0.0, 1.0, lo_open=True)
        lo = np.maximum(0.0, 1.0 - (1.0 - p) / d)
        hi = np.minimum(1.0, p / d)
        target = np.clip(self.worst_class_prior(), lo, hi)
        d0 = np.minimum(1.0, target * d / p)
        d1 = np.minimum(1.0, (1.0 - target) * d / (1.0 - p))
        return np.stack(np.broadcast_arrays(d0, d1), axis=-1)

    # ------------------------------------------------------------------ SSP (supervised margin pruning, B.3)
    def ssp_kept(self, margin: float | np.ndarray) -> np.ndarray:
        """Fraction of each class left after removing |x - mu_k| < margin, 2 Phi(-margin/sigma_k).

        Shape ``margin.shape + (2,)``.
        """
        m = check_in_range(margin, "margin", f"{_OWNER}.ssp_kept", 0.0, np.inf, hi_open=True)
        return self._ssp_kept(m)

    def ssp_margin(self, prior0: float | np.ndarray, density: float | np.ndarray) -> float | np.ndarray:
        """The margin at which SSP keeps the overall fraction ``density`` of the data (vectorised).

        The kept fraction f(M) = sum_k phi_k 2 Phi(-M/sigma_k) is decreasing and convex in M, so Newton's
        method started left of the root (from a table of f) climbs to it monotonically.
        """
        owner = f"{_OWNER}.ssp_margin"
        p = check_in_range(prior0, "prior0", owner, 0.0, 1.0, lo_open=True, hi_open=True)
        d = check_in_range(density, "density", owner, 0.0, 1.0, lo_open=True)
        p, d = np.broadcast_arrays(p, d)
        s0, s1 = self.sigma

        def excess(m: np.ndarray) -> np.ndarray:
            kept = self._ssp_kept(m)
            return p * kept[..., 0] + (1 - p) * kept[..., 1] - d

        table = np.linspace(0.0, 12.0 * max(s0, s1), 257)
        kept = self._ssp_kept(table)
        kept_table = p[..., None] * kept[:, 0] + (1 - p[..., None]) * kept[:, 1]
        m = table[np.maximum((kept_table >= d[..., None]).sum(axis=-1) - 1, 0)]   # last table point left of the root
        for _ in range(8):
            slope = -(p * 2 * np.exp(-0.5 * (m / s0) ** 2) / (s0 * np.sqrt(2 * np.pi))
                      + (1 - p) * 2 * np.exp(-0.5 * (m / s1) ** 2) / (s1 * np.sqrt(2 * np.pi)))
            step = np.divide(excess(m), slope, out=np.zeros(m.shape), where=slope < 0)
            m = m - step
        return scalar_or_array(np.where(d >= 1.0, 0.0, m))

    def ssp_risk(
        self, t: float | np.ndarray, prior0: float | np.ndarray, margin: float | np.ndarray
    ) -> float | np.ndarray:
        """Average risk of rule ``t`` on the SSP-pruned distribution (|x - mu_k| < margin removed, renormalised)."""
        owner = f"{_OWNER}.ssp_risk"
        t = check_in_range(t, "t", owner, -np.inf, np.inf)
        p = check_in_range(prior0, "prior0", owner, 0.0, 1.0, lo_open=True, hi_open=True)
        m = check_in_range(margin, "margin", owner, 0.0, np.inf, hi_open=True)
        kept = self._ssp_kept(m)
        mass = p * kept[..., 0] + (1 - p) * kept[..., 1]
        return scalar_or_array(self._ssp_error_mass(t, p, m) / mass)

    def ssp_threshold(self, prior0: float | np.ndarray, margin: float | np.ndarray) -> float | np.ndarray:
        """Global minimiser of the risk on the SSP-pruned distribution; broadcasts ``prior0`` against ``margin``.

        Where both classes keep density, dR/dt is the unpruned one, so the only interior local minimum is the
        unpruned stationary point (Eq. 3); inside a band only one class has density (R monotone) or none
        (R flat). The minimiser is therefore among t*, the four band edges mu_k +- margin and +-inf, and the
        risk is evaluated exactly at each. It can jump to a band edge when the margin is large.
        """
        owner = f"{_OWNER}.ssp_threshold"
        p = check_in_range(prior0, "prior0", owner, 0.0, 1.0, lo_open=True, hi_open=True)
        m = check_in_range(margin, "margin", owner, 0.0, np.inf, hi_open=True)
        p, m = np.broadcast_arrays(p, m)
        (mu0, mu1) = self.mu
        stationary = self._stationary_min(p)
        cands = np.stack(
            [stationary, mu0 - m, mu0 + m, mu1 - m, mu1 + m, np.full(p.shape, -np.inf), np.full(p.shape, np.inf)],
            axis=-1,
        )
        safe = np.where(np.isnan(cands), 0.0, cands)
        mass = self._ssp_error_mass(safe, p[..., None], m[..., None])
        mass = np.where(np.isnan(cands), np.inf, mass)
        best = np.argmin(mass, axis=-1)
        return scalar_or_array(np.take_along_axis(cands, best[..., None], axis=-1)[..., 0])

    # ------------------------------------------------------------------ private closed forms (no checks)
    def _class_risks(self, t: np.ndarray) -> np.ndarray:
        (mu0, mu1), (s0, s1) = self.mu, self.sigma
        return np.stack([ndtr((mu0 - t) / s0), ndtr((t - mu1) / s1)], axis=-1)

    def _average_risk(self, t: np.ndarray, p: np.ndarray) -> np.ndarray:
        r = self._class_risks(t)
        return p * r[..., 0] + (1 - p) * r[..., 1]

    def _discriminant(self, p: np.ndarray) -> np.ndarray:
        (mu0, mu1), (s0, s1) = self.mu, self.sigma
        with np.errstate(divide="ignore"):
            log_ratio = np.log(p * s1) - np.log((1 - p) * s0)
        return (mu1 - mu0) ** 2 + 2 * (s1**2 - s0**2) * log_ratio

    def _stationary_min(self, p: np.ndarray) -> np.ndarray:
        """The root of dR/dt = 0 where R has a local minimum (Eq. 3); NaN where Eq. 6 fails or prior0 is 0 or 1."""
        (mu0, mu1), (s0, s1) = self.mu, self.sigma
        a = s1**2 - s0**2
        b = mu0 * s1**2 - mu1 * s0**2
        with np.errstate(divide="ignore", invalid="ignore"):
            log_ratio = np.log(p * s1) - np.log((1 - p) * s0)
            disc = (mu1 - mu0) ** 2 + 2 * a * log_ratio
            root = s0 * s1 * np.sqrt(np.where(disc > 0, disc, np.nan))
            c = mu0**2 * s1**2 - mu1**2 * s0**2 - 2 * s0**2 * s1**2 * log_ratio
            # (b + root) / a, written without cancellation when b <= 0 (always so near a == 0).
            t = np.where(b <= 0, c / (b - root), (b + root) / (a if a != 0 else np.nan))
        inner = (p > 0) & (p < 1)
        return np.where(inner & np.isfinite(t), t, np.nan)

    def _optimal_threshold(self, p: np.ndarray) -> np.ndarray:
        stationary = self._stationary_min(p)
        cands = np.stack([stationary, np.full(p.shape, -np.inf), np.full(p.shape, np.inf)], axis=-1)
        risk = self._average_risk(np.where(np.isnan(cands), 0.0, cands), p[..., None])
        risk = np.where(np.isnan(cands), np.inf, risk)
        best = np.argmin(risk, axis=-1)
        return np.take_along_axis(cands, best[..., None], axis=-1)[..., 0]

    def _ssp_kept(self, m: np.ndarray) -> np.ndarray:
        s0, s1 = self.sigma
        return np.stack([2 * ndtr(-m / s0), 2 * ndtr(-m / s1)], axis=-1)

    def _ssp_error_mass(self, t: np.ndarray, p: np.ndarray, m: np.ndarray) -> np.ndarray:
        """Unnormalised risk on the pruned distribution: p P0(x > t, |x-mu0| >= m) + (1-p) P1(x <= t, |x-mu1| >= m)."""
        (mu0, mu1), (s0, s1) = self.mu, self.sigma
        err0 = np.maximum(0.0, ndtr(-m / s0) - ndtr((t - mu0) / s0)) + ndtr((mu0 - np.maximum(t, mu0 + m)) / s0)
        err1 = ndtr((np.minimum(t, mu1 - m) - mu1) / s1) + np.maximum(0.0, ndtr((t - mu1) / s1) - ndtr(m / s1))
        return p * err0 + (1 - p) * err1
