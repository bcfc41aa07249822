"""Chart builders: valid Vega-Lite that survives a JSON round-trip and encodes what the guide says."""
import json

import altair as alt

from app import charts
from app import results_data as rd
from drop_core.analysis import method_order
from tests.app.test_results_data import _metrics, _runs


def _spec(chart: alt.TopLevelMixin) -> dict:
    spec = chart.to_dict()
    assert json.loads(json.dumps(spec)) == spec
    return spec


def _datasets(spec: dict) -> list[list[dict]]:
    return list(spec["datasets"].values())


def test_class_accuracy_chart_outlines_each_methods_worst_class():
    df = rd.class_accuracy(_runs(), _metrics(), density=0.5)
    methods = method_order(df["method"])
    spec = _spec(charts.class_accuracy_chart(df, methods))
    bars, marker = spec["layer"]                      # no test counts: no whiskers, and the subtitle says so
    assert bars["mark"]["type"] == "bar"
    assert bars["encoding"]["stroke"]["condition"]["test"] == "datum.worst"
    assert bars["encoding"]["color"]["scale"]["domain"] == ["full data", "random", "random+DRoP"]
    assert bars["encoding"]["color"]["scale"]["range"][0] == charts.FULL_DATA_COLOR
    assert marker["transform"][0] == {"filter": "datum.worst"} and marker["encoding"]["y"]["field"] == "top"
    assert spec["title"]["subtitle"].startswith("No intervals")
    rows = _datasets(spec)[0]
    assert sum(r["worst"] for r in rows) == 3


def test_class_accuracy_chart_draws_wilson_whiskers_where_counts_are_known():
    metrics = rd.with_test_counts(_metrics(), {run_id: [20, 40, 36] for run_id in range(1, 6)})
    df = rd.class_accuracy(_runs(), metrics, density=0.5)
    spec = _spec(charts.class_accuracy_chart(df, method_order(df["method"])))
    whiskers = spec["layer"][2]
    assert whiskers["mark"]["type"] == "rule"
    assert (whiskers["encoding"]["y"]["field"], whiskers["encoding"]["y2"]["field"]) == ("lo", "hi")
    assert whiskers["encoding"]["xOffset"]["field"] == "method"
    assert spec["title"]["subtitle"] == "Whiskers: 95% Wilson intervals from each class's test images."
    rows = _datasets(spec)[0]
    assert all(r["lo"] <= r["accuracy"] <= r["hi"] for r in rows)
    df.loc[df["class_name"] == "cat", ["lo", "hi"]] = float("nan")          # counts of one class unknown
    partial = _spec(charts.class_accuracy_chart(df, method_order(df["method"])))
    assert "where the test counts are known" in partial["title"]["subtitle"]


def test_class_accuracy_chart_draws_one_reference_tick_per_class_when_given():
    df = rd.class_accuracy(_runs(), _metrics(), density=0.5)
    df[charts.REFERENCE] = df["class_index"].map({0: 0.99, 1: 0.9, 2: 0.95})
    spec = _spec(charts.class_accuracy_chart(df, method_order(df["method"])))
    tick = spec["layer"][-1]
    assert tick["mark"]["type"] == "tick" and tick["encoding"]["y"]["field"] == "reference"
    assert {"aggregate": [{"op": "max", "field": charts.REFERENCE, "as": "reference"}],
            "groupby": ["class_name"]} in tick["transform"]


def test_density_chart_has_one_panel_per_metric_with_band_and_line():
    df = rd.density_curves(_runs())
    spec = _spec(charts.density_curves_chart(df, method_order(df["method"])))
    assert spec["facet"]["column"]["field"] == "metric"
    band, line = spec["spec"]["layer"]
    assert band["mark"]["type"] == "area" and band["encoding"]["y2"]["field"] == "max"
    assert line["mark"]["type"] == "line" and line["encoding"]["y"]["field"] == "mean"
    assert {r["metric"] for r in _datasets(spec)[0]} == {"average accuracy", "worst-class accuracy"}


def test_bias_chart_names_pearson_r_and_keeps_method_colours():
    points = rd.bias_points(_runs(), _metrics(), density=0.5)
    r = rd.correlations(points)
    methods = ["full data", "random", "random+DRoP"]
    spec = _spec(charts.bias_chart(points, methods, r))
    assert spec["title"]["subtitle"] == f"Pearson r: random n/a, random+DRoP {r['random+DRoP']:+.2f}"
    scale = spec["layer"][0]["encoding"]["color"]["scale"]
    colors = charts.method_colors(methods)
    assert scale == {"domain": ["random", "random+DRoP"], "range": [colors["random"], colors["random+DRoP"]]}
    assert spec["layer"][1]["encoding"]["text"]["field"] == "class_name"


def test_method_colours_are_fixed_per_method_and_full_data_is_grey():
    colors = charts.method_colors(["full data", "el2n", "el2n+DRoP"])
    assert colors["full data"] == charts.FULL_DATA_COLOR
    assert len(set(colors.values())) == 3
    assert charts.method_colors(["el2n", "el2n+DRoP"]) == {k: v for k, v in colors.items() if k != "full data"}


def test_every_chart_has_a_reading_guide():
    assert set(charts.READING_GUIDE) == {"class_accuracy", "density_curves", "bias", "quota", "examples"}
    assert all(len(line) > 40 and "\n" not in line for line in charts.READING_GUIDE.values())

