"""Vega-Lite specs of the Mixture page: pure DataFrame -> dict builders, cheap enough for every slider move.

Each chart is an Altair template over *named* datasets, built once (memoised by its few layout arguments) and
serialised without schema validation; a rerun only drops the current rows into the spec's top-level ``datasets``
(Vega-Lite's named-data mechanism) as Arrow tables, which Streamlit sends as they are (rows as dicts cost it ~10 ms a
chart to convert), and the charts draw on a canvas, as on the Toy model page. Building the Altair objects and
serialising pandas frames was ~100 ms a chart; filling a template is ~1 ms plus the rows. The decision regions
travel as one PNG per rule (an image mark), not a square per lattice cell: 3200 squares took the browser 100-250 ms
to redraw. Hand the dict to ``st.vega_lite_chart``; ``app.theory_charts.to_json`` gives its JSON.
"""
from __future__ import annotations

import base64
import io
from functools import lru_cache

import altair as alt
import numpy as np
import pandas as pd
from PIL import Image

from app.theory_charts import USERMETA, arrow_table
from theory.mixture_explorer import Regions

RULE_COLORS = {
    "Full data": "#333333",
    "Your densities": "#9467BD",
    "Toy DRoP": "#D62728",
    "Worst-class optimum": "#2CA02C",
}
METHOD_COLORS = {"Random": "#7F7F7F", "Worst-class optimum": "#2CA02C"}
DROP_COLORS = ("#D62728", "#FF9896")
SAMPLE_COLORS = {
    "Random": "#7F7F7F", "Random+DRoP": "#D62728", "Logit adjustment": "#9467BD",
    "Margin": "#1F77B4", "Margin+DRoP": "#AEC7E8", "EL2N": "#FF7F0E", "EL2N+DRoP": "#FFBB78",
    "SSP": "#8C564B", "SSP+DRoP": "#C49C94",
}
METRICS = ("worst-class risk", "average risk")
# Vega's tableau10, class k in colour k (the circles' legend and the region images share it)
CLASS_COLORS = ("#4C78A8", "#F58518", "#E45756", "#72B7B2", "#54A24B", "#EECA3B", "#B279A2", "#FF9DA6", "#9D755D",
                "#BAB0AC")
REGION_ALPHA = 90          # region opacity (0-255): the circles and the other panel's regions stay readable


def _scale(colors: dict[str, str]) -> alt.Scale:
    return alt.Scale(domain=list(colors), range=list(colors.values()))


def _fill(template: dict, **frames: pd.DataFrame) -> dict:
    """The template with the rows as Arrow tables (as on the Toy model page; ``to_json`` gives the JSON)."""
    datasets = {name: arrow_table(f, list(f.columns)) for name, f in frames.items()}
    return {**template, "usermeta": USERMETA, "datasets": datasets}


@lru_cache(maxsize=4)
def _plane_template(rules: tuple[str, ...]) -> dict:
    axis = {"scale": alt.Scale(zero=False, nice=False)}
    x, y = alt.X("x:Q", title="x₁", **axis), alt.Y("y:Q", title="x₂", **axis)
    regions = alt.Chart(alt.NamedData("regions")).mark_image(aspect=False, smooth=False).encode(
        x=alt.X("x0:Q", title="x₁", **axis), x2="x1:Q", y=alt.Y("y0:Q", title="x₂", **axis), y2="y1:Q", url="url:N")
    lines = alt.Chart(alt.NamedData("rings")).mark_line(strokeWidth=1.3).encode(
        x=x, y=y, order="order:Q", detail=["class:N", "radius:N"],
        color=alt.Color("class:N", title="class", scale=alt.Scale(range=list(CLASS_COLORS))),
        strokeDash=alt.StrokeDash("radius:N", title="circle", scale=alt.Scale(range=[[1, 0], [4, 3]])))
    panels = [alt.layer(regions.transform_filter(alt.datum.rule == r), lines).properties(width=300, height=300,
                                                                                        title=r) for r in rules]
    return alt.hconcat(*panels).to_dict(validate=False)


def region_image(labels: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> tuple[str, tuple[float, float, float, float]]:
    """One rule's decision regions (class indices on the lattice ``xs`` x ``ys``) as a PNG data URL and its extent
    (x0, x1, y0, y1).

    A pixel per lattice cell in its class's colour (as the circles' legend) at REGION_ALPHA: one image mark draws in
    the browser in a fraction of the time of a square mark per cell, which was most of a density slider's latency.
    """
    rgba = np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)] + [REGION_ALPHA] for c in CLASS_COLORS], np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgba[labels[::-1]], "RGBA").save(buf, format="PNG")   # row 0 of an image is the top (largest y)
    dx, dy = (xs[-1] - xs[0]) / max(xs.size - 1, 1), (ys[-1] - ys[0]) / max(ys.size - 1, 1)
    extent = (xs[0] - dx / 2, xs[-1] + dx / 2, ys[0] - dy / 2, ys[-1] + dy / 2)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii"), tuple(map(float, extent))


def plane_spec(regions: Regions, circles: pd.DataFrame) -> dict:
    """Decision regions of each rule (one panel per rule, an image each) with each class's 1- and 2-std circles."""
    rows = []
    for rule, labels in regions.labels.items():
        url, (x0, x1, y0, y1) = region_image(labels, regions.xs, regions.ys)
        rows.append({"rule": rule, "url": url, "x0": x0, "x1": x1, "y0": y0, "y1": y1})
    return _fill(_plane_template(tuple(regions.labels)), regions=pd.DataFrame(rows), rings=circles)


@lru_cache(maxsize=1)
def _class_risk_template() -> dict:
    return alt.Chart(alt.NamedData("classes")).mark_bar().encode(
        x=alt.X("rule:N", title=None, axis=alt.Axis(labels=False, ticks=False), sort=list(RULE_COLORS)),
        y=alt.Y("risk:Q", title="class risk P(wrong | class)"),
        color=alt.Color("rule:N", scale=_scale(RULE_COLORS), title="rule", sort=list(RULE_COLORS)),
        column=alt.Column("class:O", title="class", spacing=4),
        tooltip=["rule:N", "class:O", alt.Tooltip("risk:Q", format=".3f"), alt.Tooltip("density:Q", format=".2f"),
                 alt.Tooltip("prior_after:Q", title="prior after pruning", format=".3f")],
    ).properties(width=34, height=220).to_dict(validate=False)


def class_risk_spec(classes: pd.DataFrame) -> dict:
    """Per-class risk bars, one colour per rule, grouped by class."""
    return _fill(_class_risk_template(), classes=classes)


@lru_cache(maxsize=16)
def _sweep_template(colors: tuple[tuple[str, str], ...], with_samples: bool) -> dict:
    scale = _scale(dict(colors))
    panels = []
    for metric in METRICS:
        keep = alt.datum.metric == metric
        lines = alt.Chart(alt.NamedData("sweep")).mark_line(point=True).encode(
            x=alt.X("density:Q", title="overall density d", scale=alt.Scale(domain=[0, 1])),
            y=alt.Y("risk:Q", title=metric), color=alt.Color("method:N", scale=scale, title="method"),
            tooltip=["method:N", "density:Q", alt.Tooltip("risk:Q", format=".3f")],
        ).transform_filter(keep)
        now = alt.Chart(alt.NamedData("now")).mark_rule(strokeDash=[4, 4], color="#999").encode(x="density:Q")
        layers = [lines, now]
        if with_samples:
            layers.append(alt.Chart(alt.NamedData("samples")).mark_point(shape="diamond", filled=True, size=70).encode(
                x="density:Q", y="mean:Q", color=alt.Color("method:N", scale=scale),
                tooltip=["method:N", alt.Tooltip("mean:Q", format=".3f"), alt.Tooltip("std:Q", format=".3f")],
            ).transform_filter(keep))
        panels.append(alt.layer(*layers).properties(width=280, height=240))
    return alt.hconcat(*panels).to_dict(validate=False)


def sweep_spec(sweep: pd.DataFrame, density: float, samples: pd.DataFrame | None = None) -> dict:
    """Worst-class and average risk against the overall density: exact curves, finite-sample means as diamonds."""
    names = list(dict.fromkeys(sweep["method"]))
    drops = [n for n in names if n.startswith("Toy DRoP")]
    colors = {**{n: METHOD_COLORS.get(n, "#000000") for n in names if n not in drops}, **dict(zip(drops, DROP_COLORS))}
    frames = {"sweep": sweep.dropna(), "now": pd.DataFrame({"density": [float(density)]})}
    if samples is not None and len(samples):
        colors.update({m: SAMPLE_COLORS[m] for m in dict.fromkeys(samples["method"])})
        frames["samples"] = samples
    return _fill(_sweep_template(tuple(colors.items()), "samples" in frames), **frames)


@lru_cache(maxsize=1)
def _finite_sample_template() -> dict:
    base = alt.Chart(alt.NamedData("summary")).encode(
        y=alt.Y("method:N", sort=list(SAMPLE_COLORS), title=None),
        color=alt.Color("method:N", scale=_scale(SAMPLE_COLORS), legend=None),
    )
    panels = []
    for metric in METRICS:
        keep = alt.datum.metric == metric
        bars = base.mark_errorbar(ticks=True).encode(x=alt.X("lo:Q", title=f"{metric} (mean ± std)"), x2="hi:Q")
        dots = base.mark_point(filled=True, size=70).encode(
            x="mean:Q", tooltip=["method:N", alt.Tooltip("mean:Q", format=".3f"), alt.Tooltip("std:Q", format=".3f")])
        panels.append(alt.layer(bars.transform_filter(keep), dots.transform_filter(keep)).properties(width=280,
                                                                                                     height=260))
    return alt.hconcat(*panels).to_dict(validate=False)


def finite_sample_spec(summary: pd.DataFrame) -> dict:
    """Mean worst-class and average risk of each finite-sample method with a +-1 std bar over repeats."""
    lo, hi = summary["mean"] - summary["std"], summary["mean"] + summary["std"]
    return _fill(_finite_sample_template(), summary=summary.assign(lo=np.maximum(lo, 0.0), hi=hi))
