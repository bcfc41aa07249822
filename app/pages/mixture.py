"""Mixture page: the toy model's questions asked of K Gaussian classes, with one density slider per class.

Read the sliders (state in the URL, via ``app.url_state``), call ``theory.mixture_explorer.explore_mixture`` once,
fill the prebuilt chart templates of ``app.mixture_charts`` and render. The finite-sample study is the only slow
part: it runs in the background (``app.mixture_study``), keyed by its own inputs, which no density slider touches,
and the page draws it when it is done.
"""
from __future__ import annotations

from concurrent.futures import Future
from dataclasses import replace

import numpy as np
import pandas as pd
import streamlit as st

from app import mixture_charts as charts
from app import url_state
from app.errors import guard, show_error
from app.mixture_study import STUDIES, StudyKey
from app.rule_table import HEADLINE, rule_table
from app.url_state import Param
from theory.mixture import GAUSSIANS_SPREAD
from theory.mixture_explorer import LAYOUTS, MAX_CLASSES, MixtureParams, explore_mixture, explore_sweep
from theory.mixture_sim import CLASSIFIERS, SIM_DENSITIES

CLASSIFIER_NAMES = tuple(CLASSIFIERS)
SCHEMA: url_state.Schema = (
    Param("k", int, 5, 2, MAX_CLASSES, 1, "Number of classes K"),
    Param("layout", int, 0, 0, len(LAYOUTS) - 1, 1, "Layout", " · ".join(f"{i}: {n}" for i, n in enumerate(LAYOUTS))),
    *(Param(f"std{j}", float, 1.6 if j == 0 else 0.8, 0.2, 3.0, 0.05, f"Std of class {j}") for j in range(MAX_CLASSES)),
    *(Param(f"w{j}", float, 1.0, 0.05, 1.0, 0.05, f"Prior weight of class {j}",
            "Class priors are these weights, normalised.") for j in range(MAX_CLASSES)),
    *(Param(f"cd{j}", float, 1.0, 0.02, 1.0, 0.01, f"Density of class {j}",
            "Random pruning within this class keeps this fraction.") for j in range(MAX_CLASSES)),
    Param("drop_d", float, 0.5, 0.05, 1.0, 0.01, "Overall density d (toy DRoP)", "Fraction of all data DRoP keeps."),
    Param("tau", float, 1.0, 0.0, 1.0, 0.05, "DRoP strength τ", "Error weights R_k**τ; 1: paper, 0: uniform."),
    Param("samples", int, 1000, 200, 5000, 100, "Sample size n", "Training points drawn per repeat."),
    Param("reps", int, 5, 1, 20, 1, "Repeats", "Independent draws (the spread in the last chart)."),
    Param("sim_seed", int, 0, 0, 9999, 1, "Seed", "Seed of the finite-sample draws."),
    Param("clf", int, 0, 0, len(CLASSIFIER_NAMES) - 1, 1, "Classifier",
          " · ".join(f"{i}: {n}" for i, n in enumerate(CLASSIFIER_NAMES))),
)
BY_NAME = {p.name: p for p in SCHEMA}
EXACT, STUDY = "mixture_exact", "mixture_study"   # the fragments slider moves rerun: the exact numbers, the study
POLL_S = 0.25                # how often a page waiting for its finite-sample study looks for it
# Widget keys are the parameter names and live in one session for all pages, so none may repeat a Toy model key.


def _preset(k: int, layout: int, stds, weights=None, densities=None, density: float = 0.5) -> dict[str, float | int]:
    stds, weights = list(stds), list(weights or [1.0] * k)
    densities = list(densities or [1.0] * k)
    out: dict[str, float | int] = {"k": k, "layout": layout, "drop_d": density}
    for j in range(k):
        out.update({f"std{j}": round(float(stds[j]), 2), f"w{j}": weights[j], f"cd{j}": densities[j]})
    return out


PRESETS: dict[str, tuple[str, dict[str, float | int]]] = {
    "One hard class among easy ones": (
        "Class 0 is twice as wide as the rest. The full-data rule gives it the worst risk; DRoP keeps more of it.",
        _preset(5, 0, [1.6, 0.8, 0.8, 0.8, 0.8]),
    ),
    "Ten classes like CIFAR-10": (
        "Ten classes on a ring with stds from 0.6 to 1.2: a spread of class difficulty as in a real data set.",
        _preset(10, 0, np.linspace(0.6, 1.2, 10)),
    ),
    "A rare class": (
        "Equal widths, but class 0 has a tenth of the others' weight: the rare class pays for it.",
        _preset(4, 0, [1.0] * 4, [0.1, 1.0, 1.0, 1.0]),
    ),
    "DRoP overshoots": (
        "Very unequal widths and a low overall density: densities proportional to the errors can prune the easy "
        "classes so hard that they become the worst.",
        _preset(3, 0, [0.4, 0.5, 2.0], density=0.2),
    ),
    "The `gaussians` dataset": (
        "The exact 16-D mixture the Experiment page trains on (10 orthogonal means at distance 3, stds from "
        f"{GAUSSIANS_SPREAD[0]} to {GAUSSIANS_SPREAD[1]}); the Full data bars are each class's best possible accuracy "
        "loss for balanced classes.",
        _preset(10, 1, np.linspace(*GAUSSIANS_SPREAD, 10)),
    ),
}


def apply_preset(name: str) -> None:
    """Button callback: set the preset's sliders (the others keep their values)."""
    st.session_state.update(PRESETS[name][1])
    st.session_state["mixture_preset"] = name


def controls_ui() -> None:
    """Presets and sliders in the sidebar (per-class sliders only for the K classes shown).

    A slider move reruns only the fragments that depend on it, as on the Toy model page: a class density the exact
    part, a sample setting the study part, the model and toy DRoP's settings both. The number of classes reruns the
    app, since it changes which sliders the sidebar shows, and so does a preset button.
    """
    moved = url_state.rerun_fragment(EXACT, STUDY)
    exact, study = url_state.rerun_fragment(EXACT), url_state.rerun_fragment(STUDY)
    with st.sidebar:
        st.subheader("Presets")
        for name, (text, _) in PRESETS.items():
            st.button(name, help=text, on_click=apply_preset, args=(name,), width="stretch")
        st.subheader("Classes")
        k = url_state.slider(BY_NAME["k"])
        url_state.slider(BY_NAME["layout"], on_change=moved)
        st.subheader("Class densities (random pruning)")
        for j in range(k):
            url_state.slider(BY_NAME[f"cd{j}"], on_change=exact)
        with st.expander("Class stds and priors"):
            for j in range(k):
                url_state.slider(BY_NAME[f"std{j}"], on_change=moved)
                url_state.slider(BY_NAME[f"w{j}"], on_change=moved)
        st.subheader("Toy DRoP")
        url_state.slider(BY_NAME["drop_d"], on_change=moved)
        url_state.slider(BY_NAME["tau"], on_change=moved)
        st.subheader("Finite samples")
        for name in ("samples", "reps", "sim_seed", "clf"):
            url_state.slider(BY_NAME[name], on_change=study)


def params_of(values: dict[str, float | int]) -> MixtureParams:
    k = int(values["k"])
    return MixtureParams(
        k=k, layout=int(values["layout"]),
        stds=tuple(float(values[f"std{j}"]) for j in range(k)),
        weights=tuple(float(values[f"w{j}"]) for j in range(k)),
        densities=tuple(float(values[f"cd{j}"]) for j in range(k)),
        density=float(values["drop_d"]), strength=float(values["tau"]),
    )


def rule_table_ui(summary: pd.DataFrame) -> None:
    st.markdown(HEADLINE)
    st.markdown(rule_table(summary.to_dict("records")))


def main() -> None:
    st.title("K Gaussian classes: who pays for pruning, and what class quotas do")
    st.caption(
        "The toy model's questions asked of a K-class Gaussian mixture, in the plane or in the 16-D `gaussians` "
        "dataset. Class risks are computed numerically to about 1e-3 (see the README) on every slider move."
    )
    for problem in url_state.init_state(SCHEMA):
        st.warning(problem)
    controls_ui()
    exact_ui()
    study_ui()


@st.fragment(key=EXACT)
def exact_ui() -> None:
    """The rule table, the plane and the class-risk bars (and the URL): what a class-density move reruns."""
    values = url_state.synced(SCHEMA)
    params = params_of(values)
    try:
        ex = explore_mixture(params)
    except ValueError as err:
        st.error(f"These sliders do not describe a valid mixture: {err} Move the sliders back into range.")
        return
    name = st.session_state.get("mixture_preset")
    if name in PRESETS and all(np.isclose(values[k], v) for k, v in PRESETS[name][1].items()):
        st.info(f"**{name}.** {PRESETS[name][0]}")
    rule_table_ui(ex.summary)

    st.subheader("1 · Decision regions move as you prune")
    if ex.regions is None:
        st.markdown("The `gaussians` layout lives in 16 dimensions, so there is no plane to draw; the bars below "
                    "carry the same information class by class.")
    else:
        st.vega_lite_chart(charts.plane_spec(ex.regions, ex.circles), width="content")
        st.markdown(
            "Each colour is the region the rule assigns to a class; the circles are each class's 1- and 2-std "
            "contours. Pruning a class at random only lowers its prior, so its region shrinks and the points near "
            "its border go to its neighbours: compare the two panels while you move a density slider."
        )

    st.subheader("2 · Class risks of each rule")
    st.vega_lite_chart(charts.class_risk_spec(ex.classes), width="content")
    drop = ex.classes[ex.classes["rule"] == "Toy DRoP"]["density"].to_numpy()
    st.markdown(
        "A class's risk is the chance that the rule misclassifies one of its points. Toy DRoP keeps class densities "
        f"proportional to the full-data errors (here {', '.join(f'{d:.2f}' for d in drop)}), which lifts the worst "
        "classes; the worst-class optimum is the least favourable prior, where all class risks are equal."
    )


@st.fragment(key=STUDY)
def study_ui() -> None:
    """The density sweep with the finite-sample study (and the URL): what a sample-setting move reruns."""
    values = url_state.synced(SCHEMA)
    params = params_of(values)
    try:
        sweep, reach = explore_sweep(params)
    except ValueError:
        return                                   # the exact part above says what is wrong with the sliders
    st.subheader("3 · Pruning methods against the overall density")
    model_only = replace(params, densities=(1.0,) * params.k, density=1.0)   # no density slider reruns the study
    clf = CLASSIFIER_NAMES[int(values["clf"])]
    study = STUDIES.request(StudyKey(model_only, int(values["samples"]), int(values["reps"]), int(values["sim_seed"]),
                                     clf))
    summary = study.result() if study.done() and study.exception() is None else None
    scored = None if summary is None else summary[summary["method"].isin(["Margin", "EL2N", "SSP", "Random+DRoP"])]
    st.vega_lite_chart(charts.sweep_spec(sweep, params.density, scored), width="content")
    st.markdown(
        "Random pruning keeps the priors, so its exact risks are flat. The optimum is reachable by random pruning "
        f"once the overall density is at most {reach:.2f}; toy DRoP moves towards it and can "
        "overshoot at low density. The diamonds are finite-sample means: score-based pruning keeps the hardest "
        "points and leaves the classifier more biased."
    )

    st.subheader("4 · Finite samples with spread")
    if not study.done():
        st.info(f"Simulating finite samples in the background: {values['reps']} repeats of {values['samples']} "
                f"points, {clf} refitted for every method at densities {', '.join(map(str, SIM_DENSITIES))}. "
                "The diamonds above and the chart here appear when it is done; the exact numbers need not wait.")
        _wait_for(study)
        return
    if summary is None:
        show_error(study.exception(), stop=False)
        return
    st.vega_lite_chart(charts.finite_sample_spec(summary[np.isclose(summary["density"], _nearest(params.density))]),
                       width="content")
    st.markdown(
        f"At density {_nearest(params.density):.1f}: each repeat draws {values['samples']} points, fits "
        f"{clf} on the kept ones and scores it exactly. *Logit adjustment* keeps "
        "all the data and only shifts the rule by log d_k, which in the population equals random pruning to d: "
        "its gap to Random+DRoP is what throwing data away costs."
    )


@st.fragment(run_every=POLL_S)
def _wait_for(study: Future) -> None:
    """Poll the study while it runs; once it is done, rerun the app so that sections 3 and 4 draw it.

    (A fragment body may only rerun itself or the app; a keyed rerun of ``STUDY`` needs a widget callback.)"""
    if study.done():
        st.rerun()


def _nearest(density: float) -> float:
    return float(min(SIM_DENSITIES, key=lambda d: abs(d - density)))


# Every page: Streamlit runs the file as "__main__" (importing it, as tests do, draws nothing), and
# ``guard`` turns any fault into one st.error (see app/errors.py).
if __name__ == "__main__":
    with guard():
        main()
