"""Altair charts of run results: pure DataFrame -> ``alt.Chart`` builders, one per figure.

Each builder takes a frame from :mod:`app.results_data` and returns a chart; each has a one-line
reading guide in ``READING_GUIDE`` that the pages print under it.
"""
from __future__ import annotations

import math

import altair as alt
import pandas as pd

READING_GUIDE: dict[str, str] = {
    "class_accuracy": "Each group is one class; bars compare full data with each pruned method, and the "
    "outlined bar (▼) is that method's worst class. A class whose pruned bars sit far below its full-data bar "
    "is one that pruning hurt.",
    "density_curves": "Left: average accuracy, right: worst-class accuracy, against the fraction of data kept "
    "(full data at 1). Bands span min to max over seeds; a line higher in the right panel protects the worst "
    "class better.",
    "bias": "Each point is one class. A positive r means the method keeps more data of classes the full-data "
    "model finds hard (DRoP does this by design); r near 0 or negative means pruning ignores class difficulty.",
    "quota": "How the budget was split: quota = training samples kept per class. "
    "A class with quota 0 is never seen by the final model.",
    "examples": "Training images of one class the method kept (top) and pruned (bottom).",
}

_ACCURACY = alt.Scale(domain=[0, 1])


def _method_color(methods: list[str]) -> alt.Color:
    return alt.Color("method:N", title="method", scale=alt.Scale(domain=methods), sort=methods)


def class_accuracy_chart(df: pd.DataFrame, methods: list[str]) -> alt.Chart:
    """Grouped bars of per-class test accuracy, one bar per method; each method's worst class outlined.

    ``df`` has columns ``method, class_index, class_name, accuracy, worst`` (``results_data.class_accuracy``).
    """
    classes = df.sort_values("class_index")["class_name"].drop_duplicates().tolist()
    base = alt.Chart(df).encode(
        x=alt.X("class_name:N", title="class", sort=classes),
        xOffset=alt.XOffset("method:N", sort=methods),
        y=alt.Y("accuracy:Q", title="test accuracy", scale=_ACCURACY),
        tooltip=["method:N", "class_name:N", alt.Tooltip("accuracy:Q", format=".3f")],
    )
    bars = base.mark_bar().encode(
        color=_method_color(methods),
        stroke=alt.condition("datum.worst", alt.value("black"), alt.value(None)),
        strokeWidth=alt.condition("datum.worst", alt.value(2), alt.value(0)),
    )
    worst = base.transform_filter("datum.worst").mark_text(text="▼", dy=-8, color="black")
    return (bars + worst).properties(height=300, title="Per-class test accuracy")


def density_curves_chart(df: pd.DataFrame, methods: list[str]) -> alt.FacetChart:
    """Accuracy against density, one line per method, min/max band over seeds; one panel per metric.

    ``df`` has columns ``method, density, metric, mean, min, max, seeds`` (``results_data.density_curves``).
    """
    color = _method_color(methods)
    x = alt.X("density:Q", title="dataset density (fraction kept)", scale=alt.Scale(domain=[0, 1]))
    band = alt.Chart().mark_area(opacity=0.2).encode(x=x, y="min:Q", y2="max:Q", color=color)
    line = alt.Chart().mark_line(point=True).encode(
        x=x,
        y=alt.Y("mean:Q", title="test accuracy"),
        color=color,
        tooltip=[
            "method:N",
            "density:Q",
            alt.Tooltip("mean:Q", format=".3f"),
            alt.Tooltip("min:Q", format=".3f"),
            alt.Tooltip("max:Q", format=".3f"),
            "seeds:Q",
        ],
    )
    return (
        alt.layer(band, line, data=df)
        .properties(width=280, height=240)
        .facet(column=alt.Column("metric:N", title=None, sort=["average accuracy", "worst-class accuracy"]))
        .resolve_scale(y="independent")
    )


def bias_chart(df: pd.DataFrame, methods: list[str], r: dict[str, float]) -> alt.Chart:
    """Kept density per class against the full-data class error, one colour per method, r in the legend.

    ``df`` has columns ``method, class_name, full_data_error, kept_density`` (``results_data.bias_points``);
    ``r`` maps method -> Pearson correlation (``results_data.correlations``).
    """
    labelled = df.assign(method_r=[f"{m} (r = {_fmt_r(r.get(m, math.nan))})" for m in df["method"]])
    legend = [f"{m} (r = {_fmt_r(r.get(m, math.nan))})" for m in methods if m in r]
    base = alt.Chart(labelled).encode(
        x=alt.X("full_data_error:Q", title="full-data class error (1 - test accuracy)"),
        y=alt.Y("kept_density:Q", title="kept density of the class", scale=_ACCURACY),
        color=alt.Color("method_r:N", title="method (Pearson r)", scale=alt.Scale(domain=legend), sort=legend),
    )
    points = base.mark_circle(size=80).encode(
        tooltip=[
            "method:N",
            "class_name:N",
            alt.Tooltip("full_data_error:Q", format=".3f"),
            alt.Tooltip("kept_density:Q", format=".3f"),
        ]
    )
    labels = base.mark_text(dx=7, align="left", fontSize=10).encode(text="class_name:N")
    return (points + labels).properties(height=300, title="Which classes keep their data")


def _fmt_r(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:+.2f}"
