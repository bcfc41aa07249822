"""Altair charts of run results: pure DataFrame -> ``alt.Chart`` builders, one per figure.

Each builder takes a frame from :mod:`app.results_data` and returns a chart; each has a one-line
reading guide in ``READING_GUIDE`` that the pages print under it.
"""
from __future__ import annotations

import math

import altair as alt
import pandas as pd

from drop_core.analysis import FULL_DATA

READING_GUIDE: dict[str, str] = {
    "class_accuracy": "Each group is one class; bars compare full data with each pruned method, and the "
    "outlined bar (▼) is that method's worst class. Whiskers are 95% Wilson intervals from the class's test "
    "images: two bars whose whiskers overlap may differ by test-set noise alone.",
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
FULL_DATA_COLOR = "#595959"
PALETTE = ("#4c78a8", "#f58518", "#e45756", "#72b7b2", "#54a24b", "#eeca3b", "#b279a2", "#ff9da6", "#9d755d")


def method_colors(methods: list[str]) -> dict[str, str]:
    """A fixed colour per method, so every chart of one comparison agrees: full data dark grey, the rest
    Tableau 10 in ``methods`` order."""
    others = [m for m in methods if m != FULL_DATA]
    colors = {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(others)}
    return {FULL_DATA: FULL_DATA_COLOR, **colors} if FULL_DATA in methods else colors


def _method_color(methods: list[str], shown: list[str] | None = None) -> alt.Color:
    colors = method_colors(methods)
    shown = methods if shown is None else shown
    return alt.Color("method:N", title="method", sort=shown,
                     scale=alt.Scale(domain=shown, range=[colors[m] for m in shown]))


REFERENCE = "bayes_accuracy"     # optional column of class_accuracy frames: a per-class ceiling drawn as a tick
REFERENCE_GUIDE = "The black tick over each class is the Bayes accuracy, the best any classifier can reach there."


def class_accuracy_chart(df: pd.DataFrame, methods: list[str]) -> alt.LayerChart:
    """Grouped bars of per-class test accuracy, one bar per method; each method's worst class outlined.

    ``methods`` are all methods of the comparison (for colours). ``df`` has columns ``method, class_index,
    class_name, accuracy, worst`` (``results_data.class_accuracy``) and optionally ``lo, hi`` (a 95% interval,
    drawn as a whisker where both are given; the subtitle says where they are missing) and :data:`REFERENCE`
    (one value per class, drawn as a tick across the class's group).
    """
    classes = df.sort_values("class_index")["class_name"].drop_duplicates().tolist()
    shown = [m for m in methods if m in set(df["method"])]
    has_ci = {"lo", "hi"} <= set(df) and bool(df[["lo", "hi"]].notna().all(axis=1).any())
    tooltip = ["method:N", "class_name:N", alt.Tooltip("accuracy:Q", format=".3f")]
    if has_ci:
        tooltip += [alt.Tooltip("lo:Q", title="95% low", format=".3f"), alt.Tooltip("hi:Q", title="95% high",
                                                                                    format=".3f")]
    x = alt.X("class_name:N", title="class", sort=classes)
    base = alt.Chart(df).encode(x=x, xOffset=alt.XOffset("method:N", sort=shown),
                                y=alt.Y("accuracy:Q", title="test accuracy", scale=_ACCURACY), tooltip=tooltip)
    bars = base.mark_bar().encode(
        color=_method_color(methods, shown),
        stroke=alt.condition("datum.worst", alt.value("black"), alt.value(None)),
        strokeWidth=alt.condition("datum.worst", alt.value(2), alt.value(0)),
    )
    worst = (base.transform_filter("datum.worst")       # above the whisker where there is one
             .transform_calculate(top="isValid(datum.hi) ? datum.hi : datum.accuracy")
             .mark_text(text="▼", dy=-8, color="black").encode(y=alt.Y("top:Q", scale=_ACCURACY)))
    layers = [bars, worst]
    if has_ci:
        layers.append(base.transform_filter("isValid(datum.lo) && isValid(datum.hi)")
                      .mark_rule(color="black", strokeWidth=1.5).encode(y="lo:Q", y2="hi:Q"))
    if REFERENCE in df and df[REFERENCE].notna().any():
        layers.append(alt.Chart(df).transform_filter(f"isValid(datum.{REFERENCE})")
                      .transform_aggregate(reference=f"max({REFERENCE})", groupby=["class_name"])
                      .mark_tick(color="black", thickness=2)
                      .encode(x=x, y=alt.Y("reference:Q", scale=_ACCURACY),
                              tooltip=["class_name:N", alt.Tooltip("reference:Q", title="Bayes accuracy",
                                                                   format=".3f")]))
    return alt.layer(*layers).properties(
        height=300, title=alt.TitleParams("Per-class test accuracy", subtitle=_interval_note(df, has_ci)))


def _interval_note(df: pd.DataFrame, has_ci: bool) -> str:
    if not has_ci:
        return "No intervals: these runs were stored without their per-class test counts."
    if df[["lo", "hi"]].isna().any(axis=None):
        return "Whiskers: 95% Wilson intervals where the test counts are known (none on the other bars)."
    return "Whiskers: 95% Wilson intervals from each class's test images."


def density_curves_chart(df: pd.DataFrame, methods: list[str]) -> alt.FacetChart:
    """Accuracy against density, one line per method, min/max band over seeds; one panel per metric.

    ``df`` has columns ``method, density, metric, mean, min, max, seeds`` (``results_data.density_curves``).
    """
    color = _method_color(methods)
    x = alt.X("density:Q", title="dataset density (fraction kept)", scale=alt.Scale(domain=[0, 1]))
    band = alt.Chart().mark_area(opacity=0.2, clip=True).encode(x=x, y="min:Q", y2="max:Q", color=color)
    line = alt.Chart().mark_line(point=True).encode(
        x=x,
        y=alt.Y("mean:Q", title="test accuracy", scale=alt.Scale(zero=False)),
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
    """Kept density per class against the full-data class error, one colour per method; r in the subtitle.

    ``df`` has columns ``method, class_name, full_data_error, kept_density`` (``results_data.bias_points``);
    ``methods`` are all methods of the comparison (for colours); ``r`` maps method -> Pearson correlation
    (``results_data.correlations``).
    """
    shown = [m for m in methods if m in set(df["method"])]
    base = alt.Chart(df).encode(
        x=alt.X("full_data_error:Q", title="full-data class error (1 - test accuracy)"),
        y=alt.Y("kept_density:Q", title="kept density of the class", scale=_ACCURACY),
        color=_method_color(methods, shown),
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
    subtitle = "Pearson r: " + ", ".join(f"{m} {_fmt_r(r.get(m, math.nan))}" for m in shown)
    return (points + labels).properties(
        height=300, title=alt.TitleParams("Which classes keep their data", subtitle=subtitle)
    )


def _fmt_r(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:+.2f}"
