"""Background jobs: pipeline runs in a separate worker process that reports through the store.

The pattern of streamlit/docs ``multithreading-no-streamlit-iterative.py``, with a process instead
of a thread (training needs the cores and must outlive a page rerun). The page calls
:func:`submit` once per click and keeps only the returned :class:`Job` (run ids) in
``session_state``; the worker (``python -m app.worker``) never calls ``st.*``: it writes progress
events and results to the store and watches the store's cancel flag. A fragment polls
:func:`progress`.

The run rows carry the lifecycle (see :mod:`drop_core.store`): the worker's pid is recorded on its
queued runs at start (:meth:`Store.assign_worker`), so a worker that dies leaves them ``interrupted``,
not queued forever; a session that joins an identical active run counts in its ``followers``
column, so the session that queued it does not cancel it from under the other.
"""
from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from drop_core.config import RunConfig, resolve_all, run_key
from drop_core.store import Store

REPO_ROOT = Path(__file__).resolve().parent.parent
TERMINAL = ("finished", "failed", "cancelled", "interrupted")

# Where each pipeline stage sits in a run, as a fraction of the run (rough: query and final
# training dominate). Epoch events move the estimate within a stage.
STAGE_SPAN: dict[str, tuple[float, float]] = {
    "queued": (0.0, 0.0),
    "load": (0.0, 0.05),
    "query": (0.05, 0.45),
    "score": (0.45, 0.5),
    "select": (0.5, 0.55),
    "final": (0.55, 0.95),
    "eval": (0.95, 1.0),
    "done": (1.0, 1.0),
}

_children: list[subprocess.Popen] = []   # workers this server started; polled so none lingers as a zombie


@dataclass(frozen=True)
class Job:
    """The runs one click asked for, in plan order; ``queued`` are those this job started (and may cancel)."""

    run_ids: tuple[int, ...]
    queued: tuple[int, ...]
    reused: tuple[int, ...]      # identical runs already finished in the store: shown at once
    joined: tuple[int, ...]      # identical runs another session is already running: followed, not restarted


@dataclass(frozen=True)
class JobProgress:
    """What the progress fragment shows."""

    total: int
    done: int
    active: bool
    fraction: float              # 0..1 over the whole job
    current: int | None          # run id in progress
    stage: str
    epoch: int | None
    epochs: int | None
    message: str
    elapsed: float               # seconds since the first run started
    eta: float | None            # seconds left, None until there is enough progress to extrapolate
    statuses: dict[int, str]


def submit(store: Store, configs: list[RunConfig]) -> Job:
    """Queue the runs of ``configs`` not already in the store and start one worker for them.

    Raises DropError for an invalid config (before anything is queued). A config whose identical run
    is finished is reused, one that is queued or running (in any session, the CLI or a sweep) is
    joined as a follower; so repeating a click never trains the same thing twice. The worker's pid
    goes on the queued rows at once, so they end ``interrupted`` if it dies before running them.
    """
    resolved = resolve_all(configs)   # rows show the model and hyperparameters used; each dataset fingerprinted once
    run_ids: list[int] = []
    queued: list[int] = []
    reused: list[int] = []
    joined: list[int] = []
    for config in resolved:
        rid, state = store.claim_run(config.to_dict(), run_key(config), follow=True)
        if state == "finished":
            reused.append(rid)
        elif state == "active":
            joined.append(rid)
        else:
            queued.append(rid)
        run_ids.append(rid)
    if queued:
        pid = start_worker(store.path, queued)
        store.assign_worker(queued, pid)
        for rid in queued:
            store.add_event(rid, {"stage": "queued", "message": f"waiting for the worker (pid {pid})"})
    return Job(tuple(run_ids), tuple(queued), tuple(reused), tuple(joined))


def start_worker(store_path: str | os.PathLike, run_ids: list[int]) -> int:
    """Start ``python -m app.worker`` on ``run_ids`` in its own session; returns its pid.

    Its output goes to ``<store folder>/logs/worker-<first run id>.log``.
    """
    reap()
    log_dir = Path(store_path).resolve().parent / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / f"worker-{run_ids[0]}.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app.worker", "--store", str(store_path), *map(str, run_ids)],
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,   # a Ctrl-C of the server does not kill a training run mid-write
        )
    _children.append(proc)
    return proc.pid


def reap() -> None:
    """Collect workers that have exited (so a dead worker's pid reads as dead)."""
    _children[:] = [p for p in _children if p.poll() is None]


def cancel(store: Store, job: Job) -> list[int]:
    """Ask this job's own unfinished runs to stop; returns the runs left running because they are shared.

    A queued run is cancelled at once, a running one at its next training step (the pipeline marks
    it ``cancelled``). A run with followers (another session, or a CLI run waiting for it) is still
    wanted there and is left to finish. The runs this job joined lose this job as a follower, so
    their own session may cancel them.
    """
    for rid in job.joined:
        if store.get_run(rid)["status"] not in TERMINAL:
            store.unfollow(rid)
    shared = []
    for rid in job.queued:
        run = store.get_run(rid)
        if run["status"] in TERMINAL:
            continue
        if run["followers"] > 0:
            shared.append(rid)
        else:
            store.request_cancel(rid)
    return shared


def mark_orphans(store: Store) -> list[int]:
    """Collect this server's exited workers (a zombie's pid still reads as alive), then let the store mark
    active runs whose process is gone as ``interrupted``; returns the runs it marked."""
    reap()
    return store.mark_interrupted()


def progress(store: Store, job: Job, *, now: dt.datetime | None = None) -> JobProgress:
    """Read the job's runs and latest stage events (warnings skipped) from the store and summarise them."""
    mark_orphans(store)
    runs = [store.get_run(rid) for rid in job.run_ids]
    events = [None if r["status"] in TERMINAL else store.latest_event(r["id"], stages=STAGE_SPAN) for r in runs]
    timed = set(job.run_ids) - set(job.reused)
    return summarize(runs, events, now or dt.datetime.now(dt.UTC), timed=timed)


def run_fraction(status: str, event: dict | None) -> float:
    """How far one run is, 0..1, from its status and latest progress event."""
    if status in TERMINAL:
        return 1.0
    if not event:
        return 0.0
    lo, hi = STAGE_SPAN.get(event.get("stage", ""), (0.0, 0.0))
    epoch, epochs = event.get("epoch"), event.get("epochs")
    step, steps = event.get("step"), event.get("steps")
    init, inits = event.get("init") or 0, event.get("inits") or 1
    if epoch is None or not epochs:
        return lo
    within = (epoch + (step / steps if step is not None and steps else 0.0)) / epochs
    return lo + (hi - lo) * min(1.0, (init + min(1.0, within)) / inits)


def summarize(runs: list[dict], events: list[dict | None], now: dt.datetime, *,
              timed: set[int] | None = None) -> JobProgress:
    """Pure summary of a job: done count, overall fraction, the current run's stage, elapsed and ETA.

    ``runs`` are ``Store.get_run`` dicts, ``events`` the matching latest stage events (or None).
    The clock runs from the first start to the last end among the ``timed`` run ids (default: all),
    so runs reused from earlier jobs do not count.
    """
    statuses = {int(r["id"]): r["status"] for r in runs}
    fractions = [run_fraction(r["status"], e) for r, e in zip(runs, events)]
    fraction = sum(fractions) / len(runs) if runs else 1.0
    done = sum(s in TERMINAL for s in statuses.values())
    current = next(((r, e) for r, e in zip(runs, events) if r["status"] == "running"), None)
    if current is None:
        current = next(((r, e) for r, e in zip(runs, events) if r["status"] == "queued"), (None, None))
    run, event = current
    event = event or {}
    clocked = [r for r in runs if timed is None or int(r["id"]) in timed]
    starts = [_time(r["started"]) for r in clocked if r["started"]]
    ends = [_time(r["finished"]) for r in clocked if r["finished"]]
    active = done < len(runs)
    end = now if active or not ends else max(ends)
    elapsed = (end - min(starts)).total_seconds() if starts else 0.0
    eta = elapsed * (1 - fraction) / fraction if active and fraction >= 0.02 and elapsed > 0 else None
    return JobProgress(
        total=len(runs),
        done=done,
        active=active,
        fraction=fraction,
        current=None if run is None else int(run["id"]),
        stage=event.get("stage", "done" if not active else "queued"),
        epoch=event.get("epoch"),
        epochs=event.get("epochs"),
        message=event.get("message", ""),
        elapsed=max(0.0, elapsed),
        eta=eta,
        statuses=statuses,
    )


def _time(stamp: str) -> dt.datetime:
    return dt.datetime.fromisoformat(stamp)
