"""The results store: runs, per-class metrics, kept indices and progress events in SQLite.

One file (WAL mode, so the app can read while workers write), numbered migrations in the
style of simonw/llm, and one transaction per write: a process killed mid-write leaves the
database as it was before that write. Every public method opens its own short-lived
connection, so a ``Store`` can be shared by threads and passed to worker processes.

A run row records the process (pid, host) that owns it: the process running it, or the worker
or sweep driver that will (:meth:`Store.assign_worker`). An active run whose owner is gone
(same host, :func:`process_alive` is false) is marked ``interrupted`` the next time the store is
opened or listed. Every status change goes through one function (:func:`drop_core.store.schema.set_status`).

Opening checks the file before writing a byte: a file that is not SQLite, or a SQLite database
of another program (tables but none of ours), is a DropError and stays untouched (it is only
read, see :mod:`drop_core.store.files`); so is a read-only file or folder, or a path under a
regular file.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import time
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from drop_core.errors import DropError
from drop_core.store.files import check_path, write_atomic
from drop_core.store.schema import (
    ACTIVE_STATUSES,
    CLASS_METRIC_COLUMNS,
    MIGRATIONS,
    STATUSES,
    SUMMARY_KEYS,
    as_float,
    as_int,
    check_status,
    insert_run,
    json_default,
    now,
    run_dict,
    set_status,
)

__all__ = ["ACTIVE_STATUSES", "DEFAULT_STORE_PATH", "MIGRATIONS", "STATUSES", "Store", "default_store_path",
           "process_alive"]
DEFAULT_STORE_PATH = "runs/drop.sqlite"


def default_store_path() -> str:
    """``$DROP_STORE`` if set, else ``runs/drop.sqlite``."""
    return os.environ.get("DROP_STORE") or DEFAULT_STORE_PATH


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (``os.kill(pid, 0)``; another user's process counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:      # exists, owned by someone else
        return True
    return True


class Store:
    """Results store over one SQLite file (created with its parent folder when missing)."""

    def __init__(self, path: str | os.PathLike | None = None) -> None:
        self.path = Path(path if path is not None else default_store_path())
        check_path(self.path)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
        self._migrate()
        self.mark_interrupted()

    # --- plumbing ---------------------------------------------------------------------

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        except sqlite3.OperationalError as e:
            raise DropError(f"Cannot open the results store {str(self.path)!r}: {e}.") from None
        try:
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA foreign_keys=ON")
            db.execute("PRAGMA busy_timeout=30000")
            yield db
        finally:
            db.close()

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: everything inside commits together or not at all."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def _migrate(self) -> None:
        with self._connect() as db:
            if db.execute("SELECT 1 FROM sqlite_master WHERE name='_migrations'").fetchone():
                done = {r["name"] for r in db.execute("SELECT name FROM _migrations")}
                if all(fn.__name__.lstrip("_") in done for fn in MIGRATIONS):
                    return                                   # nothing to do: no write lock taken
        with self._tx() as db:
            db.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied TEXT NOT NULL)")
            done = {r["name"] for r in db.execute("SELECT name FROM _migrations")}
            for fn in MIGRATIONS:
                name = fn.__name__.lstrip("_")
                if name not in done:
                    fn(db)
                    db.execute("INSERT INTO _migrations VALUES (?, ?)", (name, now()))

    def applied_migrations(self) -> list[str]:
        with self._connect() as db:
            return [r["name"] for r in db.execute("SELECT name FROM _migrations ORDER BY rowid")]

    def _row(self, db: sqlite3.Connection, run_id: int) -> sqlite3.Row:
        row = db.execute("SELECT * FROM runs WHERE id = ?", (int(run_id),)).fetchone()
        if row is None:
            raise DropError(f"No run with id {run_id} in {str(self.path)!r}. "
                            f"List the runs with `python -m drop_core list runs`.")
        return row

    # --- runs -------------------------------------------------------------------------

    def create_sweep(self, name: str, config: dict) -> int:
        """A sweep groups runs; returns its id."""
        with self._tx() as db:
            cur = db.execute("INSERT INTO sweeps (name, config, created) VALUES (?, ?, ?)",
                             (name, json.dumps(config, sort_keys=True), now()))
            return int(cur.lastrowid)

    def create_run(self, config: dict, key: str, *, status: str = "queued", sweep_id: int | None = None) -> int:
        """Insert a run row and return its id. A ``running`` run records this process."""
        check_status(status)
        with self._tx() as db:
            return insert_run(db, config, key, status, sweep_id)

    def claim_run(self, config: dict, key: str, *, start: bool = False, follow: bool = False) -> tuple[int, str]:
        """In one transaction: the finished run with this key (``"finished"``), else its queued or running
        run (``"active"``), else a new run (``"created"``). Two sessions clicking Run at the same moment,
        or two identical CLI runs, therefore never compute the same config twice.

        ``start``: a created run is ``running`` and owned by this process at once (the CLI runs it
        itself; if it dies, the run reads as interrupted and its followers stop waiting), else
        ``queued``. ``follow``: an active run gets one more follower (see :meth:`follow`)."""
        self.mark_interrupted()
        with self._tx() as db:
            row = db.execute("SELECT id, status FROM runs WHERE key=? AND status IN ('finished','queued','running') "
                             "ORDER BY status='finished' DESC, id DESC LIMIT 1", (key,)).fetchone()
            if row is None:
                return insert_run(db, config, key, "running" if start else "queued", None), "created"
            if row["status"] == "finished":
                return int(row["id"]), "finished"
            if follow:
                db.execute("UPDATE runs SET followers = followers + 1 WHERE id=?", (row["id"],))
            return int(row["id"]), "active"

    def wait_for(self, run_id: int, *, poll: float = 0.5, timeout: float | None = None,
                 on_wait: Callable[[dict], None] | None = None) -> str:
        """Block until run ``run_id`` leaves ``queued``/``running``; returns its status then.

        Every ``poll`` seconds it re-reads the row and marks runs whose owner died as
        ``interrupted`` (so a killed first run ends the wait); ``on_wait(run)`` is called with the
        row whenever its status changes. After ``timeout`` seconds it returns the active status.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        seen = None
        while True:
            run = self.get_run(run_id)
            if run["status"] not in ACTIVE_STATUSES:
                return run["status"]
            if on_wait is not None and run["status"] != seen:
                on_wait(run)
            seen = run["status"]
            if deadline is not None and time.monotonic() >= deadline:
                return run["status"]
            time.sleep(poll)
            self.mark_interrupted()

    def follow(self, run_id: int) -> int:
        """Count one more session following ``run_id``; returns the new count."""
        return self._add_followers(run_id, 1)

    def unfollow(self, run_id: int) -> int:
        """A follower no longer needs ``run_id``; returns the remaining count (never below 0)."""
        return self._add_followers(run_id, -1)

    def _add_followers(self, run_id: int, delta: int) -> int:
        with self._tx() as db:
            self._row(db, run_id)
            db.execute("UPDATE runs SET followers = MAX(0, followers + ?) WHERE id=?", (delta, run_id))
            return int(db.execute("SELECT followers FROM runs WHERE id=?", (run_id,)).fetchone()[0])

    def assign_worker(self, run_ids: list[int], pid: int) -> None:
        """Record process ``pid`` of this host as the owner of the queued ``run_ids`` (a worker started
        for them): when it dies before running them they read as ``interrupted``, not queued forever."""
        with self._tx() as db:
            for run_id in run_ids:
                db.execute("UPDATE runs SET pid=?, hostname=? WHERE id=? AND status='queued'",
                           (int(pid), socket.gethostname(), int(run_id)))

    def set_status(self, run_id: int, status: str, *, error: str | None = None) -> None:
        """Move a run to ``status``; ``running`` records this process (pid, host) and the start time."""
        check_status(status)
        with self._tx() as db:
            self._row(db, run_id)
            set_status(db, run_id, status, error)

    def set_environment(self, run_id: int, environment: dict) -> None:
        """Record where a run executes (torch version, device, host, ...)."""
        with self._tx() as db:
            self._row(db, run_id)
            db.execute("UPDATE runs SET environment=? WHERE id=?", (json.dumps(environment, sort_keys=True), run_id))

    def mark_interrupted(self) -> list[int]:
        """Mark runs of this host whose owning process is gone as ``interrupted``; returns their ids.

        Owned runs are ``running`` ones and the ``queued`` points of a sweep (owned by its driver)."""
        host = socket.gethostname()
        with self._connect() as db:
            rows = db.execute("SELECT id, pid FROM runs WHERE hostname=? AND "
                              "(status='running' OR (status='queued' AND pid IS NOT NULL))", (host,)).fetchall()
        dead = [r["id"] for r in rows if r["pid"] is None or not process_alive(int(r["pid"]))]
        if dead:
            with self._tx() as db:
                for run_id in dead:
                    set_status(db, run_id, "interrupted", "the process running it ended without finishing",
                                only_from=ACTIVE_STATUSES)
        return dead

    def finished_run_for_key(self, key: str) -> int | None:
        """The latest finished run with this config key, if any."""
        with self._connect() as db:
            row = db.execute("SELECT id FROM runs WHERE key=? AND status='finished' ORDER BY id DESC LIMIT 1",
                             (key,)).fetchone()
        return None if row is None else int(row["id"])

    def active_run_for_key(self, key: str) -> int | None:
        """The latest queued or running run with this config key, if any (dead processes excluded)."""
        self.mark_interrupted()
        with self._connect() as db:
            row = db.execute("SELECT id FROM runs WHERE key=? AND status IN ('queued','running') "
                             "ORDER BY id DESC LIMIT 1", (key,)).fetchone()
        return None if row is None else int(row["id"])

    def get_run(self, run_id: int) -> dict:
        """One run: id, key, status, config, error, created/started/finished, timings, summary, environment."""
        with self._connect() as db:
            row = self._row(db, run_id)
        return run_dict(row)

    def list_runs(self, *, status: str | None = None, sweep_id: int | None = None) -> pd.DataFrame:
        """One row per run: id, status, created, ..., then config columns and summary columns."""
        self.mark_interrupted()
        where, args = [], []
        if status is not None:
            check_status(status)
            where.append("status = ?")
            args.append(status)
        if sweep_id is not None:
            where.append("sweep_id = ?")
            args.append(int(sweep_id))
        sql = "SELECT * FROM runs" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id"
        with self._connect() as db:
            rows = db.execute(sql, args).fetchall()
        records = []
        for row in rows:
            run = run_dict(row)
            rec = {k: run[k] for k in ("id", "status", "created", "started", "finished", "key", "sweep_id", "error")}
            rec["seconds"] = sum(run["timings"].values()) if run["timings"] else None
            rec.update({k: v for k, v in run["config"].items() if k not in rec})
            summary = dict(run["summary"] or {})
            summary.pop("warnings", None)
            rec.update({k: v for k, v in summary.items() if k not in rec})
            records.append(rec)
        base = ["id", "status", "created", "started", "finished", "key", "sweep_id", "error", "seconds"]
        return pd.DataFrame.from_records(records, columns=None if records else base)

    def save_result(self, run_id: int, result: dict) -> None:
        """Store a finished run: summary, timings, per-class rows, kept indices; status becomes ``finished``.

        ``result`` is a ``RunResult`` as a dict (``RunResult.to_dict()``); ``kept_indices`` is optional.
        """
        classes = list(result["class_accuracy"])
        kept = result.get("kept_per_class") or {}
        sizes = result.get("class_sizes") or {}
        val = result.get("val_recall") or {}
        counts = {"test": result.get("test_counts") or {}}
        splits = {"test": result["class_accuracy"]}
        if result.get("val_class_accuracy"):
            splits["val"] = result["val_class_accuracy"]
        summary = {k: result[k] for k in SUMMARY_KEYS if k in result}
        with self._tx() as db:
            self._row(db, run_id)
            db.execute("DELETE FROM class_metrics WHERE run_id=?", (run_id,))
            db.execute("DELETE FROM kept_indices WHERE run_id=?", (run_id,))
            for split, acc in splits.items():
                for i, name in enumerate(classes):
                    db.execute(f"INSERT INTO class_metrics ({', '.join(CLASS_METRIC_COLUMNS)}) "
                               f"VALUES ({', '.join('?' * len(CLASS_METRIC_COLUMNS))})",
                               (run_id, split, i, name, as_float(acc[name]), as_int(sizes.get(name)),
                                as_int(kept.get(name)), as_float(val.get(name)),
                                as_int(counts.get(split, {}).get(name))))
            if result.get("kept_indices") is not None:
                idx = np.asarray(result["kept_indices"], dtype=np.int64)
                db.execute("INSERT INTO kept_indices VALUES (?, ?)", (run_id, idx.tobytes()))
            db.execute("UPDATE runs SET summary=?, timings=? WHERE id=?",
                       (json.dumps(summary), json.dumps(result.get("timings") or {}), run_id))
            set_status(db, run_id, "finished", None)

    def class_metrics(self, run_ids: list[int] | None = None) -> pd.DataFrame:
        """Long table: run_id, split, class_index, class_name, accuracy, class_size, kept, val_recall,
        test_count (test images of the class on the test split; NaN for runs stored before it was)."""
        sql = f"SELECT {', '.join(CLASS_METRIC_COLUMNS)} FROM class_metrics"
        args: list[Any] = []
        if run_ids is not None:
            ids = [int(r) for r in run_ids]
            sql += f" WHERE run_id IN ({','.join('?' * len(ids))})" if ids else " WHERE 0"
            args = ids
        with self._connect() as db:
            rows = db.execute(sql + " ORDER BY run_id, split, class_index", args).fetchall()
        return pd.DataFrame([tuple(r) for r in rows], columns=list(CLASS_METRIC_COLUMNS))

    def kept_indices(self, run_id: int) -> np.ndarray:
        """Sorted kept train indices of a finished run (empty when none were stored)."""
        with self._connect() as db:
            self._row(db, run_id)
            row = db.execute("SELECT indices FROM kept_indices WHERE run_id=?", (run_id,)).fetchone()
        return np.zeros(0, np.int64) if row is None else np.frombuffer(row["indices"], dtype=np.int64).copy()

    # --- events and cancellation ----------------------------------------------------

    def add_event(self, run_id: int, event: dict) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO events (run_id, time, event) VALUES (?, ?, ?)",
                       (run_id, now(), json.dumps(event, default=json_default)))

    def latest_event(self, run_id: int, stages: Collection[str] | None = None) -> dict | None:
        """The newest event of ``run_id`` (with ``stages``: the newest whose ``stage`` is one of them), or None.

        Rows are read newest first and the scan stops at the first match, so a poll costs one or a
        few rows, not the run's whole history."""
        with self._connect() as db:
            for row in db.execute("SELECT time, event FROM events WHERE run_id=? ORDER BY id DESC", (run_id,)):
                event = json.loads(row["event"])
                if stages is None or event.get("stage") in stages:
                    return {**event, "time": row["time"]}
        return None

    def events(self, run_id: int) -> list[dict]:
        with self._connect() as db:
            rows = db.execute("SELECT time, event FROM events WHERE run_id=? ORDER BY id", (run_id,)).fetchall()
        return [{**json.loads(r["event"]), "time": r["time"]} for r in rows]

    def request_cancel(self, run_id: int) -> None:
        """Ask the process running ``run_id`` to stop; a queued run is cancelled at once."""
        with self._tx() as db:
            self._row(db, run_id)
            db.execute("UPDATE runs SET cancel_requested=1 WHERE id=?", (run_id,))
            set_status(db, run_id, "cancelled", "cancelled by request", only_from=("queued",))

    def cancel_requested(self, run_id: int) -> bool:
        with self._connect() as db:
            row = db.execute("SELECT cancel_requested FROM runs WHERE id=?", (run_id,)).fetchone()
        return bool(row and row["cancel_requested"])

    def delete_run(self, run_id: int) -> None:
        """Remove a run with its metrics, indices and events."""
        with self._tx() as db:
            self._row(db, run_id)
            db.execute("DELETE FROM runs WHERE id=?", (run_id,))

    # --- export ---------------------------------------------------------------------

    def export(self, path: str | os.PathLike, fmt: str) -> None:
        """Write every run to ``path``.

        ``csv``: one row per (run, split, class) with the run's config and summary columns
        (a run without per-class results has one row with empty class columns).
        ``json``: a list of runs, each with config, summary, environment, timings and ``classes``.
        """
        if fmt not in ("csv", "json"):
            raise DropError(f"The 'fmt' parameter of export must be one of 'csv', 'json'. Got {fmt!r} instead.")
        out = Path(path)
        if out.is_dir():
            raise DropError(f"Cannot export to {str(out)!r}: it is a folder; give a file path such as "
                            f"{str(out / ('runs.' + fmt))!r}.")
        if not out.parent.is_dir():
            raise DropError(f"Cannot write {str(out)!r}: the folder {str(out.parent)!r} does not exist.")
        runs = self.list_runs()
        metrics = self.class_metrics()
        if fmt == "csv":
            table = runs.rename(columns={"id": "run_id"})
            if len(table):
                table = table.merge(metrics, on="run_id", how="left", suffixes=("", "_class"))
            text = table.to_csv(index=False)
        else:
            by_run = {rid: g.drop(columns="run_id").to_dict("records") for rid, g in metrics.groupby("run_id")}
            payload = []
            for rid in runs["id"] if len(runs) else []:
                run = self.get_run(int(rid))
                run["classes"] = by_run.get(int(rid), [])
                payload.append(run)
            text = json.dumps(payload, indent=1, default=json_default)
        write_atomic(out, text)


