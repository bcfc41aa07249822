"""Altair charts of the toy model: pure DataFrame -> chart builders, one per figure of the Theory page.

Inputs are the frames of :mod:`theory.explorer` and :mod:`theory.simulate`. Infinite thresholds (the
trivial rules) cannot be drawn; they are named in the chart's subtitle instead.
"""
from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

CLASS_COLORS = {"class 0": "#4C78A8", "class 1": "#F58518"}
RULE_COLORS = {
    "Full data": "#333333",
    "Your class densities": "#9467BD",
    "Worst-class optimum": "#2CA02C",
    "Toy DRoP": "#D62728",
    "SSP": "#8C564B",
}
RULE_DASHES = {
    "Full data": [1, 0],
    "Your class densities": [2, 2],
    "Worst-class optimum": [7, 3],
    "Toy DRoP": [9, 3, 2, 3],
    "SSP": [1, 3],
}
METHOD_COLORS = {"Random": "#7F7F7F", "SSP": RULE_COLORS["SSP"], "Toy DRoP": RULE_COLORS["Toy DRoP"], "Optimum": RULE_COLORS["Worst-class optimum"]}
QUANTITIES = {"risk_class0": "class 0", "risk_class1": "class 1", "average_risk": "average", "worst_class_risk": "worst class"}
QUANTITY_COLORS = {"class 0": CLASS_COLORS["class 0"], "class 1": CLASS_COLORS["class 1"], "average": "#7F7F7F", "worst class": "#000000"}
METRIC_TITLES = {"worst_class_risk": "worst-class risk", "average_risk": "average risk"}


def _scale(colors: dict[str, str]) -> alt.Scale:
    return alt.Scale(domain=list(colors), range=list(colors.values()))


def _off_chart(rules: pd.DataFrame) -> str:
    """Subtitle naming the rules whose threshold is infinite (a trivial rule predicting one class everywhere)."""
    parts = []
    for rule, t in zip(rules["rule"], rules["threshold"]):
        if t == -np.inf:
            parts.append(f"{rule}: t = −∞ (always class 1)")
        elif t == np.inf:
            parts.append(f"{rule}: t = +∞ (always class 0)")
    return "Off the chart — " + "; ".join(parts) if parts else ""


def class_density_chart(curves: pd.DataFrame, bands: pd.DataFrame, rules: pd.DataFrame) -> alt.LayerChart:
    """Prior-weighted class densities, the SSP bands and each rule's threshold as a vertical line.

    ``curves``: x, class, density; ``bands``: class, lo, hi, removed; ``rules``: rule, threshold, worst_class_risk.
    """
    x = alt.X("x:Q", title="x", scale=alt.Scale(zero=False))
    hills = alt.Chart(curves).mark_area(opacity=0.35, line=True).encode(
        x=x,
        y=alt.Y("density:Q", title="prior × class density"),
        color=alt.Color("class:N", scale=_scale(CLASS_COLORS), title="class"),
    )
    band = alt.Chart(bands[bands["hi"] > bands["lo"]]).mark_rect(opacity=0.12).encode(
        x="lo:Q",
        x2="hi:Q",
        color=alt.Color("class:N", scale=_scale(CLASS_COLORS), legend=None),
        tooltip=["class:N", alt.Tooltip("removed:Q", format=".1%", title="removed by SSP")],
    )
    finite = rules.loc[np.isfinite(rules["threshold"]), ["rule", "threshold", "worst_class_risk"]]
    lines = alt.Chart(finite).mark_rule(strokeWidth=2.5).encode(
        x=alt.X("threshold:Q"),
        color=alt.Color("rule:N", scale=_scale(RULE_COLORS), title="rule"),
        strokeDash=alt.StrokeDash("rule:N", scale=alt.Scale(domain=list(RULE_DASHES), range=list(RULE_DASHES.values())), legend=None),
        tooltip=["rule:N", alt.Tooltip("threshold:Q", format=".3f", title="t"), alt.Tooltip("worst_class_risk:Q", format=".3f")],
    )
    title = alt.TitleParams("Class densities and thresholds (predict class 1 right of t)", subtitle=_off_chart(rules))
    return alt.layer(band, hills, lines).resolve_scale(color="independent").properties(height=300, title=title)


def ratio_risk_chart(ratio: pd.DataFrame, marks: pd.DataFrame) -> alt.LayerChart:
    """Class-wise, average and worst-class risk against d0/d1 (log axis), with the marked rules' ratios.

    ``ratio``: ratio + the four risk columns; ``marks``: rule, ratio, worst_class_risk.
    """
    long = ratio.melt(id_vars="ratio", value_vars=list(QUANTITIES), var_name="quantity", value_name="risk")
    long["quantity"] = long["quantity"].map(QUANTITIES)
    domain = [float(ratio["ratio"].min()), float(ratio["ratio"].max())]
    x = alt.X("ratio:Q", title="class-0 density ratio d0 / d1 (log scale)", scale=alt.Scale(type="log", domain=domain, nice=False))
    curves = alt.Chart(long).mark_line().encode(
        x=x,
        y=alt.Y("risk:Q", title="risk on the original distribution", scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("quantity:N", scale=_scale(QUANTITY_COLORS), title="risk"),
        strokeWidth=alt.condition("datum.quantity == 'worst class'", alt.value(3), alt.value(1.5)),
        tooltip=[alt.Tooltip("ratio:Q", format=".3f"), "quantity:N", alt.Tooltip("risk:Q", format=".3f")],
    )
    rule_color = alt.Color("rule:N", scale=_scale({r: RULE_COLORS[r] for r in marks["rule"]}), title="marked")
    rules = alt.Chart(marks).mark_rule(strokeDash=[4, 3]).encode(x=x, color=rule_color)
    dots = alt.Chart(marks).mark_point(filled=True, size=90).encode(
        x=x,
        y="worst_class_risk:Q",
        color=rule_color,
        tooltip=["rule:N", alt.Tooltip("ratio:Q", format=".3f"), alt.Tooltip("worst_class_risk:Q", format=".3f")],
    )
    title = "Random pruning within classes: risk against the class-0 density ratio"
    return alt.layer(curves, rules, dots).resolve_scale(color="independent").properties(height=300, title=title)


def _metric_panel(df: pd.DataFrame, metric: str, width: int) -> alt.Chart:
    return alt.Chart(df).mark_line(strokeWidth=2).encode(
        x=alt.X("density:Q", title="overall density (fraction kept)", scale=alt.Scale(domain=[0, 1])),
        y=alt.Y(f"{metric}:Q", title=METRIC_TITLES[metric], scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("method:N", scale=_scale(METHOD_COLORS), title="method"),
        tooltip=["method:N", alt.Tooltip("density:Q", format=".2f"), alt.Tooltip(f"{metric}:Q", format=".3f")],
    ).properties(width=width, height=280, title=METRIC_TITLES[metric])


def density_risk_chart(density: pd.DataFrame, current: float, width: int = 330) -> alt.HConcatChart:
    """Worst-class and average risk against overall density, one line per method; ``current`` density marked.

    ``density``: method, density and the risk columns (``theory.sweeps.risk_vs_density``).
    """
    data = density[["method", "density", *METRIC_TITLES]]
    marker = alt.Chart(pd.DataFrame({"density": [current]})).mark_rule(color="#999999", strokeDash=[3, 3]).encode(x="density:Q")
    panels = [alt.layer(_metric_panel(data, metric, width), marker) for metric in METRIC_TITLES]
    return alt.hconcat(*panels).properties(title="Exact risk against overall density")


def finite_sample_chart(summary: pd.DataFrame, exact: pd.DataFrame, width: int = 330) -> alt.HConcatChart:
    """Finite-sample mean (dots) and min-max over repeats (bars) per method, over the exact curves (lines).

    ``summary``: method, density, metric, mean, min, max (``theory.simulate.summarize_simulation``);
    ``exact``: the density sweep. Methods are nudged apart on the x axis so their bars do not overlap.
    """
    methods = list(METHOD_COLORS)
    nudge = {m: (i - (len(methods) - 1) / 2) * 0.012 for i, m in enumerate(methods)}
    sim = summary[summary["metric"].isin(list(METRIC_TITLES))][["method", "density", "metric", "mean", "min", "max"]]
    sim = sim.assign(x=sim["density"] + sim["method"].map(nudge))
    lines = exact[["method", "density", *METRIC_TITLES]]
    color = alt.Color("method:N", scale=_scale(METHOD_COLORS), title="method")
    panels = []
    for metric, title in METRIC_TITLES.items():
        part = sim[sim["metric"] == metric]
        exact_line = _metric_panel(lines, metric, width).mark_line(strokeWidth=1.2, opacity=0.6)
        bars = alt.Chart(part).mark_rule().encode(x="x:Q", y="min:Q", y2="max:Q", color=color)
        dots = alt.Chart(part).mark_point(filled=True, size=40).encode(
            x="x:Q",
            y="mean:Q",
            color=color,
            tooltip=["method:N", alt.Tooltip("density:Q", format=".2f"), alt.Tooltip("mean:Q", format=".3f"),
                     alt.Tooltip("min:Q", format=".3f"), alt.Tooltip("max:Q", format=".3f")],
        )
        panels.append(alt.layer(exact_line, bars, dots).properties(title=title))
    return alt.hconcat(*panels).properties(title="Finite samples (dots: mean, bars: min–max over repeats) against the exact curves")
