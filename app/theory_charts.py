"""Vega-Lite charts of the toy model: pure DataFrame -> spec-dict builders, one per figure of the Theory page.

Inputs are the frames of :mod:`theory.explorer` and :mod:`theory.simulate`. Infinite thresholds (the
trivial rules) cannot be drawn; they are named in the chart's subtitle instead.

Why plain dicts and not Altair: Altair validates every chart against the Vega-Lite schema when it is
serialised and names each dataset by a hash of its rows, so every slider move cost a quarter of a second of
CPU and sent the browser a new spec, which it then compiled again from scratch. Here the encodings are
constant, the data sit in ``datasets`` under fixed names (as Arrow tables, which Streamlit sends as they
are, eight times faster than converting DataFrames; ``to_json`` gives the pure JSON), and everything that
moves with a slider (the current density marker too) is data: after a slider move the spec text is
unchanged, and Streamlit's front end only swaps the datasets of the chart it already has, drawn on a canvas.
The tests validate every spec against the Vega-Lite schema.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

SCHEMA_URL = "https://vega.github.io/schema/vega-lite/v6.4.1.json"
CONFIG = {"view": {"continuousWidth": 300, "continuousHeight": 300}}
# Canvas redraws new data in a fraction of the time the SVG renderer needs to patch hundreds of DOM nodes.
USERMETA = {"embedOptions": {"renderer": "canvas"}}
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
RATIO_RULES = ("Full data", "Your class densities", "Worst-class optimum", "Toy DRoP")  # rows of ratio_marks
METHOD_COLORS = {
    "Random": "#7F7F7F",
    "SSP": RULE_COLORS["SSP"],
    "Toy DRoP": RULE_COLORS["Toy DRoP"],
    "Optimum": RULE_COLORS["Worst-class optimum"],
}
QUANTITIES = {
    "risk_class0": "class 0",
    "risk_class1": "class 1",
    "average_risk": "average",
    "worst_class_risk": "worst class",
}
QUANTITY_COLORS = {
    "class 0": CLASS_COLORS["class 0"],
    "class 1": CLASS_COLORS["class 1"],
    "average": "#7F7F7F",
    "worst class": "#000000",
}
METRIC_TITLES = {"worst_class_risk": "worst-class risk", "average_risk": "average risk"}
Spec = dict[str, Any]


def _scale(colors: dict[str, Any]) -> dict[str, list]:
    return {"domain": list(colors), "range": list(colors.values())}


def _q(field: str, **extra: Any) -> dict[str, Any]:
    return {"field": field, "type": "quantitative", **extra}


def _n(field: str, **extra: Any) -> dict[str, Any]:
    return {"field": field, "type": "nominal", **extra}


def arrow_table(df: pd.DataFrame, columns: dict[str, str] | list[str], rows: np.ndarray | None = None) -> pa.Table:
    """The ``columns`` of ``df`` (a dict renames them), optionally only ``rows`` (a mask), as an Arrow table."""
    names = columns if isinstance(columns, dict) else {c: c for c in columns}
    return pa.table(
        {new: df[old].to_numpy() if rows is None else df[old].to_numpy()[rows] for old, new in names.items()}
    )


def _top(body: Spec, title: Any, datasets: dict[str, pa.Table]) -> Spec:
    return {"$schema": SCHEMA_URL, "config": CONFIG, "usermeta": USERMETA, **body, "title": title, "datasets": datasets}


def to_json(spec: Spec) -> str:
    """The spec as Vega-Lite JSON text, datasets as row lists (what Streamlit sends, though as Arrow)."""
    return json.dumps(spec, allow_nan=False, default=lambda table: table.to_pylist())


def _off_chart(rules: pd.DataFrame) -> str:
    """Subtitle naming the rules whose threshold is infinite (a trivial rule predicting one class everywhere)."""
    parts = []
    for rule, t in zip(rules["rule"], rules["threshold"]):
        if t == -np.inf:
            parts.append(f"{rule}: t = −∞ (always class 1)")
        elif t == np.inf:
            parts.append(f"{rule}: t = +∞ (always class 0)")
    return "Off the chart — " + "; ".join(parts) if parts else ""


def class_density_chart(curves: pd.DataFrame, bands: pd.DataFrame, rules: pd.DataFrame) -> Spec:
    """Prior-weighted class densities, the SSP bands and each rule's threshold as a vertical line.

    ``curves``: x, class, density; ``bands``: class, lo, hi, removed; ``rules``: rule, threshold, worst_class_risk.
    """
    band = {
        "data": {"name": "bands"},
        "mark": {"type": "rect", "opacity": 0.12},
        "encoding": {
            "x": _q("lo"),
            "x2": {"field": "hi"},
            "color": _n("class", scale=_scale(CLASS_COLORS), legend=None),
            "tooltip": [_n("class"), _q("removed", format=".1%", title="removed by SSP")],
        },
    }
    hills = {
        "data": {"name": "curves"},
        "mark": {"type": "area", "line": True, "opacity": 0.35},
        "encoding": {
            "x": _q("x", title="x", scale={"zero": False}),
            "y": _q("density", title="prior × class density"),
            "color": _n("class", scale=_scale(CLASS_COLORS), title="class"),
        },
    }
    lines = {
        "data": {"name": "thresholds"},
        "mark": {"type": "rule", "strokeWidth": 2.5},
        "encoding": {
            "x": _q("threshold"),
            "color": _n("rule", scale=_scale(RULE_COLORS), title="rule"),
            "strokeDash": _n("rule", scale=_scale(RULE_DASHES), legend=None),
            "tooltip": [_n("rule"), _q("threshold", format=".3f", title="t"), _q("worst_class_risk", format=".3f")],
        },
    }
    data = {
        "bands": arrow_table(bands, ["class", "lo", "hi", "removed"], bands["hi"].to_numpy() > bands["lo"].to_numpy()),
        "curves": arrow_table(curves, ["x", "class", "density"]),
        "thresholds": arrow_table(
            rules, ["rule", "threshold", "worst_class_risk"], np.isfinite(rules["threshold"].to_numpy())
        ),
    }
    title = {"text": "Class densities and thresholds (predict class 1 right of t)", "subtitle": _off_chart(rules)}
    body = {"layer": [band, hills, lines], "height": 300, "resolve": {"scale": {"color": "independent"}}}
    return _top(body, title, data)


def ratio_risk_chart(ratio: pd.DataFrame, marks: pd.DataFrame) -> Spec:
    """Class-wise, average and worst-class risk against d0/d1 (log axis), with the marked rules' ratios.

    ``ratio``: ratio + the four risk columns; ``marks``: rule, ratio, worst_class_risk (the rules of
    ``RATIO_RULES``). The browser folds the four risk columns into lines (one row per ratio is sent).
    """
    domain = [float(ratio["ratio"].min()), float(ratio["ratio"].max())]
    x = _q(
        "ratio",
        title="class-0 density ratio d0 / d1 (log scale)",
        scale={"type": "log", "domain": domain, "nice": False},
    )
    curves = {
        "data": {"name": "ratio"},
        "transform": [{"fold": list(QUANTITY_COLORS), "as": ["quantity", "risk"]}],
        "mark": {"type": "line"},
        "encoding": {
            "x": x,
            "y": _q("risk", title="risk on the original distribution", scale={"domain": [0, 1]}),
            "color": _n("quantity", scale=_scale(QUANTITY_COLORS), title="risk"),
            "strokeWidth": {"condition": {"test": "datum.quantity == 'worst class'", "value": 3}, "value": 1.5},
            "tooltip": [_q("ratio", format=".3f"), _n("quantity"), _q("risk", format=".3f")],
        },
    }
    color = _n("rule", scale=_scale({r: RULE_COLORS[r] for r in RATIO_RULES}), title="marked")
    rules = {
        "data": {"name": "marks"},
        "mark": {"type": "rule", "strokeDash": [4, 3]},
        "encoding": {"x": x, "color": color},
    }
    dots = {
        "data": {"name": "marks"},
        "mark": {"type": "point", "filled": True, "size": 90},
        "encoding": {
            "x": x,
            "y": _q("worst_class_risk"),
            "color": color,
            "tooltip": [_n("rule"), _q("ratio", format=".3f"), _q("worst_class_risk", format=".3f")],
        },
    }
    data = {
        "ratio": arrow_table(ratio, {"ratio": "ratio", **QUANTITIES}),
        "marks": arrow_table(marks, ["rule", "ratio", "worst_class_risk"]),
    }
    body = {"layer": [curves, rules, dots], "height": 300, "resolve": {"scale": {"color": "independent"}}}
    return _top(body, "Random pruning within classes: risk against the class-0 density ratio", data)


def _metric_line(metric: str, **mark: Any) -> Spec:
    return {
        "data": {"name": "exact"},
        "mark": {"type": "line", **mark},
        "encoding": {
            "x": _q("density", title="overall density (fraction kept)", scale={"domain": [0, 1]}),
            "y": _q(metric, title=METRIC_TITLES[metric], scale={"domain": [0, 1]}),
            "color": _n("method", scale=_scale(METHOD_COLORS), title="method"),
            "tooltip": [_n("method"), _q("density", format=".2f"), _q(metric, format=".3f")],
        },
    }


def _exact(density: pd.DataFrame) -> pa.Table:
    return arrow_table(density, ["method", "density", *METRIC_TITLES])


def density_risk_chart(density: pd.DataFrame, current: float, width: int = 330) -> Spec:
    """Worst-class and average risk against overall density, one line per method; ``current`` density marked.

    ``density``: method, density and the risk columns (``theory.sweeps.risk_vs_density``).
    """
    marker = {
        "data": {"name": "current"},
        "mark": {"type": "rule", "color": "#999999", "strokeDash": [3, 3]},
        "encoding": {"x": _q("density")},
    }
    panels = [
        {"layer": [{**_metric_line(metric, strokeWidth=2), "title": title}, marker], "height": 280, "width": width}
        for metric, title in METRIC_TITLES.items()
    ]
    data = {"exact": _exact(density), "current": pa.table({"density": [float(current)]})}
    return _top({"hconcat": panels}, "Exact risk against overall density", data)


def finite_sample_chart(summary: pd.DataFrame, exact: pd.DataFrame, width: int = 330) -> Spec:
    """Finite-sample mean (dots) and min-max over repeats (bars) per method, over the exact curves (lines).

    ``summary``: method, density, metric, mean, min, max (``theory.simulate.summarize_simulation``);
    ``exact``: the density sweep. Methods are nudged apart on the x axis so their bars do not overlap.
    """
    methods = list(METHOD_COLORS)
    nudge = {m: (i - (len(methods) - 1) / 2) * 0.012 for i, m in enumerate(methods)}
    sim = arrow_table(
        summary,
        ["method", "density", "metric", "mean", "min", "max"],
        summary["metric"].isin(list(METRIC_TITLES)).to_numpy(),
    )
    shift = np.array([nudge[m] for m in sim["method"].to_pylist()])
    sim = sim.append_column("x", pa.array(sim["density"].to_numpy() + shift))
    color = _n("method", scale=_scale(METHOD_COLORS), title="method")
    panels = []
    for metric, title in METRIC_TITLES.items():
        only = [{"filter": {"field": "metric", "equal": metric}}]
        bars = {
            "data": {"name": "finite"},
            "transform": only,
            "mark": {"type": "rule"},
            "encoding": {"x": _q("x"), "y": _q("min"), "y2": {"field": "max"}, "color": color},
        }
        dots = {
            "data": {"name": "finite"},
            "transform": only,
            "mark": {"type": "point", "filled": True, "size": 40},
            "encoding": {
                "x": _q("x"),
                "y": _q("mean"),
                "color": color,
                "tooltip": [
                    _n("method"),
                    _q("density", format=".2f"),
                    _q("mean", format=".3f"),
                    _q("min", format=".3f"),
                    _q("max", format=".3f"),
                ],
            },
        }
        exact_line = {**_metric_line(metric, opacity=0.6, strokeWidth=1.2), "title": title}
        panels.append({"layer": [exact_line, bars, dots], "height": 280, "title": title, "width": width})
    title = "Finite samples (dots: mean, bars: min–max over repeats) against the exact curves"
    return _top({"hconcat": panels}, title, {"exact": _exact(exact), "finite": sim})
