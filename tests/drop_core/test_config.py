"""The config contract: every field's declared stage decides which keys it changes, and its
declared constraint is the only validation (non-finite numbers rejected everywhere)."""
from __future__ import annotations

import dataclasses
import math

import pytest

from drop_core import config as C
from drop_core.cli import build_parser
from drop_core.errors import DropError
from drop_core.registry import Registry

PLAN = {"epochs": 3, "record": []}     # plan facts held fixed: this test is about the fields' roles
BASE = C.RunConfig(dataset="digits", preset="cpu", device="cpu", scorer="el2n", quoter="drop")


def other_value(name: str, value):
    """A valid value of field ``name`` different from ``value``, derived from its declaration."""
    r = C.role(name)
    if r.kind is bool:
        return not value if value is not None else True
    if name == "dataset":
        return "gaussians"
    if isinstance(r.choices, Registry):
        return next(n for n in r.choices.names() if n != value)
    if isinstance(r.choices, tuple):
        return next(c for c in r.choices if c != value)
    if r.kind is str:
        return "/tmp/elsewhere"
    if r.kind is tuple:
        return (0.3, 0.6) if value != (0.3, 0.6) else (0.4, 0.8)
    if r.kind is int:
        return (value or r.low or 0) + 1
    if r.high is None:                 # unbounded above (imbalance: [1, inf), default 1)
        return value * 2 if value else 1.0
    hi = r.high
    return (value + hi) / 2 if value != hi else value / 2


def keys(rc: C.ResolvedConfig) -> tuple[str, str, str]:
    q = C.query_key(rc, PLAN)
    return q, C.score_key(rc, q, 1000), C.run_key(rc)


@pytest.fixture(scope="module")
def resolved() -> C.ResolvedConfig:
    return C.resolve(BASE)[0]


@pytest.mark.parametrize("name", list(dataclasses.fields(C.RunConfig)), ids=lambda f: f.name)
def test_each_field_changes_exactly_the_keys_of_its_stage_and_later(resolved, name):
    name = name.name
    stage = C.role(name).stage
    new = other_value(name, getattr(resolved, name))
    C.check_field(name, new)                                   # the generated value is a valid one
    changed = dataclasses.replace(resolved, **{name: new})
    before, after = keys(resolved), keys(changed)
    expected = {"data": (True, True, True), "query": (True, True, True), "score": (False, True, True),
                "final": (False, False, True), "runtime": (False, False, False)}[stage]
    assert tuple(b != a for b, a in zip(before, after)) == expected, (name, stage)


def test_every_stage_is_known_and_runtime_is_only_what_cannot_change_a_number():
    assert {C.role(f.name).stage for f in dataclasses.fields(C.RunConfig)} <= set(C.STAGES)
    assert C.fields_of("runtime") == ["download"]
    assert {"device", "precision"} <= set(C.fields_of("query"))
    assert "download" not in C.setting_fields() and "device" in C.setting_fields()


def test_data_identity_and_results_version_enter_every_key(resolved, monkeypatch):
    before = keys(resolved)
    assert all(b != a for b, a in zip(before, keys(dataclasses.replace(resolved, data_id="other"))))
    monkeypatch.setattr(C, "RESULTS_VERSION", C.RESULTS_VERSION + 1)
    assert all(b != a for b, a in zip(before, keys(resolved)))


def test_keys_need_a_resolved_config():
    with pytest.raises(TypeError, match="ResolvedConfig"):
        C.query_key(BASE, PLAN)
    assert C.run_key(BASE) == C.run_key(C.resolve(BASE)[0])   # run_key resolves a plain config itself


def test_a_resolved_dict_round_trips_and_its_identity_is_recomputed(resolved):
    d = {**resolved.to_dict(), "data_id": "forged"}
    again = C.resolve(C.RunConfig.from_dict(d))[0]
    assert again == resolved and again.data_id != "forged"


def _numeric_fields() -> list[str]:
    return [f.name for f in dataclasses.fields(C.RunConfig) if C.role(f.name).kind in (int, float)]


@pytest.mark.parametrize("name", _numeric_fields())
@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan])
def test_non_finite_numbers_are_rejected_with_the_template(name, bad):
    with pytest.raises(DropError) as e:
        C.validate(dataclasses.replace(BASE, **{name: bad}))
    assert str(e.value).startswith(f"The {name!r} parameter of run must be ")
    assert str(e.value).endswith(f"Got {bad!r} instead.")


def test_the_range_comes_from_the_declaration():
    with pytest.raises(DropError) as e:
        C.validate(dataclasses.replace(BASE, lr=0.0))
    assert str(e.value) == "The 'lr' parameter of run must be a float in the range (0.0, inf). Got 0.0 instead."
    with pytest.raises(DropError) as e:
        C.validate(dataclasses.replace(BASE, milestones=(0.75, 0.5)))
    assert "increasing floats in the range (0.0, 1.0)" in str(e.value)


def test_every_field_has_a_run_flag_and_the_flag_rejects_inf(capsys):
    parser = build_parser()
    run = parser._subparsers._group_actions[0].choices["run"]
    dests = {a.dest for a in run._actions}
    assert {f.name for f in dataclasses.fields(C.RunConfig)} <= dests
    with pytest.raises(SystemExit) as e:
        parser.parse_args(["run", "--lr", "inf"])
    assert e.value.code == 2
    assert "'inf' is not a finite number" in capsys.readouterr().err


def test_relative_image_folder_paths_become_absolute(tmp_path, monkeypatch):
    folder = tmp_path / "imgs"
    folder.mkdir()
    monkeypatch.chdir(tmp_path)
    rc = C.resolve(dataclasses.replace(BASE, dataset="imagefolder:imgs", model="cnn"))[0]
    assert rc.dataset == f"imagefolder:{folder}"
    other = tmp_path / "other"
    (other / "imgs").mkdir(parents=True)
    monkeypatch.chdir(other)
    assert C.run_key(dataclasses.replace(BASE, dataset="imagefolder:imgs", model="cnn")) != C.run_key(rc)
