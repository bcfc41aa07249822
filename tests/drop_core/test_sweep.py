"""Sweeps: the grid (pure), then real sweeps on one local Ray instance (2 CPUs) and in-process."""
from __future__ import annotations

import argparse
import itertools
import json
import os

import pytest

from drop_core import sweep
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
    combos = [(p["scorer"], p["quoter"], p["density"], p["seed"]) for p in points]
    assert combos == list(itertools.product("abc", "ud", (0.1, 0.5), (0, 1, 2)))
    assert all(p["dataset"] == "digits" and p["model"] == "mlp" and p["epochs"] == 3 for p in points)


def test_expand_grid_rejects_an_empty_axis():
    spec = sweep.GridSpec(dataset="digits", scorers=("el2n",), quoters=(), densities=(0.5,))
    with pytest.raises(DropError) as e:
        sweep.expand_grid(spec)
    assert str(e.value) == "The 'quoters' parameter of a sweep must be a non-empty list. Got [] instead."


def test_expand_grid_rejects_a_repeated_value():
    spec = sweep.GridSpec(dataset="digits", scorers=("el2n",), quoters=("drop",), densities=(0.5, 0.5))
    with pytest.raises(DropError) as e:
        sweep.expand_grid(spec)
    assert str(e.value) == "The 'densities' parameter of a sweep must not repeat a value. Got [0.5, 0.5] instead."


def test_expand_grid_rejects_an_axis_in_base():
    spec = sweep.GridSpec(dataset="digits", scorers=("el2n",), quoters=("drop",), densities=(0.5,),
                          base={"density": 0.3, "epochs": 2})
    with pytest.raises(DropError) as e:
        sweep.expand_grid(spec)
    assert str(e.value) == ("The 'base' settings of a sweep must not set a grid axis; give 'density' as a sweep "
                            "parameter instead. Got base keys ['density', 'epochs'].")


def test_query_groups_share_everything_but_quota_rule_and_density():
    points = sweep.expand_grid(sweep.GridSpec(dataset="digits", scorers=("el2n", "forgetting"),
                                              quoters=("uniform", "drop"), densities=(0.3, 0.6), seeds=(0, 1)))
    groups = sweep.query_groups(points)
    assert len(groups) == 4                      # 2 scorers x 2 seeds
    assert sorted(i for g in groups for i in g) == list(range(16))
    for g in groups:
        assert len({(points[i]["scorer"], points[i]["seed"]) for i in g}) == 1
        assert len({(points[i]["quoter"], points[i]["density"]) for i in g}) == 4


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
    assert str(e.value) == ("The 'gpus_per_run' parameter of a sweep must be a fraction in (0, 1] or a whole "
                            "number. Got 1.5 instead.")


def test_unknown_engine_lists_the_valid_ones(tmp_path):
    with pytest.raises(DropError) as e:
        sweep.run_sweep(GRID, Store(tmp_path / "s.sqlite"), engine="dask")
    assert str(e.value) == "Unknown engine 'dask'. Valid engines: local, ray."
