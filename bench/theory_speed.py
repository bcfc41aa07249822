"""Theory page speed: the page's full exact recompute against a naive per-point scipy-optimiser version.

    python bench/theory_speed.py            # default page settings, well under a minute
    python bench/theory_speed.py --runs 50 --naive-runs 2

Exact: ``theory.explorer.explore`` (vectorised closed forms) - every number and curve the Theory page
shows except the finite-sample simulation, which the page caches by its own inputs.
Naive: the same frames computed point by point the way one would without the closed forms: t* by
``scipy.optimize.minimize_scalar`` (bounded) per prior against the trivial rules, the worst-class prior by
an outer ``minimize_scalar``, toy DRoP by the literal Algorithm 1 loop, the optimum at each density by a
``minimize_scalar`` over d0 around the inner t* optimiser, the SSP margin by ``brentq`` and the SSP
threshold by a 200-point grid refined by ``minimize_scalar``; risks by ``scipy.stats.norm``.
Both are timed in this process after one burn-in call; medians of wall-clock and of process CPU time are
reported (CPU time is the fairer figure on a shared machine). The naive answers are
compared with the exact ones (largest difference of any worst-class risk) so the two do the same work.
Also printed, for honesty: the time to build the four Altair charts and to run the default simulation.
The speed-up ratio is printed last.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import scipy
from scipy import optimize, stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app import theory_charts as charts  # noqa: E402
from theory.explorer import DENSITY_GRID, ExplorerParams, explore  # noqa: E402
from theory.mixture_explorer import MixtureParams, explore_mixture  # noqa: E402
from theory.model import TwoGaussians  # noqa: E402
from theory.simulate import simulate, summarize_simulation  # noqa: E402
from theory.sweeps import ratio_grid  # noqa: E402


class Naive:
    """Point-by-point numerics for one model, no closed forms beyond the normal CDF."""

    def __init__(self, g: TwoGaussians) -> None:
        (self.mu0, self.mu1), (self.s0, self.s1) = g.mu, g.sigma
        self.lo = min(self.mu0 - 10 * self.s0, self.mu1 - 10 * self.s1)
        self.hi = max(self.mu0 + 10 * self.s0, self.mu1 + 10 * self.s1)

    def risks(self, t: float) -> tuple[float, float]:
        return float(stats.norm.sf(t, self.mu0, self.s0)), float(stats.norm.cdf(t, self.mu1, self.s1))

    def avg(self, t, p: float):
        return p * stats.norm.sf(t, self.mu0, self.s0) + (1 - p) * stats.norm.cdf(t, self.mu1, self.s1)

    def t_star(self, p: float) -> float:
        if p <= 0 or p >= 1:
            return -np.inf if p <= 0 else np.inf
        grid = np.linspace(self.lo, self.hi, 41)   # coarse look first, so the optimiser starts in the right basin
        start = grid[np.argmin(self.avg(grid, p))]
        step = grid[1] - grid[0]
        res = optimize.minimize_scalar(lambda t: self.avg(t, p), bounds=(start - step, start + step), method="bounded",
                                       options={"xatol": 1e-10})
        cands = [(res.fun, res.x), (p, -np.inf), (1 - p, np.inf)]
        return min(cands, key=lambda c: c[0])[1]

    def worst(self, p: float) -> float:
        return max(self.risks(self.t_star(p)))

    def worst_prior(self) -> float:
        res = optimize.minimize_scalar(self.worst, bounds=(1e-3, 1 - 1e-3), method="bounded", options={"xatol": 1e-8})
        return float(res.x)

    def algorithm1(self, p: float, errors: tuple[float, float], density: float) -> list[float]:
        sizes, d, unsat, excess = [p, 1 - p], [0.0, 0.0], {0, 1}, density
        while excess > 1e-15 and unsat:
            z = sum(sizes[k] * errors[k] for k in unsat)
            share = {k: (errors[k] / z if z > 0 else 1 / sum(sizes[j] for j in unsat)) for k in unsat}
            budget, excess = excess, 0.0
            for k in sorted(unsat):
                d[k] += budget * share[k]
                if d[k] > 1:
                    excess += sizes[k] * (d[k] - 1)
                    d[k] = 1.0
                    unsat.discard(k)
        return d

    def best_split(self, p: float, density: float) -> float:
        """Worst-class risk of the best random within-class split at this density (optimiser over d0)."""
        lo, hi = max(0.0, (density - (1 - p)) / p), min(1.0, density / p)

        def worst_at(d0: float) -> float:
            d1 = (density - p * d0) / (1 - p)
            return self.worst(p * d0 / (p * d0 + (1 - p) * d1))

        res = optimize.minimize_scalar(worst_at, bounds=(lo, hi), method="bounded", options={"xatol": 1e-9})
        return min(res.fun, worst_at(lo), worst_at(hi))

    def ssp_mass(self, t, p: float, m: float):
        err0 = np.maximum(0.0, stats.norm.cdf(self.mu0 - m, self.mu0, self.s0) - stats.norm.cdf(t, self.mu0, self.s0)) \
            + stats.norm.sf(np.maximum(t, self.mu0 + m), self.mu0, self.s0)
        err1 = stats.norm.cdf(np.minimum(t, self.mu1 - m), self.mu1, self.s1) \
            + np.maximum(0.0, stats.norm.cdf(t, self.mu1, self.s1) - stats.norm.cdf(self.mu1 + m, self.mu1, self.s1))
        return p * err0 + (1 - p) * err1

    def ssp_t(self, p: float, m: float) -> float:
        grid = np.linspace(self.lo, self.hi, 200)
        start = grid[np.argmin(self.ssp_mass(grid, p, m))]
        step = grid[1] - grid[0]
        res = optimize.minimize_scalar(
            lambda t: self.ssp_mass(t, p, m), bounds=(start - step, start + step), method="bounded"
        )
        cands = [(res.fun, res.x), (self.ssp_mass(-np.inf, p, m), -np.inf), (self.ssp_mass(np.inf, p, m), np.inf)]
        return min(cands, key=lambda c: c[0])[1]

    def ssp_margin(self, p: float, density: float) -> float:
        if density >= 1:
            return 0.0
        kept = lambda m: p * 2 * stats.norm.sf(m / self.s0) + (1 - p) * 2 * stats.norm.sf(m / self.s1) - density  # noqa: E731
        return optimize.brentq(kept, 0.0, 40 * max(self.s0, self.s1), xtol=1e-12)


def naive_page_data(params: ExplorerParams) -> dict[str, np.ndarray]:
    """The worst-class risks of every rule and curve the page shows, computed point by point."""
    g = params.model()
    nv, p = Naive(g), params.prior0
    full_t = nv.t_star(p)
    full_err = nv.risks(full_t)
    out: dict[str, list[float]] = {"rules": [], "ratio": [], "Random": [], "SSP": [], "Toy DRoP": [], "Optimum": []}
    prior_star = nv.worst_prior()
    drop_d = nv.algorithm1(p, full_err, params.density)
    yours = p * params.d0 / (p * params.d0 + (1 - p) * params.d1)
    drop_prior = p * drop_d[0] / (p * drop_d[0] + (1 - p) * drop_d[1])
    out["rules"] = [nv.worst(p), nv.worst(yours), nv.worst(prior_star), nv.worst(drop_prior),
                    max(nv.risks(nv.ssp_t(p, params.margin)))]
    for r in ratio_grid(g, p):
        out["ratio"].append(nv.worst(p * r / (p * r + 1 - p)))
    for d in DENSITY_GRID:
        out["Random"].append(nv.worst(p))
        dd = nv.algorithm1(p, full_err, d)
        out["Toy DRoP"].append(nv.worst(p * dd[0] / (p * dd[0] + (1 - p) * dd[1])))
        out["Optimum"].append(nv.best_split(p, d))
        out["SSP"].append(max(nv.risks(nv.ssp_t(p, nv.ssp_margin(p, d)))))
    return {k: np.asarray(v) for k, v in out.items()}


def exact_page_data(params: ExplorerParams) -> dict[str, np.ndarray]:
    ex = explore(params)
    by_method = {m: f["worst_class_risk"].to_numpy() for m, f in ex.density.groupby("method", sort=False)}
    return {
        "rules": ex.rules["worst_class_risk"].to_numpy(),
        "ratio": ex.ratio["worst_class_risk"].to_numpy(),
        **by_method,
    }


def timed(fn, runs: int, *, burn_in: bool = True) -> tuple[float, float]:
    """Median wall-clock and median process CPU seconds of ``runs`` calls (after one burn-in call)."""
    if burn_in:
        fn()
    wall, cpu = [], []
    for _ in range(runs):
        w, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - w)
        cpu.append(time.process_time() - c)
    return statistics.median(wall), statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="timed runs of the exact recompute (median reported)")
    parser.add_argument("--naive-runs", type=int, default=1, help="timed runs of the naive version (median reported)")
    args = parser.parse_args()
    params = ExplorerParams()

    print(f"# theory_speed  python {platform.python_version()}  numpy {np.__version__}  scipy {scipy.__version__}  "
          f"pandas {pd.__version__}  {platform.processor() or platform.machine()}  cpus={os.cpu_count()}  "
          f"load={os.getloadavg()[0]:.1f}")
    print(f"# settings: {params}")
    print(f"# runs: exact {args.runs}, naive {args.naive_runs} (each after one burn-in call; medians)")

    exact, naive = exact_page_data(params), naive_page_data(params)   # also the burn-in of both versions
    diff = max(float(np.max(np.abs(exact[k] - naive[k]))) for k in exact)
    print(f"largest |exact - naive| over all worst-class risks shown: {diff:.2e}")

    e_wall, e_cpu = timed(lambda: explore(params), args.runs)
    print(
        f"exact page recompute (explore):           wall {e_wall * 1e3:9.2f} ms  cpu {e_cpu * 1e3:9.2f} ms"
        "  (budget per slider move: 20 ms)"
    )
    ex = explore(params)
    summary = summarize_simulation(simulate(params.model(), params.prior0, 500, repeats=20, seed=0))
    c_wall, c_cpu = timed(lambda: [charts.to_json(c) for c in (
        charts.class_density_chart(ex.curves, ex.bands, ex.rules), charts.ratio_risk_chart(ex.ratio, ex.ratio_marks),
        charts.density_risk_chart(ex.density, params.density), charts.finite_sample_chart(summary, ex.density))], 3)
    print(
        f"build + serialise the 4 chart specs:      wall {c_wall * 1e3:9.2f} ms  cpu {c_cpu * 1e3:9.2f} ms"
        "  (outside the 20 ms budget)"
    )
    s_wall, s_cpu = timed(lambda: simulate(params.model(), params.prior0, 500, repeats=20, seed=0), 3)
    print(
        f"finite-sample simulation (n=500, 20 rep.): wall {s_wall * 1e3:9.2f} ms  cpu {s_cpu * 1e3:9.2f} ms"
        "  (cached by the page)"
    )
    mix = MixtureParams()
    moves = iter(np.linspace(0.2, 1.0, 1000))    # a density slider moving: the model-level parts stay memoised
    moved = lambda p: replace(p, densities=(next(moves),) + p.densities[1:])  # noqa: E731
    m_wall, m_cpu = timed(lambda: explore_mixture(moved(mix)), args.runs)
    print(f"Mixture page recompute (K={mix.k}, p=2):   wall {m_wall * 1e3:9.2f} ms  cpu {m_cpu * 1e3:9.2f} ms  (50 ms)")
    gauss = MixtureParams(k=10, layout=1, stds=tuple(np.linspace(0.6, 1.6, 10)), weights=(1.0,) * 10,
                          densities=(1.0,) * 10)
    g_wall, g_cpu = timed(lambda: explore_mixture(moved(gauss)), 3)
    print(f"Mixture recompute, gaussians (K=10, p=16): wall {g_wall * 1e3:9.2f} ms  cpu {g_cpu * 1e3:9.2f} ms")
    n_wall, n_cpu = timed(lambda: naive_page_data(params), args.naive_runs, burn_in=False)
    print(f"naive per-point scipy-optimiser version:  wall {n_wall * 1e3:9.2f} ms  cpu {n_cpu * 1e3:9.2f} ms")
    print(f"speed-up in wall-clock time: {n_wall / e_wall:.0f}x")
    print(
        f"speed-up of the exact recompute over the naive version (CPU time, robust to other load): {n_cpu / e_cpu:.0f}x"
    )


if __name__ == "__main__":
    main()
