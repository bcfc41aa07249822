"""The store's schema and row helpers: numbered migrations, statuses, and the one status setter.

Migrations are append only: never edit an applied one, add the next. Every function here runs
inside the caller's transaction.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import socket
import sqlite3
from collections.abc import Callable, Collection
from typing import Any

import numpy as np

from drop_core.errors import DropError

STATUSES = ("queued", "running", "finished", "failed", "cancelled", "interrupted")
ACTIVE_STATUSES = ("queued", "running")
SUMMARY_KEYS = ("average_accuracy", "worst_class_accuracy", "worst_class", "mean_recall", "recall_std",
                "recall_gap", "train_size", "final_epochs", "query_cache_hit", "warnings")


def now() -> str:
    """UTC time stamp, ISO 8601 with milliseconds."""
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="milliseconds")


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


def _m002_followers(db: sqlite3.Connection) -> None:
    """How many other sessions follow a run (they must not lose it when its own session cancels)."""
    db.execute("ALTER TABLE runs ADD COLUMN followers INTEGER NOT NULL DEFAULT 0")


def _m003_test_counts(db: sqlite3.Connection) -> None:
    """Test images per class, so that every stored accuracy carries its interval (NULL for older runs)."""
    db.execute("ALTER TABLE class_metrics ADD COLUMN test_count INTEGER")


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_m001_initial, _m002_followers, _m003_test_counts]
CLASS_METRIC_COLUMNS = ("run_id", "split", "class_index", "class_name", "accuracy", "class_size", "kept",
                        "val_recall", "test_count")


def set_status(db: sqlite3.Connection, run_id: int, status: str, error: str | None, *,
                only_from: Collection[str] | None = None) -> None:
    """The one place a run's status changes (inside the caller's transaction).

    ``running`` records this process (pid, host), the start time and clears ``finished``; a terminal
    status records the end time. ``only_from``: change only a run whose status is one of these."""
    guard, args = "", []
    if only_from is not None:
        guard = f" AND status IN ({','.join('?' * len(only_from))})"
        args = list(only_from)
    if status == "running":
        db.execute("UPDATE runs SET status=?, error=NULL, started=?, finished=NULL, pid=?, hostname=? WHERE id=?"
                   + guard, (status, now(), os.getpid(), socket.gethostname(), run_id, *args))
    elif status in ACTIVE_STATUSES:
        db.execute("UPDATE runs SET status=?, error=? WHERE id=?" + guard, (status, error, run_id, *args))
    else:
        db.execute("UPDATE runs SET status=?, error=?, finished=? WHERE id=?" + guard,
                   (status, error, now(), run_id, *args))


def insert_run(db: sqlite3.Connection, config: dict, key: str, status: str, sweep_id: int | None) -> int:
    """Insert a run row inside the caller's transaction. A ``running`` run, and a sweep's point (its driver
    owns it until it ends), record this process so that ``mark_interrupted`` can tell when it died."""
    running = status == "running"
    owned = running or sweep_id is not None
    cur = db.execute(
        "INSERT INTO runs (key, status, config, sweep_id, created, started, pid, hostname) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (key, status, json.dumps(config, sort_keys=True), sweep_id, now(),
         now() if running else None, os.getpid() if owned else None,
         socket.gethostname() if owned else None))
    return int(cur.lastrowid)


def check_status(status: str) -> None:
    if status not in STATUSES:
        raise DropError(f"The 'status' parameter must be one of {', '.join(STATUSES)}. Got {status!r} instead.")


def run_dict(row: sqlite3.Row) -> dict:
    def load(v):
        return None if v is None else json.loads(v)

    return {"id": row["id"], "key": row["key"], "status": row["status"], "config": load(row["config"]),
            "sweep_id": row["sweep_id"], "created": row["created"], "started": row["started"],
            "finished": row["finished"], "error": row["error"], "pid": row["pid"], "hostname": row["hostname"],
            "environment": load(row["environment"]) or {}, "timings": load(row["timings"]) or {},
            "summary": load(row["summary"]), "cancel_requested": bool(row["cancel_requested"]),
            "followers": int(row["followers"])}


def as_float(v: Any) -> float | None:
    return None if v is None else float(v)


def as_int(v: Any) -> int | None:
    return None if v is None else int(v)


def json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")
