"""The pipeline end to end on digits: results, cache, store integration, cancellation, config resolution."""
import dataclasses
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from drop_core import pipeline
from drop_core.cli import main
from drop_core.data import load_dataset
from drop_core.errors import DropError
from drop_core.pipeline import Cancelled, RunConfig, corrections, query, resolve, run, run_key
from drop_core.quotas import drop_quotas
from drop_core.select import Selection
from drop_core.store import Store

REPO = Path(__file__).resolve().parents[2]
TINY = dict(dataset="digits", model="mlp", preset="cpu", epochs=3, query_inits=1, device="cpu")


def _trained_stages(events):
    """(stage, init) of every training step/epoch event seen."""
    return {(e["stage"], e.get("init")) for e in events if e.get("event") in ("step", "epoch")}


def test_end_to_end_digits(tmp_path):
    cfg = RunConfig(**TINY, scorer="el2n", quoter="drop", density=0.5, min_per_class=5)
    res = run(cfg, cache_dir=tmp_path)
    sizes = np.array(list(res.class_sizes.values()))
    n = int(sizes.sum())
    assert res.train_size == len(res.kept_indices) == round(0.5 * n)
    recalls = np.array([res.val_recall[c] for c in res.class_sizes])
    expected = drop_quotas(sizes, recalls, 0.5, min_per_class=5)
    assert list(res.kept_per_class.values()) == expected.tolist()
    assert np.all(np.diff(res.kept_indices) > 0)
    acc = np.array(list(res.class_accuracy.values()))
    assert res.worst_class_accuracy == acc.min() and res.class_accuracy[res.worst_class] == acc.min()
    assert res.average_accuracy > 0.25           # 10 classes: chance is 0.1
    test_y = query.load_run_data(resolve(cfg)[0]).y_test.numpy()
    assert list(res.test_counts.values()) == np.bincount(test_y, minlength=10).tolist()
    for c, (lo, hi) in res.class_accuracy_ci.items():   # the 95% Wilson interval around each accuracy
        assert 0 <= lo <= res.class_accuracy[c] <= hi <= 1 and hi - lo > 1 / res.test_counts[c]
    assert set(res.timings) == {"load", "query", "score", "select", "final", "eval"}
    assert res.config["scorer"] == "el2n" and res.config["batch_size"] == 64   # preset filled it
    assert not res.query_cache_hit


def test_second_run_at_another_density_trains_only_the_final_model(tmp_path):
    base = RunConfig(**TINY, scorer="forgetting", quoter="none", density=0.5)
    first, second = [], []
    a = run(base, cache_dir=tmp_path, progress=first.append)
    b = run(dataclasses.replace(base, density=0.3, quoter="uniform"), cache_dir=tmp_path, progress=second.append)
    assert ("query", 0) in _trained_stages(first)
    assert _trained_stages(second) == {("final", None)}
    assert b.query_cache_hit and not a.query_cache_hit
    assert b.train_size < a.train_size


def test_a_new_scorer_with_the_same_schedule_reuses_the_query_models(tmp_path):
    events = []
    run(RunConfig(**TINY, scorer="random", quoter="drop", density=0.5), cache_dir=tmp_path)
    res = run(RunConfig(**TINY, scorer="el2n", quoter="drop", density=0.5), cache_dir=tmp_path,
              progress=events.append)
    assert res.query_cache_hit and _trained_stages(events) == {("final", None)}


def test_store_records_the_run_and_does_not_rerun_it(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    cfg = RunConfig(**TINY, scorer="random", quoter="uniform", density=0.4)
    a = run(cfg, store=store, cache_dir=tmp_path)
    row = store.get_run(a.run_id)
    assert row["status"] == "finished" and row["environment"]["torch"] == torch.__version__
    assert row["environment"]["device"] == "cpu" and row["key"] == run_key(cfg)
    assert [e["stage"] for e in store.events(a.run_id)][-1] == "done"
    np.testing.assert_array_equal(store.kept_indices(a.run_id), a.kept_indices)
    events = []
    b = run(cfg, store=store, cache_dir=tmp_path, progress=events.append)
    assert b.reused and b.run_id == a.run_id and events == [] and len(store.list_runs()) == 1
    assert b.class_accuracy == a.class_accuracy and b.kept_per_class == a.kept_per_class
    assert b.test_counts == a.test_counts and b.class_accuracy_ci == a.class_accuracy_ci   # kept by the store
    c = run(cfg, store=store, cache_dir=tmp_path, force=True)
    assert not c.reused and c.run_id != a.run_id and len(store.list_runs()) == 2


def test_cancel_flag_in_the_store_stops_the_run(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    cfg = RunConfig(**TINY)
    rid = store.create_run(cfg.to_dict(), run_key(cfg))
    store.request_cancel(rid)     # the app cancels a queued run ...
    store.set_status(rid, "queued")   # ... but a worker picks it up anyway: it must still stop
    with pytest.raises(Cancelled, match=f"Run {rid} was cancelled."):
        run(cfg, store=store, run_id=rid, cache_dir=tmp_path)
    assert store.get_run(rid)["status"] == "cancelled"


def test_failure_is_recorded_with_its_error(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    missing = tmp_path / "no-such-folder"
    with pytest.raises(DropError, match=str(missing)):
        run(RunConfig(**{**TINY, "dataset": f"imagefolder:{missing}", "model": "cnn"}), store=store,
            cache_dir=tmp_path)
    (row,) = store.list_runs().to_dict("records")
    assert row["status"] == "failed" and str(missing) in row["error"]


def test_resolution_presets_first_user_wins_and_is_logged(caplog):
    with caplog.at_level(logging.INFO, logger="drop_core.config"):
        cfg, lines = resolve(RunConfig(dataset="digits", preset="cpu", epochs=7, device="cpu"))
    assert cfg.model == "mlp" and cfg.epochs == 7 and cfg.batch_size == 64 and cfg.query_model == "mlp"
    assert "Overriding: epochs = 7 (preset 'cpu' has 30)" in caplog.messages
    assert "preset 'cpu': batch_size = 64" in lines
    paper, _ = resolve(RunConfig(dataset="digits", preset="paper", model="vgg19", device="cpu"))
    assert (paper.lr, paper.weight_decay, paper.epochs, paper.epoch_scaling) == (0.1, 5e-4, 160, True)
    assert resolve(cfg)[0] == cfg and run_key(cfg) == run_key(resolve(RunConfig.from_dict(cfg.to_dict()))[0])


def test_run_key_covers_every_result_field_but_not_download():
    cfg, _ = resolve(RunConfig(**TINY))
    assert run_key(dataclasses.replace(cfg, lr=cfg.lr * 2)) != run_key(cfg)
    assert run_key(dataclasses.replace(cfg, du_window=11)) != run_key(cfg)
    assert run_key(dataclasses.replace(cfg, download=True)) == run_key(cfg)


@pytest.mark.parametrize("flip, expected", [(None, False), (True, True)])   # None: the dataset's (digits: no flips)
def test_flip_option_reaches_the_final_model_only(tmp_path, monkeypatch, flip, expected):
    seen = []

    def spy(model, data, train_idx, cfg, **kw):
        seen.append(("query" if train_idx is None else "final", data.flip, cfg.augment))
        return real_train(model, data, train_idx, cfg, **kw)

    real_train = corrections.train
    monkeypatch.setattr(corrections, "train", spy)
    monkeypatch.setattr(query, "train", spy)
    run(RunConfig(**TINY, flip=flip, augment=True, density=0.5), cache_dir=tmp_path)
    assert seen[-1] == ("final", expected, True)
    assert all(not aug for stage, _, aug in seen if stage == "query")   # query models never augment
    cfg, _ = resolve(RunConfig(**TINY))
    assert run_key(dataclasses.replace(cfg, flip=False)) != run_key(cfg)


def test_unknown_key_and_bad_values_are_rejected():
    with pytest.raises(DropError) as e:
        RunConfig.from_dict({"densty": 0.5})
    assert str(e.value).startswith("Unknown run config key 'densty'. Valid keys: dataset, data_root,")
    with pytest.raises(DropError) as e:
        resolve(RunConfig(density=1.5))
    assert str(e.value) == "The 'density' parameter of run must be a float in the range (0.0, 1.0]. Got 1.5 instead."
    with pytest.raises(DropError, match="Unknown scorer 'el2m'. Valid scorers: "):
        resolve(RunConfig(scorer="el2m"))


def test_query_plans_follow_the_scorer_schedules():
    def plan(**kw):
        return pipeline.query_plan(resolve(RunConfig(**{**TINY, "epochs": 20, "query_inits": 4, **kw}))[0])

    assert plan(scorer="el2n").schedule == "early" and plan(scorer="el2n").inits == 4
    assert plan(scorer="el2n").epochs == 5                     # cpu preset: a quarter of the epochs
    assert (plan(scorer="forgetting").epochs, plan(scorer="forgetting").inits) == (20, 1)
    assert plan(scorer="random", quoter="drop").schedule == "early"     # DRoP needs validation recall
    assert plan(scorer="random", quoter="uniform").schedule == "none"
    assert plan(scorer="el2n", density=1.0).schedule == "none"


def test_a_class_left_with_no_samples_is_named():
    data = load_dataset("digits")
    cfg, _ = resolve(RunConfig(**TINY))
    kept = np.ones(data.num_classes, np.int64)
    kept[3] = 0
    recall = np.full(data.num_classes, 0.9)
    recall[3] = 1.0
    (msg,) = pipeline.empty_class_warnings(cfg, data, Selection(np.arange(9), kept), recall)
    assert msg.startswith(f"Class '3' keeps 0 of {data.class_sizes()[3]} training samples (its validation "
                          f"recall is 1.000, so the drop quota gives it nothing)")


def test_killed_run_is_interrupted_and_the_rerun_resumes_from_the_cache(tmp_path):
    store_path, cache = tmp_path / "s.sqlite", tmp_path / "cache"
    args = [sys.executable, "-m", "drop_core", "run", "--dataset", "digits", "--model", "mlp", "--epochs", "40",
            "--query-epochs", "80", "--query-inits", "3", "--scorer", "el2n", "--device", "cpu",
            "--store", str(store_path), "--cache-dir", str(cache), "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    store = None
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if store_path.exists():
                store = store or Store(store_path)
                ids = store.list_runs()["id"].tolist()
                if ids and any(e.get("init") == 1 for e in store.events(ids[0])):
                    break
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read().decode()
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    (rid,) = Store(store_path).list_runs()["id"].tolist()
    assert Store(store_path).get_run(rid)["status"] == "interrupted"
    assert main(args[3:]) == 0                    # the same command again, in this process
    runs = Store(store_path).list_runs()
    assert runs["status"].tolist() == ["interrupted", "finished"]
    new = int(runs["id"].iloc[1])
    trained = {e.get("init") for e in Store(store_path).events(new) if e["stage"] == "query" and e.get("event")}
    assert 0 not in trained and 2 in trained       # init 0 came from the cache


def test_a_class_floor_the_budget_cannot_meet_names_its_flag_before_any_training(tmp_path):
    with pytest.raises(DropError) as e:
        run(RunConfig(**{**TINY, "density": 0.05, "min_per_class": None}), cache_dir=tmp_path / "cache")
    assert str(e.value).startswith("The class floor min_per_class=20 (preset 'cpu' unless you set it) needs 200 "
                                   "samples, but density 0.05 keeps only 54 of 1078.")
    assert "--min-per-class" in str(e.value)
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*.npz"))


def test_a_changed_image_folder_is_a_new_run_with_new_query_models(tmp_path):
    """Same file count, one image rewritten: never the old result or the old query models."""
    from PIL import Image

    rng = np.random.default_rng(0)
    root = tmp_path / "imgs"
    for split, n in (("train", 12), ("test", 6)):
        for c in ("a", "b"):
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(root / split / c / f"{i}.png")
    store = Store(tmp_path / "s.sqlite")
    cfg = RunConfig(dataset=f"imagefolder:{root}", model="cnn", preset="cpu", epochs=1, query_inits=1,
                    device="cpu", min_per_class=0, batch_size=8)
    first = run(cfg, store=store, cache_dir=tmp_path / "cache")
    assert not first.query_cache_hit
    assert run(cfg, store=store, cache_dir=tmp_path / "cache").reused
    target = root / "train" / "a" / "0.png"
    time.sleep(0.01)
    Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(target)
    second = run(cfg, store=store, cache_dir=tmp_path / "cache")
    assert not second.reused and not second.query_cache_hit and second.key != first.key
    assert len(store.list_runs()) == 2


def test_cli_flags_of_schedule_correction_and_imbalance_reach_the_json_result(capsys, tmp_path):
    import json

    argv = ["run", "--dataset", "digits", "--model", "mlp", "--epochs", "2", "--query-inits", "1", "--device", "cpu",
            "--quiet", "--no-store", "--cache-dir", str(tmp_path), "--json", "--imbalance", "10",
            "--min-per-class", "0", "--query-epochs", "1", "--lr", "0.0001"]
    assert main([*argv, "--correction", "logit_adjust", "--query-schedule", "early"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    sizes = result["class_sizes"]
    assert list(sizes.values()) == [107, 84, 63, 51, 39, 30, 23, 17, 13, 10]          # long-tailed, recorded
    assert result["config"]["imbalance"] == 10 and result["config"]["correction"] == "logit_adjust"
    assert result["train_size"] == sum(sizes.values()) and result["kept_per_class"] == sizes   # nothing pruned
    assert any(w.startswith("DEGENERATE QUERY MODEL: query model init 0") for w in result["warnings"])
    assert main([*argv, "--correction", "none", "--query-schedule", "reference"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["train_size"] == 219 and result["final_epochs"] == 2            # round(0.5 * 437), halves up
    assert any(w.startswith("DEGENERATE QUERY MODEL: the full-data reference model (2 epochs)")
               for w in result["warnings"])


def test_cli_rejects_an_unknown_correction_in_one_line(capsys):
    assert main(["run", "--correction", "shift", "--no-store"]) == 1
    assert capsys.readouterr().err == ("error: The 'correction' parameter of run must be one of none, logit_adjust, "
                                       "cdbw. Got 'shift' instead.\n")
