"""On-disk cache of query-model results and scores, keyed by a hash of what determines them.

Entries are ``.npz`` files of named numpy arrays plus a JSON metadata string, loaded with
``allow_pickle=False`` (no code runs on load). Writes go to a temporary file in the same
folder and are moved into place with ``os.replace``, so a process killed mid-write leaves
either the old entry or none, never half a file.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_CACHE_DIR = "runs/cache"


def config_hash(obj: Any, length: int = 16) -> str:
    """Stable hex digest of a JSON-serialisable object (keys sorted)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def default_cache_dir() -> str:
    """``$DROP_CACHE`` if set, else ``runs/cache``."""
    return os.environ.get("DROP_CACHE") or DEFAULT_CACHE_DIR


class Cache:
    """A folder of ``<kind>/<key>/<name>.npz`` entries."""

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = Path(root if root is not None else default_cache_dir())

    def path(self, kind: str, key: str, name: str) -> Path:
        return self.root / kind / key / f"{name}.npz"

    def load(self, kind: str, key: str, name: str) -> tuple[dict[str, np.ndarray], dict] | None:
        """``(arrays, meta)`` of an entry, or None when it is missing or unreadable."""
        path = self.path(kind, key, name)
        try:
            with np.load(path, allow_pickle=False) as f:
                arrays = {k: f[k] for k in f.files if k != "__meta__"}
                meta = json.loads(str(f["__meta__"])) if "__meta__" in f.files else {}
        except (OSError, ValueError, KeyError, EOFError):
            return None        # missing, or a foreign/corrupt file: recompute and overwrite
        return arrays, meta

    def save(self, kind: str, key: str, name: str, arrays: dict[str, np.ndarray], meta: dict | None = None) -> Path:
        """Write an entry atomically (temp file + ``os.replace``)."""
        path = self.path(kind, key, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as f:
                np.savez(f, __meta__=np.array(json.dumps(meta or {}, sort_keys=True)), **arrays)
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
        return path
