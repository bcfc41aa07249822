"""AppTest per page: widgets change what is computed and shown; bad choices give st.error, not tracebacks."""
import json
import shlex
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch
from streamlit.testing.v1 import AppTest

from app import charts, jobs
from app.errors import unplain
from drop_core.cli import build_parser
from drop_core.pipeline import RunConfig, resolve
from drop_core.scoring import SCORERS
from drop_core.store import Store
from theory.mixture import bayes_class_accuracy

REPO = Path(__file__).resolve().parents[2]
CLASSES = ["c0", "c1", "c2"]


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("DROP_STORE", str(tmp_path / "runs.sqlite"))
    monkeypatch.setenv("DROP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return Store(tmp_path / "runs.sqlite")


def _add_run(store, scorer, quoter, density, accuracy, kept, seed=0, dataset="gaussians", classes=CLASSES,
             kept_indices=None):
    """A finished run as the pipeline stores it (resolved config), with made-up per-class results."""
    config = resolve(RunConfig(dataset=dataset, scorer=scorer, quoter=quoter, density=density, seed=seed,
                               device="cpu"))[0]
    rid = store.create_run(config.to_dict(), f"{dataset}-{scorer}-{quoter}-{density}-{seed}", status="running")
    store.save_result(rid, {
        "average_accuracy": sum(accuracy) / len(accuracy), "worst_class_accuracy": min(accuracy),
        "class_accuracy": dict(zip(classes, accuracy)), "kept_per_class": dict(zip(classes, kept)),
        "class_sizes": dict.fromkeys(classes, 100), "val_recall": dict.fromkeys(classes, 0.9),
        "kept_indices": kept_indices,
        "train_size": sum(kept), "query_cache_hit": quoter == "drop", "warnings": [], "timings": {"final": 1.0},
    })
    return rid


def _page(name: str) -> AppTest:
    return AppTest.from_file(str(REPO / "app" / "pages" / f"{name}.py"), default_timeout=60).run()


def _text(at: AppTest) -> str:
    return "\n".join(str(e.value) for kind in ("markdown", "caption", "info", "warning", "error", "success")
                     for e in getattr(at, kind))


def _compared(at: AppTest) -> list[int]:
    return next(m.value for m in at.multiselect if m.label == "Runs to compare")


def _charts(at: AppTest) -> list:
    return at.get("vega_lite_chart")


# --- Guide -----------------------------------------------------------------------------

def test_guide_explains_orientation_and_lists_every_scorer(store):
    at = _page("guide")
    assert not at.exception
    assert "higher score = harder = kept first" in _text(at)
    listed = set(at.table[0].value.index)
    assert listed == set(SCORERS.names())
    commands = [c.value for c in at.code if c.value.startswith("python -m drop_core")]
    assert len(commands) == 2 and all("--preset paper --device cuda" in c for c in commands)
    for command in commands:                          # every documented command is one the CLI accepts
        args = build_parser().parse_args(shlex.split(command.replace("\\\n", " "))[3:])
        assert args.dataset == "cifar10" and args.preset == "paper"


# --- Results ---------------------------------------------------------------------------

def test_results_page_on_an_empty_store_says_so(store):
    at = _page("results")
    assert not at.exception
    assert "The store is empty" in at.info[0].value


def test_results_page_filters_compares_and_deletes_with_confirmation(store):
    full = _add_run(store, "random", "none", 1.0, [0.95, 0.9, 0.8], [100, 100, 100])
    rnd = _add_run(store, "random", "none", 0.5, [0.95, 0.85, 0.5], [50, 50, 50])
    drop = _add_run(store, "random", "drop", 0.5, [0.9, 0.85, 0.7], [20, 40, 90])
    at = _page("results")
    assert not at.exception
    assert at.dataframe[0].value["id"].tolist() == [full, rnd, drop]
    assert len(_charts(at)) == 3                      # per class, across densities, bias
    assert "1 of the 1 runs with a query model reused its cached scores (#3)" in _text(at)
    text = _text(at)                                  # one seed: no verdict, the difference in test images
    assert ("random+DRoP vs random, worst-class accuracy: 50.0% → 70.0% (+20.0 points, +20.0 of 100 test images) "
            "from 1 seed; the difference is within 20 test images") in text
    assert "run 3 or more seeds" in text and "helped" not in text and " beats " not in text
    per_class = json.loads(_charts(at)[0].proto.spec)   # gaussians' test split gives the counts: whiskers
    assert per_class["title"]["subtitle"] == "Whiskers: 95% Wilson intervals from each class's test images."
    data = _charts(at)[0].proto.datasets[0].data                     # and the exact mixture's Bayes accuracy
    bayes = pa.ipc.open_stream(data.data).read_pandas().groupby("class_index")[charts.REFERENCE].max()
    np.testing.assert_allclose(bayes, bayes_class_accuracy()[:3])
    assert charts.REFERENCE in json.dumps(per_class["layer"][-1])
    assert charts.REFERENCE_GUIDE in text

    at.multiselect(key="res_filter_quoter").set_value(["drop"]).run()
    assert at.dataframe[0].value["id"].tolist() == [drop]
    assert "1 of 3 runs" in _text(at) and _compared(at) == [drop]
    at.multiselect(key="res_filter_quoter").set_value([]).run()
    assert _compared(at) == [full, rnd, drop]

    at.selectbox(key="res_delete_id").set_value(rnd).run()
    at.button(key="res_delete").click().run()
    assert f"Delete run #{rnd}" in _text(at)
    assert len(store.list_runs()) == 3                # nothing deleted before the confirmation
    at.button(key="res_confirm").click().run()
    assert not at.exception
    assert store.list_runs()["id"].tolist() == [full, drop]
    assert at.dataframe[0].value["id"].tolist() == [full, drop]


def test_results_page_shows_kept_and_pruned_images_of_the_chosen_class(store):
    digits = [str(k) for k in range(10)]
    _add_run(store, "random", "none", 1.0, [0.9] * 10, [100] * 10, dataset="digits", classes=digits)
    _add_run(store, "random", "drop", 0.5, [0.8] * 10, [50] * 10, dataset="digits", classes=digits,
             kept_indices=list(range(0, 1078, 2)))
    at = _page("results")
    assert not at.exception
    assert [len(i.value) for i in at.image] == [8, 8]          # kept row, pruned row
    first = at.image[0].value
    at.selectbox(key="results_class").set_value(3).run()
    assert not at.exception and [len(i.value) for i in at.image] == [8, 8]
    assert at.image[0].value != first
    assert "kept" in _text(at) and "pruned" in _text(at)


def test_results_page_compares_one_setting_at_a_time(store):
    gauss = _add_run(store, "random", "none", 0.5, [0.9, 0.8, 0.7], [50, 50, 50])
    digits = _add_run(store, "random", "drop", 0.5, [0.9, 0.8, 0.6], [50, 50, 50], dataset="digits")
    at = _page("results")
    assert not at.exception
    assert at.selectbox(key="res_setting").options == ["dataset=digits (1 runs)", "dataset=gaussians (1 runs)"]
    at.selectbox(key="res_setting").set_value("dataset=gaussians").run()
    assert _compared(at) == [gauss]
    at.selectbox(key="res_setting").set_value("dataset=digits").run()
    assert _compared(at) == [digits]
    assert charts.REFERENCE not in _charts(at)[0].proto.spec and charts.REFERENCE_GUIDE not in _text(at)
    assert len(_charts(at)) == 2                      # no full-data run here: no bias view, and it says so
    assert "needs a finished full-data run" in _text(at)


def test_results_page_states_a_verdict_only_from_a_paired_test_over_seeds(store):
    for seed, (base, drop) in enumerate([(0.50, 0.70), (0.52, 0.71), (0.49, 0.69)]):
        _add_run(store, "random", "none", 1.0, [0.95, 0.9, 0.8], [100, 100, 100], seed=seed)
        _add_run(store, "random", "none", 0.5, [0.95, 0.85, base], [50, 50, 50], seed=seed)
        _add_run(store, "random", "drop", 0.5, [0.9, 0.85, drop], [20, 40, 90], seed=seed)
    at = _page("results")
    assert not at.exception
    text = _text(at)
    assert "random+DRoP beats random on worst-class accuracy: 50.3% → 70.0%" in text
    assert "paired t-test over seeds (3 seeds), p = " in text
    assert "random is below full data on class c2: 80.0% → 50.3%" in text


# --- Experiment ------------------------------------------------------------------------

def test_experiment_defaults_plan_full_data_random_and_drop(store):
    at = _page("experiment")
    assert not at.exception and not at.error
    assert "3 runs" in _text(at) and "full data, random, random+DRoP" in _text(at)
    at.text_input(key="exp_densities").set_value("0.3, 0.5").run()
    assert "5 runs" in _text(at)


@pytest.mark.parametrize("key, value, message", [
    ("exp_densities", "0.5, 1.5", "The 'density' parameter must be a float in the range (0.0, 1.0]. Got 1.5 instead."),
    ("exp_scorers", [], "Choose at least one scorer and one quota rule."),
])
def test_experiment_bad_choices_show_an_error_and_no_run_button(store, key, value, message):
    at = _page("experiment")
    widget = at.text_input(key=key) if key == "exp_densities" else at.multiselect(key=key)
    widget.set_value(value).run()
    assert not at.exception
    assert [unplain(e.value) for e in at.error] == [message]
    assert not [b for b in at.button if b.key == "exp_run"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_experiment_cuda_without_gpu_is_an_error(store):
    at = _page("experiment")
    at.selectbox(key="exp_device").set_value("cuda").run()
    assert not at.exception
    assert "sees no CUDA GPU" in unplain(at.error[0].value)


def test_experiment_missing_image_folder_is_an_error(store, tmp_path):
    at = _page("experiment")
    at.selectbox(key="exp_dataset").set_value("imagefolder").run()
    assert "Give the path of your image folder" in unplain(at.error[0].value)
    at.text_input(key="exp_folder").set_value(str(tmp_path / "nowhere")).run()
    assert not at.exception
    assert str(tmp_path / "nowhere") in unplain(at.error[0].value)


@pytest.mark.slow
def test_experiment_run_shows_progress_then_results(store):
    at = _page("experiment")
    at.number_input(key="exp_epochs").set_value(3).run()
    at.button(key="exp_run").click().run()
    assert not at.exception
    job = at.session_state["experiment_job"]
    assert len(job.queued) == 3
    assert at.get("progress") and "0 of 3 runs done" in at.get("status")[0].label   # the worker is starting
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and "runs finished" not in _text(at):
        time.sleep(1.0)
        at.run()
    assert not at.exception
    assert "3 of 3 runs finished" in _text(at)
    assert len(_charts(at)) == 3
    assert "random+DRoP" in at.dataframe[0].value["method"].tolist()
    at.button(key="exp_run").click().run()           # same settings again: nothing new is trained
    assert at.session_state["experiment_job"].queued == ()
    assert "active in the background" not in _text(at)
    store.create_run({"dataset": "digits"}, "from-the-cli", status="queued")   # e.g. a sweep, or a reloaded tab
    at.run()
    assert "1 run is active in the background" in _text(at)


@pytest.mark.slow
def test_experiment_cancel_stops_own_runs_and_spares_one_another_session_follows(store):
    at = _page("experiment")
    at.number_input(key="exp_epochs").set_value(500).run()
    at.button(key="exp_run").click().run()
    job = at.session_state["experiment_job"]
    full_data = RunConfig.from_dict(store.get_run(job.run_ids[0])["config"])
    assert jobs.submit(store, [full_data]).joined == (job.run_ids[0],)     # another tab runs the same
    at.button(key="exp_cancel").click().run()
    assert not at.exception
    assert f"Run #{job.run_ids[0]} is followed by another session too" in _text(at)
    assert [store.get_run(r)["status"] for r in job.run_ids[1:]] == ["cancelled", "cancelled"]
    store.request_cancel(job.run_ids[0])                                     # the other tab gives up too
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and "were cancelled" not in _text(at):
        time.sleep(1.0)
        at.run()
    assert "3 runs were cancelled; the finished ones are kept." in _text(at)


def test_experiment_epoch_scaling_and_flip_choices_reach_every_run(store):
    at = _page("experiment")
    at.selectbox(key="exp_scaling").set_value("on (the paper's rule)").run()
    at.selectbox(key="exp_flip").set_value("off").run()
    at.number_input(key="exp_epochs").set_value(500).run()          # long enough to still be running
    at.button(key="exp_run").click().run()
    assert not at.exception
    job = at.session_state["experiment_job"]
    configs = [store.get_run(r)["config"] for r in job.run_ids]
    assert [(c["epoch_scaling"], c["flip"]) for c in configs] == [(True, False)] * 3
    at.button(key="exp_cancel").click().run()
