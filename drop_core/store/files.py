"""Checks of the store's file before it is opened, and atomic export writes.

The store never writes a byte to a file it has not recognised as its own: the header and the
tables are read first (``mode=ro``), and every refusal is one DropError naming the path and
what to do.
"""
from __future__ import annotations

import os
import sqlite3
import tempfile
from pathlib import Path

from drop_core.errors import DropError

SQLITE_HEADER = b"SQLite format 3\x00"


def write_atomic(out: Path, text: str) -> None:
    """Write ``text`` to ``out`` through a temporary file in its folder; on any failure no file is left."""
    try:
        handle, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    except OSError as e:
        raise DropError(f"Cannot write {str(out)!r}: the folder {str(out.parent)!r} is not writable "
                        f"({e.strerror}); choose another folder.") from None
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except OSError as e:
        raise DropError(f"Cannot write {str(out)!r} ({e.strerror}); choose another path.") from None
    finally:
        Path(tmp).unlink(missing_ok=True)


def check_path(path: Path) -> None:
    """Refuse, before writing anything, a store path we cannot or must not use (see the module docstring)."""
    again = "pass --store (or set $DROP_STORE) with another path"
    if path.is_dir():
        raise DropError(f"The store path {str(path)!r} is a folder; give a file such as "
                        f"{str(path / 'drop.sqlite')!r}.")
    blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise DropError(f"Cannot create the results store {str(path)!r}: {str(blocker)!r} is a file, not a folder; "
                        f"{again}.")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DropError(f"Cannot create the folder {str(path.parent)!r} for the results store ({e.strerror}); "
                        f"{again}.") from None
    folder_ok = os.access(path.parent, os.W_OK | os.X_OK)
    if not path.exists():
        if not folder_ok:
            raise DropError(f"Cannot create the results store {str(path)!r}: the folder is read-only; make it "
                            f"writable (chmod u+w {str(path.parent)!r}) or {again}.")
        return
    try:
        with open(path, "rb") as f:
            head = f.read(len(SQLITE_HEADER))
    except OSError as e:
        raise DropError(f"Cannot read the results store {str(path)!r} ({e.strerror}); fix its permissions "
                        f"or {again}.") from None
    if head and head != SQLITE_HEADER:
        raise DropError(f"{str(path)!r} is not a SQLite database, so it is not a results store; it was left "
                        f"untouched. Move it away or {again}.")
    if head:
        check_ours(path, again)
    if not os.access(path, os.W_OK) or not folder_ok:
        what = "file" if not os.access(path, os.W_OK) else "folder"
        raise DropError(f"The results store {str(path)!r} is read-only (its {what}); make it writable "
                        f"(chmod u+w) or {again}.")


def check_ours(path: Path, again: str) -> None:
    """A SQLite file must be empty or carry our migrations table; it is only read, never written."""
    try:
        # Without a -wal file the main file holds everything: ``immutable`` then reads it without creating
        # the -wal/-shm files that even a ``mode=ro`` connection to a WAL database leaves next to it.
        wal = path.with_name(path.name + "-wal").exists()
        db = sqlite3.connect(f"{path.resolve().as_uri()}?{'mode=ro' if wal else 'immutable=1'}", uri=True,
                             timeout=30.0)
        try:
            tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
            ours = "_migrations" in tables and db.execute(
                "SELECT 1 FROM _migrations WHERE name='m001_initial'").fetchone() is not None
        finally:
            db.close()
    except sqlite3.DatabaseError as e:
        raise DropError(f"The results store {str(path)!r} is damaged or unreadable ({e}); it was left untouched. "
                        f"Move it away or {again}.") from None
    if tables and not ours:
        names = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
        raise DropError(f"{str(path)!r} is a SQLite database of another program (tables: {names}); DRoP Explorer "
                        f"never adds its tables to it and left it untouched; {again}.")
