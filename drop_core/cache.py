"""On-disk cache of query-model results and scores, keyed by a hash of what determines them.

Entries are ``.npz`` files of named numpy arrays plus a JSON metadata string, loaded with
``allow_pickle=False`` (no code runs on load). Writes go to a temporary file in the same
folder and are moved into place with ``os.replace``, so a process killed mid-write leaves
either the old entry or none, never half a file. A damaged entry (truncated, empty, a flipped
bit: the zip CRC of every member is checked before anything is parsed) is reported in one
warning line naming the file, deleted, and recomputed by the caller.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from drop_core.errors import DropError

DEFAULT_CACHE_DIR = "runs/cache"
log = logging.getLogger("drop_core.cache")


def config_hash(obj: Any, length: int = 16) -> str:
    """Stable hex digest of a JSON-serialisable object (keys sorted)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def default_cache_dir() -> str:
    """``$DROP_CACHE`` if set, else ``runs/cache``."""
    return os.environ.get("DROP_CACHE") or DEFAULT_CACHE_DIR


def read_npz(path: Path) -> dict[str, np.ndarray] | None:
    """Every array of the ``.npz`` at ``path``; None when it is missing, or damaged (then warned and deleted).

    ``testzip`` reads each member and checks its CRC-32 first, so a flipped bit anywhere in the
    data (the ``.npy`` headers included) is caught before numpy parses a byte of it.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
            if bad is not None:
                raise zipfile.BadZipFile(f"bad CRC-32 in member {bad!r}")
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except FileNotFoundError:
        return None
    except MemoryError:
        raise
    except Exception as err:       # any failure to read a cache file means: recompute it
        reason = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
        log.warning("The cache file '%s' is damaged (%s); deleting it and recomputing.", path, reason)
        with contextlib.suppress(OSError):     # else the caller's save replaces it, or reports the folder
            path.unlink()
        return None


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` to ``path`` atomically: a unique temporary file in the same folder, then ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            np.savez(out, **arrays)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_writable(folder: Path, what: str, fix: str) -> None:
    """Create ``folder`` if needed and write and delete a probe file in it; DropError naming it otherwise."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise DropError(f"The {what} '{folder}' is not writable ({reason}); {fix}.") from None


class Cache:
    """A folder of ``<kind>/<key>/<name>.npz`` entries."""

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = Path(root if root is not None else default_cache_dir())

    def path(self, kind: str, key: str, name: str) -> Path:
        return self.root / kind / key / f"{name}.npz"

    def check_writable(self) -> None:
        """Fail before any training when entries could not be written (the run would be lost at the end)."""
        check_writable(self.root, "cache folder",
                       "make it writable, or pass --cache-dir (or set $DROP_CACHE) with a writable folder")

    def load(self, kind: str, key: str, name: str) -> tuple[dict[str, np.ndarray], dict] | None:
        """``(arrays, meta)`` of an entry, or None when it is missing or damaged (damaged: warned and deleted)."""
        path = self.path(kind, key, name)
        arrays = read_npz(path)
        if arrays is None:
            return None
        meta_text = arrays.pop("__meta__", None)
        try:
            meta = json.loads(str(meta_text)) if meta_text is not None else {}
            if not isinstance(meta, dict):
                raise ValueError("metadata is not an object")
        except ValueError as err:
            log.warning("The cache file '%s' is damaged (metadata: %s); deleting it and recomputing.", path, err)
            path.unlink(missing_ok=True)
            return None
        return arrays, meta

    def save(self, kind: str, key: str, name: str, arrays: dict[str, np.ndarray], meta: dict | None = None) -> Path:
        """Write an entry atomically (temp file + ``os.replace``)."""
        path = self.path(kind, key, name)
        write_npz(path, {"__meta__": np.array(json.dumps(meta or {}, sort_keys=True)), **arrays})
        return path
