"""The results store: migrations, atomic writes, interrupted runs, export."""
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from drop_core.errors import DropError
from drop_core.store import Store

CLASSES = ["cat", "dog", "eel"]
REPO = Path(__file__).resolve().parents[2]


def _result(acc=(0.9, 0.5, 0.7)):
    return {
        "average_accuracy": float(np.mean(acc)), "worst_class_accuracy": min(acc),
        "class_accuracy": dict(zip(CLASSES, acc)), "kept_per_class": {"cat": 3, "dog": 8, "eel": 5},
        "class_sizes": {"cat": 10, "dog": 10, "eel": 10}, "val_recall": {"cat": 0.95, "dog": 0.6, "eel": 0.8},
        "train_size": 16, "config": {"density": 0.5}, "warnings": [], "query_cache_hit": False,
        "timings": {"query": 1.5, "final": 2.0}, "kept_indices": [1, 4, 7, 9],
    }


@pytest.fixture
def store(tmp_path):
    return Store(tmp_path / "runs" / "drop.sqlite")


def test_migrations_applied_once(tmp_path):
    path = tmp_path / "s.sqlite"
    Store(path)
    assert Store(path).applied_migrations() == ["m001_initial", "m002_followers", "m003_test_counts"]


def test_test_counts_are_stored_on_the_test_rows(store):
    rid = store.create_run({"density": 0.5}, "k")
    store.save_result(rid, {**_result(), "test_counts": {"cat": 20, "dog": 21, "eel": 19},
                            "val_class_accuracy": {"cat": 1.0, "dog": 0.5, "eel": 0.5}})
    cm = store.class_metrics([rid])
    assert cm[cm.split == "test"]["test_count"].tolist() == [20, 21, 19]
    assert cm[cm.split == "val"]["test_count"].isna().all()


def test_run_lifecycle_and_result_roundtrip(store):
    rid = store.create_run({"density": 0.5, "scorer": "el2n"}, "k1")
    assert store.get_run(rid)["status"] == "queued"
    assert store.active_run_for_key("k1") == rid and store.finished_run_for_key("k1") is None
    store.set_status(rid, "running")
    store.set_environment(rid, {"torch": "x", "device": "cpu"})
    store.add_event(rid, {"stage": "query", "epoch": 1, "epochs": 3, "message": "m"})
    store.add_event(rid, {"stage": "final", "epoch": 2, "epochs": 3, "message": "m2"})
    store.save_result(rid, _result())
    run = store.get_run(rid)
    assert run["status"] == "finished" and run["environment"]["device"] == "cpu"
    assert run["summary"]["worst_class_accuracy"] == 0.5 and run["timings"] == {"query": 1.5, "final": 2.0}
    assert store.finished_run_for_key("k1") == rid and store.active_run_for_key("k1") is None
    np.testing.assert_array_equal(store.kept_indices(rid), [1, 4, 7, 9])
    cm = store.class_metrics([rid])
    assert list(cm["class_name"]) == CLASSES and list(cm["kept"]) == [3, 8, 5]
    assert cm["test_count"].isna().all()          # a result without test counts stores NULL
    assert cm["val_recall"].tolist() == [0.95, 0.6, 0.8]
    assert [e["stage"] for e in store.events(rid)] == ["query", "final"]
    assert store.latest_event(rid)["message"] == "m2"
    runs = store.list_runs(status="finished")
    assert runs.loc[0, "scorer"] == "el2n" and runs.loc[0, "worst_class_accuracy"] == 0.5


def test_failed_write_leaves_nothing_behind(store):
    rid = store.create_run({}, "k", status="running")
    bad = _result()
    bad["class_accuracy"]["eel"] = "not a number"   # fails on the last class row, after two inserts
    with pytest.raises(ValueError):
        store.save_result(rid, bad)
    assert store.get_run(rid)["status"] == "running"
    assert store.class_metrics([rid]).empty and store.kept_indices(rid).size == 0


def test_process_killed_inside_a_transaction_leaves_nothing_behind(store):
    rid = store.create_run({}, "k", status="running")
    code = textwrap.dedent(f"""
        import os
        from drop_core.store import Store
        s = Store({str(store.path)!r})
        with s._tx() as db:
            db.execute("INSERT INTO class_metrics VALUES ({rid}, 'test', 0, 'cat', 1.0, 1, 1, 1.0, 1)")
            db.execute("UPDATE runs SET status='finished' WHERE id={rid}")
            os._exit(9)
    """)
    assert subprocess.run([sys.executable, "-c", code]).returncode == 9
    assert store.class_metrics([rid]).empty
    assert store.get_run(rid)["status"] == "running"


def test_dead_process_run_is_marked_interrupted(store):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    rid = store.create_run({}, "k", status="running")
    with store._tx() as db:   # pretend the run belonged to the finished process
        db.execute("UPDATE runs SET pid=? WHERE id=?", (proc.pid, rid))
    assert store.active_run_for_key("k") is None
    assert store.get_run(rid)["status"] == "interrupted"
    live = store.create_run({}, "k2", status="running")   # this process: alive
    assert Store(store.path).get_run(live)["status"] == "running"


def test_cancel_flag_and_delete(store):
    queued = store.create_run({}, "q")
    running = store.create_run({}, "r", status="running")
    store.request_cancel(queued)
    store.request_cancel(running)
    assert store.get_run(queued)["status"] == "cancelled"
    assert store.cancel_requested(running) and store.get_run(running)["status"] == "running"
    store.add_event(running, {"stage": "load"})
    store.delete_run(running)
    assert store.events(running) == []
    with pytest.raises(DropError, match=f"No run with id {running} in"):
        store.get_run(running)


def test_unknown_status_is_rejected(store):
    rid = store.create_run({}, "k")
    with pytest.raises(DropError) as e:
        store.set_status(rid, "done")
    assert str(e.value) == ("The 'status' parameter must be one of queued, running, finished, failed, "
                            "cancelled, interrupted. Got 'done' instead.")


def test_export_csv_and_json(store, tmp_path):
    a = store.create_run({"density": 0.5}, "a", status="running")
    store.save_result(a, _result())
    b = store.create_run({"density": 0.3}, "b", status="running")
    store.set_status(b, "failed", error="boom")
    store.export(tmp_path / "out.csv", "csv")
    table = pd.read_csv(tmp_path / "out.csv")
    assert len(table) == 3 + 1       # 3 class rows of a, one empty row of b
    assert set(table.loc[table.run_id == a, "class_name"]) == set(CLASSES)
    assert table.loc[table.run_id == b, "error"].item() == "boom"
    store.export(tmp_path / "out.json", "json")
    runs = json.loads((tmp_path / "out.json").read_text())
    assert [r["id"] for r in runs] == [a, b]
    assert [c["class_name"] for c in runs[0]["classes"]] == CLASSES and runs[1]["classes"] == []
    with pytest.raises(DropError, match="must be one of 'csv', 'json'. Got 'xml' instead."):
        store.export(tmp_path / "out.xml", "xml")


def test_claim_run_queues_a_config_once_even_when_sessions_race(store):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        claims = list(pool.map(lambda _: store.claim_run({"density": 0.5}, "k1"), range(8)))
    created = [rid for rid, state in claims if state == "created"]
    assert len(created) == 1
    assert claims.count((created[0], "active")) == 7          # every other session joins that run
    assert len(store.list_runs()) == 1

    store.save_result(created[0], _result())
    assert store.claim_run({"density": 0.5}, "k1") == (created[0], "finished")
    rid, state = store.claim_run({"density": 0.3}, "k2")
    assert state == "created" and rid != created[0]


def test_queued_points_of_a_killed_sweep_driver_are_interrupted_but_app_queues_are_not(store):
    code = textwrap.dedent(f"""
        import os
        from drop_core.store import Store
        s = Store({str(store.path)!r})
        sweep = s.create_sweep("grid", {{}})
        print(s.create_run({{"density": 0.5}}, "point", sweep_id=sweep), s.create_run({{"density": 0.5}}, "app"))
        os._exit(9)   # dies like a SIGKILLed driver: nothing after this runs
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    point, app_run = map(int, out.stdout.split())
    assert store.mark_interrupted() == [point]
    assert store.get_run(point)["status"] == "interrupted"
    assert store.get_run(app_run)["status"] == "queued"       # the app's worker, not its creator, runs it
