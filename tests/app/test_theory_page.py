"""Theory page: AppTest drives the real page; URL state, charts and presets are checked as pure functions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from altair.utils.schemapi import validate_jsonschema
from altair.vegalite.v6.schema.core import load_schema
from streamlit.testing.v1 import AppTest

from app import theory_charts as charts
from app.pages.toy_model import MODEL_KEYS, PRESETS, SCHEMA
from app.url_state import parse_query, to_query
from tests.app.shown import rule_table_shown
from theory.explorer import ExplorerParams, explore
from theory.simulate import simulate, summarize_simulation

APP = str(Path(__file__).resolve().parents[2] / "streamlit_app.py")
DEFAULTS = {p.name: p.default for p in SCHEMA}


def app_test(**query: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    for key, value in query.items():
        at.query_params[key] = value
    return at.run()


def chart_protos(at: AppTest) -> list:
    return [c.proto for c in at.get("vega_lite_chart")]


# ---------------------------------------------------------------- the page, driven by AppTest
def test_moving_a_slider_changes_the_numbers_and_the_url() -> None:
    at = app_test()
    assert not at.exception and not at.error and not at.warning
    before = rule_table_shown(at)
    assert len(before) == 5 and len(at.get("vega_lite_chart")) == 4
    at.slider(key="sigma1").set_value(2.5).run()
    # the move reran only the outputs fragment: no slider or title was sent again, new numbers and charts were
    assert not at.slider and not at.title and len(at.get("vega_lite_chart")) == 4
    after = rule_table_shown(at)
    assert after["Full data"] != before["Full data"]
    expected = explore(ExplorerParams(sigma1=2.5)).rule("Full data")["worst_class_risk"]
    assert after["Full data"] == f"{expected:.3f}"
    assert at.query_params["sigma1"] == "2.5"
    specs = [c.spec for c in chart_protos(at)]
    data = [{d.name: d.data.data for d in c.datasets} for c in chart_protos(at)]
    at.run()  # a full rerun redraws the sidebar (AppTest keeps only what the last run sent)
    assert at.slider(key="sigma1").value == 2.5 and rule_table_shown(at) == after
    at.slider(key="density").set_value(0.95).run()
    assert rule_table_shown(at)["Toy DRoP"] != after["Toy DRoP"]
    assert rule_table_shown(at)["Full data"] == after["Full data"]
    # the fast path in the browser: the finite-sample chart is not sent again (its fragment did not rerun); the
    # others keep their spec text and only the datasets that depend on the density change
    assert [c.spec for c in chart_protos(at)] == specs[:3]
    moved = [{d.name for d in c.datasets if d.data.data != data[i][d.name]} for i, c in enumerate(chart_protos(at))]
    assert moved == [{"thresholds"}, {"marks"}, {"current"}]
    at.run().slider(key="d0").set_value(0.5).run()        # a class density: sections 1 and 2 only
    assert [c.spec for c in chart_protos(at)] == specs[:2] and rule_table_shown(at)["Your class densities"]
    at.run().slider(key="seed").set_value(7).run()        # a sample setting: section 4 only, no rule table
    assert [c.spec for c in chart_protos(at)] == specs[3:] and rule_table_shown(at) == {}


def test_url_sets_the_sliders_and_rejected_values_are_reported() -> None:
    at = app_test(sigma1="2.5", prior0="7", foo="1")
    assert at.slider(key="sigma1").value == 2.5
    assert at.slider(key="prior0").value == DEFAULTS["prior0"]
    warnings = " ".join(w.value for w in at.warning)
    assert "'prior0=7' was rejected" in warnings and "'foo=1'" in warnings
    assert "prior0" not in at.query_params and "foo" not in at.query_params
    expected = explore(ExplorerParams(sigma1=2.5)).rule("Full data")["worst_class_risk"]
    assert rule_table_shown(at)["Full data"] == f"{expected:.3f}"


def test_preset_button_applies_its_values_and_explains_them() -> None:
    at = app_test()
    name = "Toy DRoP overshoots"
    next(b for b in at.button if b.label == name).click().run()
    for key, value in PRESETS[name][1].items():
        assert at.slider(key=key).value == pytest.approx(value)
    assert any(name in i.value for i in at.info)
    assert rule_table_shown(at)["Toy DRoP"] == "1.000"


def test_invalid_means_show_an_error_not_a_traceback() -> None:
    at = app_test(mu0="2", mu1="1")
    assert not at.exception
    assert "'mu' parameter of TwoGaussians" in at.error[0].value
    assert not rule_table_shown(at)


# ---------------------------------------------------------------- URL state
def test_query_round_trip_for_every_parameter() -> None:
    values = {p.name: (p.hi if p.default != p.hi else p.lo) for p in SCHEMA}
    query = to_query(SCHEMA, values)
    assert set(query) == set(values)
    parsed, problems = parse_query(SCHEMA, query)
    assert problems == [] and parsed == values
    assert to_query(SCHEMA, DEFAULTS) == {}


@pytest.mark.parametrize(
    "key,raw", [("sigma0", "0"), ("sigma0", "nan"), ("n", "500.5"), ("n", "abc"), ("prior0", "inf"), ("seed", "-1")]
)
def test_rejected_values_are_reported(key: str, raw: str) -> None:
    parsed, problems = parse_query(SCHEMA, {key: raw})
    assert parsed == {}
    assert len(problems) == 1 and f"'{key}={raw}' was rejected" in problems[0]


def test_slider_round_off_does_not_leak_into_the_url() -> None:
    assert to_query(SCHEMA, {**DEFAULTS, "sigma1": 1.5000000000000002}) == {}


# ---------------------------------------------------------------- charts
VEGA_LITE = load_schema()


def valid_json_spec(spec: dict) -> dict:
    """The spec as the browser gets it (datasets as rows), checked against the Vega-Lite schema."""
    plain = json.loads(charts.to_json(spec))
    validate_jsonschema(plain, VEGA_LITE)
    return plain


def all_charts(params: ExplorerParams, summary) -> list[dict]:
    ex = explore(params)
    return [
        charts.class_density_chart(ex.curves, ex.bands, ex.rules),
        charts.ratio_risk_chart(ex.ratio, ex.ratio_marks),
        charts.density_risk_chart(ex.density, params.density),
        charts.finite_sample_chart(summary, ex.density),
    ]


def preset_exploration(name: str) -> tuple[ExplorerParams, object]:
    params = ExplorerParams(**{k: v for k, v in PRESETS[name][1].items() if k in MODEL_KEYS})
    return params, explore(params)


def test_charts_are_valid_vega_lite_with_a_trivial_rule_off_the_chart() -> None:
    params, ex = preset_exploration("Toy DRoP overshoots")
    summary = summarize_simulation(simulate(params.model(), params.prior0, 60, np.array([0.5, 1.0]), repeats=2, seed=0))
    density, ratio, sweep, finite = (valid_json_spec(s) for s in all_charts(params, summary))
    assert density["title"]["subtitle"] == "Off the chart — Toy DRoP: t = −∞ (always class 1)"
    assert "Toy DRoP" not in {r["rule"] for r in density["datasets"]["thresholds"]}
    assert len(ratio["datasets"]["ratio"]) == len(ex.ratio)  # one row per ratio; the browser folds the risks
    assert ratio["layer"][0]["transform"][0]["fold"] == ["class 0", "class 1", "average", "worst class"]
    assert [r["worst class"] for r in ratio["datasets"]["ratio"]] == ex.ratio["worst_class_risk"].tolist()
    assert sweep["datasets"]["current"] == [{"density": params.density}]
    rows = finite["datasets"]["finite"]
    assert {r["metric"] for r in rows} == {"worst_class_risk", "average_risk"} and len(rows) == 2 * 4 * 2
    assert [p["layer"][1]["transform"] for p in finite["hconcat"]] == [
        [{"filter": {"field": "metric", "equal": m}}] for m in ("worst_class_risk", "average_risk")
    ]


def test_class_density_chart_without_infinite_rules_has_no_subtitle() -> None:
    _, ex = preset_exploration("Hard class needs more data")
    spec = charts.class_density_chart(ex.curves, ex.bands, ex.rules)
    assert spec["title"]["subtitle"] == ""
    assert len(spec["layer"]) == 3 and spec["datasets"]["thresholds"].num_rows == 5


def test_a_slider_move_changes_only_chart_data_not_the_spec() -> None:
    """Streamlit's front end redraws a chart in place when its spec text is unchanged, instead of rebuilding it."""
    g = ExplorerParams()
    summary = summarize_simulation(simulate(g.model(), g.prior0, 60, np.array([0.5, 1.0]), repeats=2, seed=0))

    def without_data(spec: dict) -> dict:
        return {k: v for k, v in json.loads(charts.to_json(spec)).items() if k != "datasets"}

    before = all_charts(g, summary)
    for moved in (ExplorerParams(sigma1=2.0, prior0=0.3), ExplorerParams(d0=0.5, density=0.7, margin=1.0)):
        after = all_charts(moved, summary)
        assert [without_data(s) for s in after] == [without_data(s) for s in before]
        assert after[0]["datasets"]["thresholds"] != before[0]["datasets"]["thresholds"]


# ---------------------------------------------------------------- presets show what they say
CLAIMS = {
    "Hard class needs more data": lambda ex, g: (
        ex.rule("Your class densities")["worst_class_risk"] < ex.rule("Full data")["worst_class_risk"]
    ),
    "Toy DRoP overshoots": lambda ex, g: (
        ex.rule("Toy DRoP")["threshold"] == -np.inf and ex.rule("Toy DRoP")["worst_class_risk"] == 1.0
    ),
    "SSP prunes the easy class yet gains nothing": lambda ex, g: (
        ex.rule("SSP")["d0"] < ex.rule("SSP")["d1"] and ex.rule("SSP")["threshold"] == ex.rule("Full data")["threshold"]
    ),
    "SSP with wide bands jumps to a band edge": lambda ex, g: (
        ex.rule("SSP")["threshold"] == pytest.approx(g.mu[0] - 1.0)
        and ex.rule("SSP")["worst_class_risk"] > ex.rule("Full data")["worst_class_risk"]
    ),
    "Trivial rule beats the std-proportional prior": lambda ex, g: (
        np.isinf(g.optimal_threshold(g.sigma[0] / sum(g.sigma))) and g.worst_class_prior() > g.sigma[0] / sum(g.sigma)
    ),
    "Imbalanced classes": lambda ex, g: (
        ex.rule("Toy DRoP")["worst_class_risk"] < ex.rule("Full data")["worst_class_risk"]
        and ex.rule("Your class densities")["worst_class_risk"] < ex.rule("Toy DRoP")["worst_class_risk"]
    ),
    "Nothing to fix": lambda ex, g: (
        ex.rule("Worst-class optimum")["worst_class_risk"] == pytest.approx(ex.rule("Full data")["worst_class_risk"])
    ),
}


@pytest.mark.parametrize("name", list(PRESETS))
def test_each_preset_demonstrates_its_point(name: str) -> None:
    values = PRESETS[name][1]
    bounds = {p.name: (p.lo, p.hi) for p in SCHEMA}
    assert all(bounds[k][0] <= v <= bounds[k][1] for k, v in values.items())
    params = ExplorerParams(**{k: values.get(k, DEFAULTS[k]) for k in MODEL_KEYS})
    assert CLAIMS[name](explore(params), params.model())
