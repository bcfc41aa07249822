"""Theory page: the paper's two-Gaussian toy model (Section 4), exact, with every slider live.

Read the sliders (state in the URL), call ``theory.explorer.explore`` (once per rerun, memoised), chart, render.
The outputs are four fragments (:data:`DRAWS`), and a slider move reruns only those whose numbers it changes.
The finite-sample simulation is the only slow part; it is cached by its own inputs (model, prior, n, repeats,
seed), so moving a pruning slider never re-runs it.
"""

from __future__ import annotations

from dataclasses import fields
from functools import lru_cache

import numpy as np
import pandas as pd
import streamlit as st

from app import theory_charts as charts
from app import url_state
from app.errors import guard
from app.rule_table import HEADLINE, rule_table
from app.url_state import Param
from theory.explorer import Exploration, ExplorerParams, explore
from theory.simulate import simulate, summarize_simulation

SCHEMA: url_state.Schema = (
    Param("mu0", float, 0.0, -3.0, 3.0, 0.1, "Mean of class 0 (μ0)"),
    Param("mu1", float, 3.0, -3.0, 6.0, 0.1, "Mean of class 1 (μ1)", "Must be larger than μ0."),
    Param("sigma0", float, 1.0, 0.2, 4.0, 0.05, "Std of class 0 (σ0)"),
    Param(
        "sigma1", float, 1.5, 0.2, 4.0, 0.05, "Std of class 1 (σ1)", "The class with the larger std is the harder one."
    ),
    Param(
        "prior0",
        float,
        0.5,
        0.02,
        0.98,
        0.01,
        "Prior of class 0 (φ0)",
        "Imbalance: the share of class 0 in the full data.",
    ),
    Param(
        "d0", float, 1.0, 0.02, 1.0, 0.01, "Class-0 density d0", "Random pruning within class 0 keeps this fraction."
    ),
    Param(
        "d1", float, 1.0, 0.02, 1.0, 0.01, "Class-1 density d1", "Random pruning within class 1 keeps this fraction."
    ),
    Param(
        "density",
        float,
        0.5,
        0.05,
        1.0,
        0.01,
        "Overall density d (toy DRoP)",
        "Fraction of all data that toy DRoP keeps.",
    ),
    Param(
        "margin", float, 0.5, 0.0, 4.0, 0.05, "SSP margin M", "SSP removes every point within M of its own class mean."
    ),
    Param("n", int, 500, 50, 5000, 50, "Sample size n", "Training points drawn per repeat in the finite-sample check."),
    Param("repeats", int, 20, 2, 100, 1, "Repeats", "Independent draws of n points (the spread in the last chart)."),
    Param("seed", int, 0, 0, 9999, 1, "Seed", "Seed of the finite-sample draws."),
)
MODEL_KEYS = tuple(f.name for f in fields(ExplorerParams))
MODEL = ("mu0", "mu1", "sigma0", "sigma1", "prior0")   # the two classes: every output depends on them
RULES, RATIO, SWEEP, FINITE = "toy_rules", "toy_ratio", "toy_sweep", "toy_finite"   # the page's output fragments
# Fragment -> the sliders besides MODEL whose move changes what it draws; a move reruns only those fragments, so the
# browser redraws only the charts whose numbers changed (a class density leaves sections 3 and 4 as they are).
DRAWS: dict[str, tuple[str, ...]] = {
    RULES: ("d0", "d1", "density", "margin"),
    RATIO: ("d0", "d1", "density"),
    SWEEP: ("density",),
    FINITE: ("n", "repeats", "seed"),
}


def reruns(name: str) -> list[str]:
    """The fragments a move of slider ``name`` reruns."""
    return [key for key, names in DRAWS.items() if name in MODEL or name in names]

_HARD = dict(mu0=0.0, mu1=3.0, sigma0=1.0, sigma1=1.5, prior0=0.5)
_WIDE = dict(mu0=-1.0, mu1=1.0, sigma0=1.0, sigma1=2.0, prior0=0.5)
PRESETS: dict[str, tuple[str, dict[str, float]]] = {
    "Hard class needs more data": (
        "Class 1 is 1.5x wider. Keeping only 2/3 of class 0 (d0 = 0.67) and all of class 1 moves the prior to "
        "σ0/(σ0+σ1) = 0.4 and equalises the class risks: the worst class gets better with less data.",
        dict(_HARD, d0=0.67, d1=1.0, density=0.8, margin=0.5),
    ),
    "Toy DRoP overshoots": (
        "The class errors of the full-data rule are very unequal. At d = 0.4 DRoP's densities, "
        "proportional to those errors, shift the prior so far that predicting class 1 everywhere (t = −∞) "
        "becomes optimal: the worst-class risk jumps to 1.",
        dict(_WIDE, d0=1.0, d1=1.0, density=0.4, margin=0.25),
    ),
    "SSP prunes the easy class yet gains nothing": (
        "SSP removes a larger share of the narrow class 0 than of class 1, so the priors shift towards the hard "
        "class, yet the threshold does not move: outside the bands the pruned risk has the same slope as the full one.",
        dict(_WIDE, d0=1.0, d1=1.0, density=0.8, margin=0.25),
    ),
    "SSP with wide bands jumps to a band edge": (
        "With M = 1 the pruned risk is smallest at the edge of class 0's band (t = −2): inside a band only "
        "the other class has data, so the minimiser can jump there and class 0 loses badly.",
        dict(_WIDE, d0=1.0, d1=1.0, density=0.8, margin=1.0),
    ),
    "Trivial rule beats the std-proportional prior": (
        "Heavy overlap and very unequal widths: at the prior σ0/(σ0+σ1) = 1/7 predicting class 1 everywhere "
        "is optimal, so the best worst-class prior (the optimum's φ0') must be found numerically.",
        dict(mu0=0.0, mu1=0.5, sigma0=0.5, sigma1=3.0, prior0=0.5, d0=1.0, d1=1.0, density=0.5, margin=0.3),
    ),
    "Imbalanced classes": (
        "Equal widths but 85% of the data is class 0: the minority class 1 pays most. Pruning class 0 to "
        "d0 = 0.18 rebalances the priors and brings both classes to about the same risk; "
        "toy DRoP moves part of the way.",
        dict(mu0=0.0, mu1=2.0, sigma0=1.0, sigma1=1.0, prior0=0.85, d0=0.18, d1=1.0, density=0.5, margin=0.3),
    ),
    "Nothing to fix": (
        "Equal widths and balanced classes: the full-data rule already has equal class risks. Every class-aware "
        "method keeps the balance, and no pruning can lower the worst-class risk.",
        dict(mu0=0.0, mu1=2.0, sigma0=1.0, sigma1=1.0, prior0=0.5, d0=1.0, d1=1.0, density=0.5, margin=0.3),
    ),
}


def apply_preset(name: str) -> None:
    """Button callback: set the preset's sliders (the others keep their values)."""
    st.session_state.update(PRESETS[name][1])
    st.session_state["theory_preset"] = name


def controls_ui() -> None:
    """Presets and sliders in the sidebar.

    A slider move reruns only the fragments of :func:`reruns`: the app's frame, the sidebar, the static text and
    the charts it does not change are neither rerun on the server nor redrawn in the browser. A preset button
    reruns the app, so that its sliders show their new values.
    """
    by_name = {p.name: p for p in SCHEMA}
    with st.sidebar:
        st.subheader("Presets")
        for name, (text, _) in PRESETS.items():
            st.button(name, help=text, on_click=apply_preset, args=(name,), width="stretch")
        for title, names in (
            ("Two classes", ("mu0", "mu1", "sigma0", "sigma1", "prior0")),
            ("Pruning", ("d0", "d1", "density", "margin")),
            ("Finite samples", ("n", "repeats", "seed")),
        ):
            st.subheader(title)
            for name in names:
                url_state.slider(by_name[name], on_change=url_state.rerun_fragment(*reruns(name)))


def preset_note_ui(values: dict[str, float | int]) -> None:
    """Explain the last preset while its settings are still the ones shown."""
    name = st.session_state.get("theory_preset")
    if name in PRESETS and all(np.isclose(values[k], v) for k, v in PRESETS[name][1].items()):
        st.info(f"**{name}.** {PRESETS[name][0]}")


def _threshold_text(t: float) -> str:
    if np.isinf(t):
        return "−∞ (always class 1)" if t < 0 else "+∞ (always class 0)"
    return f"{t:.3f}"


def rule_table_ui(ex: Exploration) -> None:
    """The worst-class risk of each rule, live, with its threshold, kept fraction and class-0 prior."""
    st.markdown(HEADLINE)
    st.markdown(rule_table(ex.rules.to_dict("records"), [
        ("Threshold t", lambda r: _threshold_text(r["threshold"])),
        ("Class-0 prior after pruning φ0'", lambda r: f"{r['pruned_prior0']:.3f}"),
    ]))


@st.fragment(key=RULES)
def rules_ui() -> None:
    """The preset's note, the rule table and section 1's chart."""
    values = url_state.synced(SCHEMA)
    try:
        ex = exploration(values)
    except ValueError as err:
        st.error(f"These sliders do not describe a valid model: {err} Move the sliders back into range.")
        return
    preset_note_ui(values)
    rule_table_ui(ex)
    st.subheader("1 · Two classes, one threshold")
    st.vega_lite_chart(charts.class_density_chart(ex.curves, ex.bands, ex.rules), width="stretch")
    removed = dict(zip(ex.bands["class"], ex.bands["removed"]))
    st.markdown(
        "Each hill is one class, its area equal to its prior; a rule *t* predicts class 1 right of *t*. "
        "The full-data rule sits where the two hills cross (Eq. 3), not where both classes err equally, so one "
        "class (the wider or the rarer one) pays more. The shaded bands are what SSP removes "
        f"(margin {values['margin']:.2f}: {removed['class 0']:.0%} of class 0, {removed['class 1']:.0%} of class 1)."
    )


@st.fragment(key=RATIO)
def ratio_ui() -> None:
    """Section 2: the class risks against d0/d1, with the rules' ratios marked."""
    if (ex := _valid(url_state.synced(SCHEMA))) is None:
        return
    st.vega_lite_chart(charts.ratio_risk_chart(ex.ratio, ex.ratio_marks), width="stretch")
    best = dict(zip(ex.ratio_marks["rule"], ex.ratio_marks["ratio"]))["Worst-class optimum"]
    st.markdown(
        "Pruning a class at random keeps its hill's shape and only rescales the priors, so only the ratio "
        "d0/d1 matters. Pruning a class more moves *t* towards it: its risk rises and the other class's falls. "
        f"The worst-class risk is lowest where the two class risks cross, here at d0/d1 = {best:.3f} "
        "(priors proportional to the class stds, unless a trivial rule takes over)."
    )


@st.fragment(key=SWEEP)
def density_ui() -> None:
    """Section 3's chart: the risks against the overall density, the current one marked."""
    values = url_state.synced(SCHEMA)
    if (ex := _valid(values)) is not None:
        st.vega_lite_chart(charts.density_risk_chart(ex.density, values["density"]), width="stretch")


@st.cache_data(max_entries=16, show_spinner="Simulating finite samples…")
def simulation_summary(
    mu0: float, mu1: float, sigma0: float, sigma1: float, prior0: float, n: int, repeats: int, seed: int
) -> pd.DataFrame:
    """Mean and spread of the finite-sample risks (cached by its inputs only)."""
    g = ExplorerParams(mu0=mu0, mu1=mu1, sigma0=sigma0, sigma1=sigma1, prior0=prior0).model()
    return summarize_simulation(simulate(g, prior0, n, repeats=repeats, seed=seed))


@st.fragment(key=FINITE)
def finite_sample_ui() -> None:
    """Section 4: the finite-sample simulation (cached by its own inputs) over the exact curves."""
    values = url_state.synced(SCHEMA)
    if (ex := _valid(values)) is None:
        return
    keys = ("mu0", "mu1", "sigma0", "sigma1", "prior0", "n", "repeats", "seed")
    summary = simulation_summary(*(values[k] for k in keys))
    st.vega_lite_chart(charts.finite_sample_chart(summary, ex.density), width="stretch")
    st.markdown(
        f"Each repeat draws {values['n']} points, prunes them (SSP by distance to its class's sample mean, DRoP "
        "with the class errors of a threshold fitted on all points) and fits *t* by exact empirical risk "
        "minimisation. Estimation noise only adds risk: with small samples it can swamp the bias that class "
        "quotas remove, and it grows as the kept set shrinks."
    )


def formulas_ui() -> None:
    with st.expander("The formulas behind the page"):
        st.markdown(
            r"""
Class $k$: $x \sim \mathcal N(\mu_k, \sigma_k^2)$, prior $\varphi_k$; rule $t$ predicts class 1 iff $x > t$.

* **Risk (Eq. 1):** $R_0(t) = \Phi\big(\tfrac{\mu_0 - t}{\sigma_0}\big)$,
  $R_1(t) = \Phi\big(\tfrac{t-\mu_1}{\sigma_1}\big)$,
  $R(t) = \varphi_0 R_0(t) + \varphi_1 R_1(t)$, with $R(-\infty) = \varphi_0$ and $R(+\infty) = \varphi_1$.
* **Optimal threshold (Eq. 3):** $\partial R/\partial t = 0$ is a quadratic with roots
  $t_\pm = \dfrac{\mu_0\sigma_1^2 - \mu_1\sigma_0^2 \pm \sigma_0\sigma_1\sqrt{\Delta}}{\sigma_1^2-\sigma_0^2}$,
  $\Delta = (\mu_1-\mu_0)^2 + 2(\sigma_1^2-\sigma_0^2)\log\frac{\varphi_0\sigma_1}{\varphi_1\sigma_0}$.
  A finite minimum exists iff $\Delta \ge 0$ (**Eq. 6**); it is $t_+$ and must still beat the trivial rules
  $t=\pm\infty$.
* **Worst-class optimum:** the class risks are equal at $t = \frac{\sigma_1\mu_0 + \sigma_0\mu_1}{\sigma_0+\sigma_1}$,
  the average-risk minimiser for $\varphi_0 = \frac{\sigma_0}{\sigma_0+\sigma_1}$: priors proportional to the stds.
* **Random pruning** with class densities $d_k$ only rescales priors:
  $\varphi_0' = \frac{\varphi_0 d_0}{\varphi_0 d_0 + \varphi_1 d_1}$.
* **Toy DRoP (Algorithm 1):** $d_k \propto R_k(t^*)$, capped at 1, with $\sum_k \varphi_k d_k = d$.
* **SSP:** removes $|x-\mu_k| < M$ from class $k$ (a fraction $2\Phi(M/\sigma_k) - 1$); the threshold minimises
  the risk on what remains, evaluated exactly at $t^*$, the band edges and $\pm\infty$.
"""
        )


def main() -> None:
    st.title("Why pruning hurts a class, and how class quotas repair it")
    st.caption(
        "The toy model of DRoP (Vysogorets, Ahuja & Kempe, ICLR 2025, Section 4): two Gaussian classes on a "
        "line and a threshold classifier. Every number below is exact and recomputed on each slider move."
    )
    for problem in url_state.init_state(SCHEMA):
        st.warning(problem)
    controls_ui()
    rules_ui()
    st.subheader("2 · Random pruning only changes the priors")
    ratio_ui()
    st.subheader("3 · Pruning methods against the overall density")
    density_ui()
    st.markdown(
        "Random pruning keeps the priors, so its risks never change. The optimum reaches the worst-class "
        "prior once enough data is pruned; toy DRoP sets densities proportional to the full-data class errors, "
        "which helps at high density, where the hard class saturates at 1, but can overshoot at low density. "
        "SSP prunes the easy class more, yet its threshold stays put while it lies outside the bands, and "
        "jumps to a band edge when the bands grow."
    )
    st.subheader("4 · Finite samples against the exact curves")
    finite_sample_ui()
    formulas_ui()


@lru_cache(maxsize=16)
def _explore(params: ExplorerParams) -> Exploration:
    return explore(params)


def exploration(values: dict[str, float | int]) -> Exploration:
    """The exact numbers for the sliders' ``values``, computed once for all fragments of a rerun (memoised)."""
    return _explore(ExplorerParams(**{k: values[k] for k in MODEL_KEYS}))


def _valid(values: dict[str, float | int]) -> Exploration | None:
    """The exploration, or None when the sliders are invalid (the rule-table fragment then says why)."""
    try:
        return exploration(values)
    except ValueError:
        return None


# Every page: Streamlit runs the file as "__main__" (importing it, as tests do, draws nothing), and
# ``guard`` turns any fault into one st.error (see app/errors.py).
if __name__ == "__main__":
    with guard():
        main()
