"""Mixture page: AppTest drives the real page at /mixture; chart specs are checked as pure functions."""
from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import altair as alt
import numpy as np
import pyarrow as pa
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from app import mixture_charts as charts
from app.mixture_study import STUDIES, StudyKey
from app.pages.mixture import CLASSIFIER_NAMES as CLASSIFIERS_SHOWN
from app.pages.mixture import PRESETS, SCHEMA, params_of
from app.theory_charts import to_json
from app.url_state import parse_query, to_query
from tests.app.shown import rule_table_shown
from theory.mixture_explorer import MixtureParams, explore_mixture, explore_sweep

APP = str(Path(__file__).resolve().parents[2] / "streamlit_app.py")
DEFAULTS = {p.name: p.default for p in SCHEMA}


def mixture_app() -> AppTest:
    """The app switched to /mixture (AppTest starts on the default page, which owns the query string first)."""
    return AppTest.from_file(APP, default_timeout=300).run().switch_page("app/pages/mixture.py").run()


@pytest.mark.slow
def test_moving_a_density_slider_changes_the_numbers_shown() -> None:
    at = mixture_app()
    assert not at.exception and not at.error
    before = rule_table_shown(at)
    assert set(before) == {"Full data", "Your densities", "Toy DRoP", "Worst-class optimum"}
    assert len(at.get("vega_lite_chart")) >= 3           # the finite-sample chart too once its study is done
    at.slider(key="cd0").set_value(0.4).run()
    after = rule_table_shown(at)
    expected = explore_mixture(params_of({**DEFAULTS, "cd0": 0.4})).summary.set_index("rule")["worst_class_risk"]
    assert after["Your densities"] == f"{expected['Your densities']:.3f}" != before["Your densities"]
    assert after["Full data"] == before["Full data"]
    assert at.query_params["cd0"] == "0.4"


def study_data(at: AppTest) -> list[bytes]:
    """The Arrow data of the finite-sample chart, if the page drew one."""
    return [d.data.data for c in at.get("vega_lite_chart") for d in c.proto.datasets if d.name == "summary"]


@pytest.mark.slow
def test_the_finite_sample_study_runs_in_the_background_and_is_drawn_when_done() -> None:
    at = mixture_app()
    at.slider(key="sim_seed").set_value(4321).run()     # a study no other test asked for: it starts now
    assert not study_data(at)                           # (only the study fragment reran: the exact part stays)
    assert any("Simulating finite samples in the background" in i.value for i in at.info)
    key = StudyKey(params_of({**DEFAULTS, "drop_d": 1.0}), DEFAULTS["samples"], DEFAULTS["reps"], 4321,
                   CLASSIFIERS_SHOWN[DEFAULTS["clf"]])
    expected = STUDIES.request(key).result(timeout=120)
    at.run()
    assert not at.info and not at.error
    (data,) = study_data(at)
    rows = pa.ipc.open_stream(data).read_pandas()
    at_density = expected[np.isclose(expected["density"], 0.4)]     # the simulated density nearest to 0.5
    np.testing.assert_allclose(np.sort(rows["mean"]), np.sort(at_density["mean"]), atol=1e-6)   # 6 decimals


def test_no_widget_key_is_shared_with_the_toy_model_page() -> None:
    from app.pages.toy_model import SCHEMA as TOY

    assert not {p.name for p in SCHEMA} & {p.name for p in TOY}


def test_every_preset_is_a_valid_setting() -> None:
    for name, (_, values) in PRESETS.items():
        assert parse_query(SCHEMA, {k: str(v) for k, v in values.items()})[1] == [], name
        params = params_of({**DEFAULTS, **values})
        assert params.model().num_classes == values["k"]
    gauss = params_of({**DEFAULTS, **PRESETS["The `gaussians` dataset"][1]})
    assert gauss.model().dim == 16


def test_query_round_trip() -> None:
    values = {**DEFAULTS, "cd3": 0.25, "k": 7}
    assert parse_query(SCHEMA, to_query(SCHEMA, values))[0] == {"cd3": 0.25, "k": 7}


def test_chart_specs_are_valid_vega_lite_and_carry_the_numbers() -> None:
    ex = explore_mixture(MixtureParams())
    specs = [charts.plane_spec(ex.regions, ex.circles), charts.class_risk_spec(ex.classes),
             charts.sweep_spec(explore_sweep(MixtureParams())[0], 0.5)]
    specs = [json.loads(to_json(spec)) for spec in specs]
    for spec in specs:
        (alt.HConcatChart if "hconcat" in spec else alt.Chart).from_dict(spec, validate=True)
    bars = specs[1]["datasets"]["classes"]
    assert len(bars) == 4 * 5
    full = [r["risk"] for r in bars if r["rule"] == "Full data"]
    np.testing.assert_allclose(full, ex.classes[ex.classes["rule"] == "Full data"]["risk"], atol=1e-6)


def test_region_images_decode_to_the_rules_labels() -> None:
    """The plane's image is the rule's argmax lattice: every pixel's colour is its cell's class colour."""
    ex = explore_mixture(MixtureParams(densities=(1.0, 0.2, 1.0, 1.0, 1.0)))
    spec = charts.plane_spec(ex.regions, ex.circles)
    images = spec["datasets"]["regions"].to_pylist()
    assert [r["rule"] for r in images] == ["Full data", "Your densities"]
    palette = {tuple(int(c[i:i + 2], 16) for i in (1, 3, 5)): k for k, c in enumerate(charts.CLASS_COLORS)}
    xs, ys = ex.regions.xs, ex.regions.ys
    gm, step = MixtureParams().model(), xs[1] - xs[0]
    for row in images:
        png = Image.open(io.BytesIO(base64.b64decode(row["url"].split(",", 1)[1])))
        pixels = np.asarray(png.convert("RGBA"))[::-1]                      # back to rows of increasing y
        labels = np.vectorize(lambda *rgb: palette[rgb])(*np.moveaxis(pixels[..., :3], -1, 0))
        np.testing.assert_array_equal(labels, ex.regions.labels[row["rule"]])
        i, j = 17, 93                                                      # one cell, against the rule itself
        priors = ex.classes[ex.classes["rule"] == row["rule"]]["prior_after"].to_numpy()
        assert labels[i, j] == gm.bayes_predict(np.array([[xs[j], ys[i]]]), priors)[0]
        assert (row["x0"], row["x1"]) == pytest.approx((xs[0] - step / 2, xs[-1] + step / 2))
    full, yours = (ex.regions.labels[r] for r in ("Full data", "Your densities"))
    assert (yours == 1).sum() < (full == 1).sum()          # the pruned class's region shrinks
