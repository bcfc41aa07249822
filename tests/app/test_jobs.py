"""Background jobs: the progress summary, and real tiny jobs through the worker process."""
import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app import jobs
from app.plan import comparison_configs
from drop_core.pipeline import RunConfig
from drop_core.store import Store, process_alive

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
TINY = RunConfig(dataset="gaussians", preset="cpu", epochs=4, device="cpu", query_inits=1)


def _run(rid, status, started=None, finished=None):
    stamp = lambda s: None if s is None else (T0 + dt.timedelta(seconds=s)).isoformat()  # noqa: E731
    return {"id": rid, "status": status, "started": stamp(started), "finished": stamp(finished)}


def test_run_fraction_follows_stage_init_and_epoch():
    assert jobs.run_fraction("queued", None) == 0.0
    assert jobs.run_fraction("cancelled", {"stage": "query"}) == 1.0
    lo, hi = jobs.STAGE_SPAN["final"]
    assert jobs.run_fraction("running", {"stage": "final", "epoch": 1, "epochs": 4, "step": 5, "steps": 10}) \
        == pytest.approx(lo + (hi - lo) * 1.5 / 4)
    lo, hi = jobs.STAGE_SPAN["query"]
    assert jobs.run_fraction("running", {"stage": "query", "init": 1, "inits": 2, "epoch": 0, "epochs": 2}) \
        == pytest.approx(lo + (hi - lo) * 0.5)


def test_summarize_reports_current_run_elapsed_and_eta():
    runs = [_run(1, "finished", 0, 10), _run(2, "running", 10), _run(3, "queued")]
    events = [None, {"stage": "final", "epoch": 0, "epochs": 2, "message": "final model"}, None]
    p = jobs.summarize(runs, events, T0 + dt.timedelta(seconds=20))
    frac = (1.0 + jobs.STAGE_SPAN["final"][0]) / 3
    assert (p.total, p.done, p.active, p.current, p.stage, p.epoch, p.epochs) == (3, 1, True, 2, "final", 0, 2)
    assert p.fraction == pytest.approx(frac)
    assert p.elapsed == pytest.approx(20.0)
    assert p.eta == pytest.approx(20.0 * (1 - frac) / frac)


def test_summarize_of_a_finished_job_stops_the_clock_and_ignores_reused_runs():
    runs = [_run(1, "finished", -500, -490), _run(2, "finished", 0, 10), _run(3, "cancelled", 10, 12)]
    p = jobs.summarize(runs, [None] * 3, T0 + dt.timedelta(seconds=100), timed={2, 3})
    assert (p.active, p.done, p.fraction, p.eta, p.elapsed) == (False, 3, 1.0, None, 12.0)


def _zombie(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """Wait until ``proc`` has exited but is not reaped (its pid still answers ``kill 0``)."""
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{proc.pid}/stat").read_text().split(") ")[1][0] != "Z":
        assert time.monotonic() < deadline, "the child did not exit"
        time.sleep(0.01)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to see a zombie")
def test_queued_runs_of_a_worker_that_died_are_interrupted_once_it_is_reaped(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    rid, state = store.claim_run({"dataset": "gaussians"}, "k")
    assert state == "created" and store.get_run(rid)["status"] == "queued"
    worker = subprocess.Popen([sys.executable, "-c", "pass"])
    jobs._children.append(worker)                    # as start_worker keeps it
    store.assign_worker([rid], worker.pid)
    _zombie(worker)
    assert process_alive(worker.pid)                 # unreaped, the dead worker still looks alive
    assert jobs.mark_orphans(store) == [rid]
    assert jobs.mark_orphans(store) == []            # already marked
    run = store.get_run(rid)
    assert run["status"] == "interrupted" and "ended without finishing" in run["error"]


def test_submit_records_the_worker_pid_on_its_queued_runs_and_joins_active_ones(tmp_path, monkeypatch):
    store = Store(tmp_path / "s.sqlite")
    monkeypatch.setattr(jobs, "start_worker", lambda path, run_ids: os.getpid())   # a live "worker": this process
    configs = comparison_configs(TINY, scorers=["random"], quoters=["none"], densities=[0.5], seeds=[0, 1],
                                 full_data=False)
    job = jobs.submit(store, configs)
    assert len(job.queued) == 2 and all(store.get_run(r)["pid"] == os.getpid() for r in job.queued)
    assert all(store.get_run(r)["followers"] == 0 for r in job.queued)
    other = jobs.submit(store, configs[:1])          # a second session asks for the first run
    assert other.joined == job.queued[:1] and other.queued == ()
    assert store.get_run(job.queued[0])["followers"] == 1
    assert jobs.cancel(store, job) == [job.queued[0]]                 # followed: spared
    assert store.get_run(job.queued[1])["status"] == "cancelled"
    assert jobs.cancel(store, other) == []                            # the follower gives it up ...
    assert store.get_run(job.queued[0])["followers"] == 0
    assert jobs.cancel(store, job) == []                              # ... so its own session may cancel it
    assert store.get_run(job.queued[0])["status"] == "cancelled"


def test_progress_reads_the_latest_stage_event_and_skips_warnings(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    rid = store.create_run({"dataset": "gaussians"}, "k", status="running")
    store.add_event(rid, {"stage": "final", "epoch": 1, "epochs": 4, "message": "final model"})
    store.add_event(rid, {"stage": "warning", "message": "a warning"})
    p = jobs.progress(store, jobs.Job((rid,), (rid,), (), ()))
    assert (p.stage, p.epoch, p.epochs, p.message) == ("final", 1, 4, "final model")


# --- real jobs through the worker process -------------------------------------------------

@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("DROP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return Store(tmp_path / "runs.sqlite")


def _wait(store, job, timeout=180.0, until=lambda p: not p.active):
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        p = jobs.progress(store, job)
        seen.append(p)
        if until(p):
            return seen
        time.sleep(0.2)
    raise AssertionError(f"job did not reach the expected state in {timeout} s; last: {seen[-1]}")



@pytest.mark.slow
def test_a_real_job_reports_progress_and_results_and_is_never_duplicated(env):
    store = env
    configs = comparison_configs(TINY, scorers=["random"], quoters=["none", "drop"], densities=[0.5, 0.7],
                                 seeds=[0], full_data=True)
    job = jobs.submit(store, configs)
    assert len(job.queued) == 5 and not job.reused
    again = jobs.submit(store, configs)                      # a second click (or tab) while it runs
    assert again.queued == () and set(again.joined) | set(again.reused) == set(job.run_ids)
    seen = _wait(store, job)
    assert any(0.0 < p.fraction < 1.0 and p.epochs for p in seen), [p.stage for p in seen]
    assert {p.stage for p in seen} & {"query", "final"}
    assert set(seen[-1].statuses.values()) == {"finished"}
    metrics = store.class_metrics(list(job.run_ids))
    assert len(metrics[metrics["split"] == "test"]) == 5 * 10
    assert jobs.submit(store, configs).reused == job.run_ids  # finished: shown, not retrained
    first_drop, second_drop = (rid for rid in job.run_ids if store.get_run(rid)["config"]["quoter"] == "drop")
    assert store.get_run(first_drop)["summary"]["query_cache_hit"] is False
    assert store.get_run(second_drop)["summary"]["query_cache_hit"] is True   # only the density changed


@pytest.mark.slow
def test_cancel_stops_own_runs_and_spares_a_run_another_session_follows(env):
    store = env
    long = RunConfig(dataset="gaussians", preset="cpu", epochs=400, device="cpu")
    configs = comparison_configs(long, scorers=["random"], quoters=["none"], densities=[0.5, 0.6, 0.7], seeds=[0],
                                 full_data=False)
    job = jobs.submit(store, configs)
    first, second, third = job.run_ids
    _wait(store, job, timeout=60, until=lambda p: p.stage == "final" and p.statuses[first] == "running")
    other = jobs.submit(store, configs[1:2])                 # another session asks for the second run
    assert other.joined == (second,)
    assert jobs.cancel(store, job) == [second]
    _wait(store, job, timeout=60, until=lambda p: p.statuses[first] == "cancelled")
    statuses = {rid: store.get_run(rid)["status"] for rid in job.run_ids}
    assert statuses[first] == "cancelled" and statuses[third] == "cancelled"
    assert statuses[second] in ("queued", "running")         # still wanted by the other session
    store.request_cancel(second)
    seen = _wait(store, job, timeout=60)
    assert set(seen[-1].statuses.values()) == {"cancelled"}
    assert store.class_metrics(list(job.run_ids)).empty


@pytest.mark.slow
def test_a_failing_run_is_marked_failed_with_its_reason_and_the_next_run_still_runs(env, tmp_path):
    store = env
    missing = RunConfig(dataset=f"imagefolder:{tmp_path / 'gone'}", model="mlp", device="cpu", epochs=1)
    job = jobs.submit(store, [missing, TINY])
    seen = _wait(store, job, timeout=120)
    assert list(seen[-1].statuses.values()) == ["failed", "finished"]
    assert str(tmp_path / "gone") in store.get_run(job.run_ids[0])["error"]
