"""Sweeps: the grid (pure), then real sweeps on one local Ray instance (2 CPUs) and in-process."""
from __future__ import annotations

import argparse
import itertools
import json
import logging
import os

import pytest
import torch

from drop_core import cli_sweep, sweep
from drop_core.cli import build_parser
from drop_core.cli import main as cli_main
from drop_core.config import STAGES, RunConfig, fields_of, plural
from drop_core.errors import DropError
from drop_core.store import Store

os.environ.setdefault("RAY_DISABLE_USAGE_STATS", "1")

TINY = {"epochs": 2}   # a few seconds per run on digits
GRID = sweep.GridSpec(dataset="digits", scorers=("random", "el2n"), quoters=("uniform", "drop"),
                      densities=(0.4, 0.7), seeds=(0,), base=TINY, name="test grid")


# --- the grid --------------------------------------------------------------------------------

def test_expand_grid_is_the_full_product_once_each():
    spec = sweep.GridSpec(dataset="digits", scorers=("a", "b", "c"), quoters=("u", "d"), densities=(0.1, 0.5),
                          seeds=(0, 1, 2), base={"model": "mlp", "epochs": 3})
    points = sweep.expand_grid(spec)
    combos = [(p["scorer"], p["seed"], p["density"], p["quoter"]) for p in points]
    assert combos == list(itertools.product("abc", (0, 1, 2), (0.1, 0.5), "ud"))   # query-model sharers adjacent
    assert all(p["dataset"] == "digits" and p["model"] == "mlp" and p["epochs"] == 3 for p in points)


def test_grid_points_put_full_data_first_and_drop_repeats():
    points = sweep.grid_points({"epochs": 3, "density": 0.2}, scorers=["random"], quoters=["none", "drop"],
                               densities=[1, 0.5], seeds=[0, 1], full_data=True)
    combos = [(p["scorer"], p["quoter"], p["density"], p["seed"]) for p in points]
    assert combos == [("random", "none", 1.0, 0), ("random", "none", 1.0, 1),        # references, then the grid
                      ("random", "drop", 1.0, 0), ("random", "none", 0.5, 0), ("random", "drop", 0.5, 0),
                      ("random", "drop", 1.0, 1), ("random", "none", 0.5, 1), ("random", "drop", 0.5, 1)]
    assert all(p["epochs"] == 3 and isinstance(p["density"], float) for p in points)


def test_expand_grid_rejects_an_empty_axis():
    spec = sweep.GridSpec(dataset="digits", scorers=("el2n",), quoters=(), densities=(0.5,))
    with pytest.raises(DropError) as e:
        sweep.expand_grid(spec)
    assert str(e.value) == "The 'quoters' parameter of sweep must be a non-empty list. Got [] instead."


def test_expand_grid_rejects_a_repeated_value():
    spec = sweep.GridSpec(dataset="digits", scorers=("el2n",), quoters=("drop",), densities=(0.5, 0.5))
    with pytest.raises(DropError) as e:
        sweep.expand_grid(spec)
    assert str(e.value) == ("The 'densities' parameter of sweep must be a list without repeated values. "
                            "Got [0.5, 0.5] instead.")


def test_expand_grid_rejects_an_axis_in_base():
    spec = sweep.GridSpec(dataset="digits", scorers=("el2n",), quoters=("drop",), densities=(0.5,),
                          base={"density": 0.3, "epochs": 2})
    with pytest.raises(DropError) as e:
        sweep.expand_grid(spec)
    assert str(e.value) == ("The 'base' settings of a sweep must not set a grid axis; give 'density' as a sweep "
                            "parameter instead. Got base keys ['density', 'epochs'].")


def _groups(points: list[dict]) -> list[list[int]]:
    return sweep.query_groups([sweep.resolve_point(p, "cpu")[2] for p in points])


def test_query_groups_share_everything_but_final_model_fields():
    points = sweep.expand_grid(sweep.GridSpec(dataset="digits", scorers=("el2n", "forgetting"),
                                              quoters=("uniform", "drop"), densities=(0.3, 0.6), seeds=(0, 1)))
    groups = _groups(points)
    assert len(groups) == 4                      # 2 scorers x 2 seeds
    assert sorted(i for g in groups for i in g) == list(range(16))
    for g in groups:
        assert len({(points[i]["scorer"], points[i]["seed"]) for i in g}) == 1
        assert len({(points[i]["quoter"], points[i]["density"]) for i in g}) == 4


def test_points_differing_only_in_flips_share_a_query_stage():   # query models never augment
    points = [{"dataset": "digits", "scorer": "el2n", "seed": 0, "flip": flip} for flip in (None, True, False)]
    assert _groups(points) == [[0, 1, 2]]


def test_query_groups_split_points_whose_query_plans_differ():
    points = sweep.expand_grid(sweep.GridSpec(dataset="digits", scorers=("random",), quoters=("uniform", "drop"),
                                              densities=(0.3, 0.6)))
    assert _groups(points) == [[0, 2], [1, 3]]   # uniform: no query model; drop: early query models


def test_grid_spec_round_trips_through_plain_data():
    assert sweep.GridSpec.from_dict(json.loads(json.dumps(GRID.to_dict()))) == GRID


def test_grid_spec_from_dict_rejects_an_unknown_key():
    with pytest.raises(DropError) as e:
        sweep.GridSpec.from_dict({"dataset": "digits", "scorer": ["el2n"]})
    assert str(e.value).startswith("Unknown grid key(s) 'scorer'. Valid keys: base, dataset, densities,")


def test_bad_gpus_per_run_is_a_user_error(tmp_path):
    with pytest.raises(DropError) as e:
        sweep.run_sweep(GRID, Store(tmp_path / "s.sqlite"), engine="local",
                        options=sweep.EngineOptions(gpus_per_run=1.5))
    assert str(e.value) == ("The 'gpus_per_run' parameter of sweep must be a fraction in (0.0, 1.0] or a whole "
                            "number. Got 1.5 instead.")


def test_unknown_engine_lists_the_valid_ones(tmp_path):
    with pytest.raises(DropError) as e:
        sweep.run_sweep(GRID, Store(tmp_path / "s.sqlite"), engine="dask")
    assert str(e.value) == "Unknown engine 'dask'. Valid engines: local, ray."


# --- real sweeps on one local Ray instance ----------------------------------------------------

@pytest.fixture(scope="module")
def ray_instance():
    """One local Ray instance (2 CPUs) for the module, started and stopped by the sweep's own session."""
    import ray

    torch.set_num_threads(1)
    with sweep.ray_session(num_cpus=2):
        assert ray.cluster_resources()["CPU"] == 2
        yield
    assert not ray.is_initialized()


@pytest.fixture(scope="module")
def ray_sweep(ray_instance, tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    store = Store(root / "drop.sqlite")
    options = sweep.EngineOptions(cache_dir=str(root / "cache"))
    report = sweep.run_sweep(GRID, store, engine="ray", options=options)
    return store, options, report


@pytest.mark.slow
def test_ray_sweep_lands_every_grid_point_in_the_store(ray_sweep):
    store, _, report = ray_sweep
    assert report.counts() == {"finished": 8}
    runs = store.list_runs(sweep_id=report.sweep_id)
    assert list(runs.status) == ["finished"] * 8
    got = sorted(zip(runs.scorer, runs.quoter, runs.density, runs.seed))
    assert got == sorted(itertools.product(GRID.scorers, GRID.quoters, GRID.densities, GRID.seeds))
    assert (runs.epochs == 2).all() and (runs.model == "mlp").all()     # resolved configs are stored
    metrics = store.class_metrics(list(runs.id))
    assert len(metrics[metrics.split == "test"]) == 8 * 10               # digits: 10 classes per run


@pytest.mark.slow
def test_ray_sweep_reports_progress_and_shares_the_query_stage(ray_sweep):
    store, _, report = ray_sweep
    for p in report.points:
        events = store.events(p.run_id)
        stages = [e["stage"] for e in events]
        assert "final" in stages and stages[-1] == "done"       # progress flowed back through the driver
        run = store.get_run(p.run_id)
        assert run["environment"]["ray_node"]                   # the worker said where it ran
        needs_query = not (run["config"]["scorer"] == "random" and run["config"]["quoter"] == "uniform")
        # the query stage ran before the point; random+uniform trains no query model at all
        assert run["summary"]["query_cache_hit"] == needs_query


@pytest.mark.slow
def test_rerunning_a_sweep_skips_finished_points(ray_sweep):
    store, options, first = ray_sweep
    again = sweep.run_sweep(GRID, store, engine="ray", options=options)
    assert again.counts() == {"skipped": 8}
    assert [p.run_id for p in again.points] == [p.run_id for p in first.points]
    assert len(store.list_runs()) == 8


@pytest.mark.slow
def test_a_failing_point_is_recorded_and_the_others_finish(ray_sweep):
    store, options, _ = ray_sweep
    # density 0.0001 passes the config checks but keeps no training sample: the pipeline rejects it at selection
    spec = sweep.GridSpec(dataset="digits", scorers=("random",), quoters=("uniform",),
                          densities=(0.0001, 0.55, 0.85), base=TINY)
    report = sweep.run_sweep(spec, store, engine="ray", options=options)
    assert report.counts() == {"failed": 1, "finished": 2}
    failed = next(p for p in report.points if p.status == "failed")
    run = store.get_run(failed.run_id)
    assert run["status"] == "failed" and run["config"]["density"] == 0.0001
    assert run["error"].startswith("Density 0.0001 keeps no sample of the ")
    assert run["error"] == failed.error


@pytest.mark.slow
def test_cli_sweep_on_ray_prints_a_json_report(ray_sweep, capsys):
    store, options, _ = ray_sweep
    code = cli_main(["sweep", "--dataset", "digits", "--scorers", "random", "--quoters", "uniform",
                     "--densities", "0.4", "0.55", "--epochs", "2", "--store", str(store.path),
                     "--cache-dir", options.cache_dir, "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert out["counts"] == {"skipped": 2}                     # both ran already (grid and failure tests)


# --- the same grid in-process ----------------------------------------------------------------

@pytest.mark.slow
def test_local_engine_computes_what_ray_computed(ray_sweep, tmp_path):
    ray_store, options, first = ray_sweep
    spec = sweep.GridSpec(dataset="digits", scorers=("el2n",), quoters=("drop",), densities=(0.4,), base=TINY)
    store = Store(tmp_path / "local.sqlite")
    report = sweep.run_sweep(spec, store, engine="local", options=options)
    assert report.counts() == {"finished": 1}
    point = report.points[0]
    twin = next(p for p in first.points if p.key == point.key)
    ours, theirs = store.class_metrics([point.run_id]), ray_store.class_metrics([twin.run_id])
    assert list(ours.accuracy) == list(theirs.accuracy)
    assert (store.kept_indices(point.run_id) == ray_store.kept_indices(twin.run_id)).all()


def test_cli_sweep_rejects_a_bad_density_before_storing_anything(tmp_path, capsys):
    code = cli_main(["sweep", "--engine", "local", "--dataset", "digits", "--scorers", "random", "--quoters",
                     "uniform", "--densities", "1.5", "--store", str(tmp_path / "s.sqlite")])
    assert code == 1
    assert capsys.readouterr().err == ("error: The 'density' parameter of run must be a float in the range "
                                       "(0.0, 1.0]. Got 1.5 instead.\n")
    assert len(Store(tmp_path / "s.sqlite").list_runs()) == 0


def test_a_sweep_created_beforehand_is_filled_and_its_report_is_plain_data(tmp_path, caplog):
    store = Store(tmp_path / "s.sqlite")
    spec = sweep.GridSpec.from_dict({"dataset": "digits", "scorers": ["random"], "quoters": ["uniform"],
                                     "densities": [0.5, 0.6], "base": {"epochs": 1}, "name": "watched"})
    sweep_id = store.create_sweep("watched", spec.to_dict())     # a watcher can follow it from the start
    with caplog.at_level(logging.INFO, logger="drop_core.config"):
        report = sweep.run_sweep(spec, store, engine="local", sweep_id=sweep_id,
                                 options=sweep.EngineOptions(cache_dir=str(tmp_path / "cache")))
    assert [r.getMessage() for r in caplog.records].count("Overriding: epochs = 1 (preset 'cpu' has 30)") == 1
    assert report.sweep_id == sweep_id and report.counts() == {"finished": 2} and report.unfinished() == 0
    runs = store.list_runs(sweep_id=sweep_id)
    assert list(runs.status) == ["finished"] * 2
    assert json.loads(json.dumps(report.to_dict()))["points"][0]["run_id"] == int(runs.id[0])


def test_local_engine_skips_a_point_cancelled_while_queued(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    spec = sweep.GridSpec(dataset="digits", scorers=("random",), quoters=("uniform",), densities=(0.5, 0.6),
                          base={"epochs": 1})

    def cancel_the_rest(line: str) -> None:   # the app's Cancel button, pressed when the first point is done
        if line.startswith("[1/2]"):
            for run_id in store.list_runs(status="queued").id:
                store.request_cancel(int(run_id))

    report = sweep.run_sweep(spec, store, engine="local", echo=cancel_the_rest,
                             options=sweep.EngineOptions(cache_dir=str(tmp_path / "cache")))
    assert [p.status for p in report.points] == ["finished", "cancelled"]
    cancelled = store.get_run(report.points[1].run_id)
    assert cancelled["status"] == "cancelled" and cancelled["started"] is None      # never ran
    assert "final" not in [e["stage"] for e in store.events(report.points[1].run_id)]


# --- the command line (drop_core.cli_sweep) ----------------------------------------------------

def _err(capsys, argv: list[str], code: int = 1) -> str:
    assert cli_main(argv) == code
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err            # exactly one line
    return err.rstrip("\n")


def _sweep_parser() -> argparse.ArgumentParser:
    return build_parser()._subparsers._group_actions[0].choices["sweep"]


def test_every_run_config_field_has_a_sweep_flag():
    dests = {a.dest for a in _sweep_parser()._actions}
    for name in fields_of(*STAGES):
        assert (plural(name) if name in sweep.AXES else name) in dests, name


@pytest.mark.parametrize("item,got", [("lr=inf", "'inf'"), ("lr=Infinity", "inf"), ("lr=NaN", "nan")])
def test_set_checks_each_value_before_anything_runs(capsys, tmp_path, item, got):
    store = tmp_path / "s.sqlite"
    assert _err(capsys, ["sweep", "--engine", "local", "--set", item, "--store", str(store)]) == (
        f"error: The 'lr' parameter of sweep --set must be a float in the range (0.0, inf). Got {got} instead.")
    assert not store.exists()


def test_set_rejects_an_unknown_key_and_a_malformed_item(capsys):
    assert _err(capsys, ["sweep", "--set", "lrr=0.1"]).startswith(
        "error: Unknown run config key 'lrr' in --set. Valid keys: dataset, data_root, ")
    assert _err(capsys, ["sweep", "--set", "lr"]) == (
        "error: The '--set' parameter of sweep must be KEY=VALUE. Got 'lr' instead.")
    assert _err(capsys, ["sweep", "--lr", "0.1", "--set", "lr=0.2"]) == (
        "error: --set lr=... repeats --lr; give it once.")


def test_a_non_finite_density_is_rejected_at_the_flag(capsys):
    with pytest.raises(SystemExit) as e:     # an argument error, like `run --density nan`
        cli_main(["sweep", "--densities", "0.5", "nan"])
    assert e.value.code == 2
    assert capsys.readouterr().err == ("python -m drop_core sweep: error: argument --densities: 'nan' is not a "
                                       "finite number\n")


@pytest.mark.parametrize("argv,message", [
    (["--cpus-per-run", "0"], "The 'cpus_per_run' parameter of sweep must be a float in the range (0.0, inf). "
                              "Got 0.0 instead."),
    (["--cpus-per-run", "inf"], "The 'cpus_per_run' parameter of sweep must be a float in the range (0.0, inf). "
                                "Got inf instead."),
    (["--gpus-per-run", "-1"], "The 'gpus_per_run' parameter of sweep must be a float in the range [0.0, inf). "
                               "Got -1.0 instead."),
    (["--num-cpus", "0"], "The 'num_cpus' parameter of sweep must be an int in the range [1, inf). Got 0 instead."),
])
def test_engine_options_use_the_one_template_before_the_store_is_opened(capsys, tmp_path, argv, message):
    store = tmp_path / "s.sqlite"
    assert _err(capsys, ["sweep", *argv, "--store", str(store)]) == f"error: {message}"
    assert not store.exists()


def test_flags_and_set_fill_the_grid_and_an_axis_left_out_takes_the_run_default():
    args = _sweep_parser().parse_args(["--scorers", "el2n", "grand", "--densities", "0.3", "1", "--epochs", "3",
                                       "--no-augment", "--milestones", "0.4", "0.8",
                                       "--set", "query_inits=2", "--set", "selection=random"])
    spec = cli_sweep.spec_from_args(args)
    defaults = RunConfig()
    assert (spec.scorers, spec.quoters, spec.densities, spec.seeds) == (
        ("el2n", "grand"), (defaults.quoter,), (0.3, 1.0), (defaults.seed,))
    assert spec.dataset == defaults.dataset
    assert dict(spec.base) == {"epochs": 3, "augment": False, "milestones": (0.4, 0.8), "query_inits": 2,
                               "selection": "random"}
    assert [p["density"] for p in sweep.expand_grid(spec)] == [0.3, 1.0, 0.3, 1.0]


def test_set_of_a_grid_axis_names_the_flag_to_use(capsys):
    assert _err(capsys, ["sweep", "--set", "density=0.3"]) == (
        "error: The 'base' settings of a sweep must not set a grid axis; give 'density' as a sweep parameter "
        "instead. Got base keys ['density'].")


def test_smoke_test_takes_no_grid_flags(capsys):
    assert _err(capsys, ["sweep", "--smoke-test", "--epochs", "3", "--scorers", "el2n"]) == (
        "error: --smoke-test runs a fixed grid; leave out --epochs, --scorers, or --smoke-test.")
    args = _sweep_parser().parse_args(["--smoke-test", "--engine", "local"])
    assert cli_sweep.spec_from_args(args) is sweep.SMOKE_TEST
