"""The results store: runs, per-class metrics, kept indices and progress events in SQLite.

One file (WAL mode, so the app can read while workers write), numbered migrations in the
style of simonw/llm, and one transaction per write: a process killed mid-write leaves the
database as it was before that write. Every public method opens its own short-lived
connection, so a ``Store`` can be shared by threads and passed to worker processes.

A run row records the process (pid, host) that runs it; a run still marked ``running``
whose process is gone (same host, ``os.kill(pid, 0)`` fails) is marked ``interrupted`` the
next time the store is opened or listed.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import socket
import sqlite3
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pandas as pd

from drop_core.errors import DropError

DEFAULT_STORE_PATH = "runs/drop.sqlite"
STATUSES = ("queued", "running", "finished", "failed", "cancelled", "interrupted")
ACTIVE_STATUSES = ("queued", "running")
SUMMARY_KEYS = ("average_accuracy", "worst_class_accuracy", "worst_class", "mean_recall", "recall_std",
                "recall_gap", "train_size", "final_epochs", "query_cache_hit", "warnings")


def default_store_path() -> str:
    """``$DROP_STORE`` if set, else ``runs/drop.sqlite``."""
    return os.environ.get("DROP_STORE") or DEFAULT_STORE_PATH


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


# --- migrations: append only, never edit an applied one -----------------------------------

def _m001_initial(db: sqlite3.Connection) -> None:
    db.execute("""
        CREATE TABLE sweeps (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            config TEXT NOT NULL,
            created TEXT NOT NULL
        )""")
    db.execute("""
        CREATE TABLE runs (
            id INTEGER PRIMARY KEY,
            key TEXT NOT NULL,
            status TEXT NOT NULL,
            config TEXT NOT NULL,
            sweep_id INTEGER REFERENCES sweeps(id) ON DELETE SET NULL,
            created TEXT NOT NULL,
            started TEXT,
            finished TEXT,
            error TEXT,
            pid INTEGER,
            hostname TEXT,
            environment TEXT,
            timings TEXT,
            summary TEXT,
            cancel_requested INTEGER NOT NULL DEFAULT 0
        )""")
    db.execute("CREATE INDEX runs_key ON runs(key, status)")
    db.execute("CREATE INDEX runs_sweep ON runs(sweep_id)")
    db.execute("""
        CREATE TABLE class_metrics (
            run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            split TEXT NOT NULL,
            class_index INTEGER NOT NULL,
            class_name TEXT NOT NULL,
            accuracy REAL,
            class_size INTEGER,
            kept INTEGER,
            val_recall REAL,
            PRIMARY KEY (run_id, split, class_index)
        )""")
    db.execute("""
        CREATE TABLE kept_indices (
            run_id INTEGER PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
            indices BLOB NOT NULL
        )""")
    db.execute("""
        CREATE TABLE events (
            id INTEGER PRIMARY KEY,
            run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            time TEXT NOT NULL,
            event TEXT NOT NULL
        )""")
    db.execute("CREATE INDEX events_run ON events(run_id, id)")


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_m001_initial]


def _process_alive(pid: int) -> bool:
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
        if self.path.is_dir():
            raise DropError(f"The store path {str(self.path)!r} is a folder; give a file such as "
                            f"{str(self.path / 'drop.sqlite')!r}.")
        self.path.parent.mkdir(parents=True, exist_ok=True)
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
        with self._tx() as db:
            db.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied TEXT NOT NULL)")
            done = {r["name"] for r in db.execute("SELECT name FROM _migrations")}
            for fn in MIGRATIONS:
                name = fn.__name__.lstrip("_")
                if name not in done:
                    fn(db)
                    db.execute("INSERT INTO _migrations VALUES (?, ?)", (name, _now()))

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
                             (name, json.dumps(config, sort_keys=True), _now()))
            return int(cur.lastrowid)

    def create_run(self, config: dict, key: str, *, status: str = "queued", sweep_id: int | None = None) -> int:
        """Insert a run row and return its id. A ``running`` run records this process."""
        _check_status(status)
        with self._tx() as db:
            return _insert_run(db, config, key, status, sweep_id)

    def claim_run(self, config: dict, key: str) -> tuple[int, str]:
        """In one transaction: the finished run with this key (``"finished"``), else its queued or running
        run (``"active"``), else a new queued run (``"created"``). Two sessions clicking Run at the same
        moment therefore never queue the same config twice."""
        self.mark_interrupted()
        with self._tx() as db:
            row = db.execute("SELECT id, status FROM runs WHERE key=? AND status IN ('finished','queued','running') "
                             "ORDER BY status='finished' DESC, id DESC LIMIT 1", (key,)).fetchone()
            if row is not None:
                return int(row["id"]), "finished" if row["status"] == "finished" else "active"
            return _insert_run(db, config, key, "queued", None), "created"

    def set_status(self, run_id: int, status: str, *, error: str | None = None) -> None:
        """Move a run to ``status``; ``running`` records this process (pid, host) and the start time."""
        _check_status(status)
        with self._tx() as db:
            self._row(db, run_id)
            if status == "running":
                db.execute("UPDATE runs SET status=?, error=NULL, started=?, finished=NULL, pid=?, hostname=? "
                           "WHERE id=?", (status, _now(), os.getpid(), socket.gethostname(), run_id))
            elif status in ACTIVE_STATUSES:
                db.execute("UPDATE runs SET status=?, error=? WHERE id=?", (status, error, run_id))
            else:
                db.execute("UPDATE runs SET status=?, error=?, finished=? WHERE id=?",
                           (status, error, _now(), run_id))

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
        dead = [r["id"] for r in rows if r["pid"] is None or not _process_alive(int(r["pid"]))]
        if dead:
            with self._tx() as db:
                for run_id in dead:
                    db.execute("UPDATE runs SET status='interrupted', finished=?, "
                               "error='the process running it ended without finishing' "
                               "WHERE id=? AND status IN ('running','queued')", (_now(), run_id))
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
        return _run_dict(row)

    def list_runs(self, *, status: str | None = None, sweep_id: int | None = None) -> pd.DataFrame:
        """One row per run: id, status, created, ..., then config columns and summary columns."""
        self.mark_interrupted()
        where, args = [], []
        if status is not None:
            _check_status(status)
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
            run = _run_dict(row)
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
                    db.execute("INSERT INTO class_metrics VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                               (run_id, split, i, name, _float(acc[name]), _int(sizes.get(name)),
                                _int(kept.get(name)), _float(val.get(name))))
            if result.get("kept_indices") is not None:
                idx = np.asarray(result["kept_indices"], dtype=np.int64)
                db.execute("INSERT INTO kept_indices VALUES (?, ?)", (run_id, idx.tobytes()))
            db.execute("UPDATE runs SET status='finished', error=NULL, finished=?, summary=?, timings=? WHERE id=?",
                       (_now(), json.dumps(summary), json.dumps(result.get("timings") or {}), run_id))

    def class_metrics(self, run_ids: list[int] | None = None) -> pd.DataFrame:
        """Long table: run_id, split, class_index, class_name, accuracy, class_size, kept, val_recall."""
        sql = "SELECT * FROM class_metrics"
        args: list[Any] = []
        if run_ids is not None:
            ids = [int(r) for r in run_ids]
            sql += f" WHERE run_id IN ({','.join('?' * len(ids))})" if ids else " WHERE 0"
            args = ids
        with self._connect() as db:
            rows = db.execute(sql + " ORDER BY run_id, split, class_index", args).fetchall()
        cols = ["run_id", "split", "class_index", "class_name", "accuracy", "class_size", "kept", "val_recall"]
        return pd.DataFrame([tuple(r) for r in rows], columns=cols)

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
                       (run_id, _now(), json.dumps(event, default=_json_default)))

    def latest_event(self, run_id: int) -> dict | None:
        with self._connect() as db:
            row = db.execute("SELECT time, event FROM events WHERE run_id=? ORDER BY id DESC LIMIT 1",
                             (run_id,)).fetchone()
        return None if row is None else {**json.loads(row["event"]), "time": row["time"]}

    def events(self, run_id: int) -> list[dict]:
        with self._connect() as db:
            rows = db.execute("SELECT time, event FROM events WHERE run_id=? ORDER BY id", (run_id,)).fetchall()
        return [{**json.loads(r["event"]), "time": r["time"]} for r in rows]

    def request_cancel(self, run_id: int) -> None:
        """Ask the process running ``run_id`` to stop; a queued run is cancelled at once."""
        with self._tx() as db:
            self._row(db, run_id)
            db.execute("UPDATE runs SET cancel_requested=1 WHERE id=?", (run_id,))
            db.execute("UPDATE runs SET status='cancelled', finished=? WHERE id=? AND status='queued'",
                       (_now(), run_id))

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
        if not out.parent.is_dir():
            raise DropError(f"Cannot write {str(out)!r}: the folder {str(out.parent)!r} does not exist.")
        runs = self.list_runs()
        metrics = self.class_metrics()
        tmp = out.with_name(out.name + ".tmp")
        if fmt == "csv":
            table = runs.rename(columns={"id": "run_id"})
            if len(table):
                table = table.merge(metrics, on="run_id", how="left", suffixes=("", "_class"))
            table.to_csv(tmp, index=False)
        else:
            by_run = {rid: g.drop(columns="run_id").to_dict("records") for rid, g in metrics.groupby("run_id")}
            payload = []
            for rid in runs["id"] if len(runs) else []:
                run = self.get_run(int(rid))
                run["classes"] = by_run.get(int(rid), [])
                payload.append(run)
            tmp.write_text(json.dumps(payload, indent=1, default=_json_default))
        os.replace(tmp, out)


def _insert_run(db: sqlite3.Connection, config: dict, key: str, status: str, sweep_id: int | None) -> int:
    """Insert a run row inside the caller's transaction. A ``running`` run, and a sweep's point (its driver
    owns it until it ends), record this process so that ``mark_interrupted`` can tell when it died."""
    running = status == "running"
    owned = running or sweep_id is not None
    cur = db.execute(
        "INSERT INTO runs (key, status, config, sweep_id, created, started, pid, hostname) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (key, status, json.dumps(config, sort_keys=True), sweep_id, _now(),
         _now() if running else None, os.getpid() if owned else None,
         socket.gethostname() if owned else None))
    return int(cur.lastrowid)


def _check_status(status: str) -> None:
    if status not in STATUSES:
        raise DropError(f"The 'status' parameter must be one of {', '.join(STATUSES)}. Got {status!r} instead.")


def _run_dict(row: sqlite3.Row) -> dict:
    def load(v):
        return None if v is None else json.loads(v)

    return {"id": row["id"], "key": row["key"], "status": row["status"], "config": load(row["config"]),
            "sweep_id": row["sweep_id"], "created": row["created"], "started": row["started"],
            "finished": row["finished"], "error": row["error"], "pid": row["pid"], "hostname": row["hostname"],
            "environment": load(row["environment"]) or {}, "timings": load(row["timings"]) or {},
            "summary": load(row["summary"]), "cancel_requested": bool(row["cancel_requested"])}


def _float(v: Any) -> float | None:
    return None if v is None else float(v)


def _int(v: Any) -> int | None:
    return None if v is None else int(v)


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")
