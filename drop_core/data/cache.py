"""Decode-once cache for image folders: one uncompressed ``.npz`` of uint8 images + labels per split.

An entry is keyed by a fingerprint of the file listing (relative paths, sizes and
modification times), so adding, removing or touching an image invalidates it; the stale
entry is deleted when the new one is written. Entries live
in ``$DROP_DATA_CACHE`` if set, else in ``<PATH>/.drop_cache`` next to the data, else (when
that folder is not writable) in ``~/.cache/drop_core``. Writes go to a temporary file that
is renamed into place, so a killed process never leaves half an entry; loads use
``allow_pickle=False``.
"""
from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from drop_core.cache import read_npz, write_npz

log = logging.getLogger("drop_core.data")


def fingerprint(root: Path, files: Sequence[Path], classes: Sequence[str], labels: np.ndarray) -> str:
    """sha256 over each file's path relative to ``root``, size, mtime and label, plus the class names."""
    digest = hashlib.sha256("\x1f".join(classes).encode())
    for path, label in zip(files, labels.tolist()):
        try:
            stat = path.stat()
            facts = f"{stat.st_size}\x1f{stat.st_mtime_ns}"
        except OSError:
            facts = "unreadable"                 # the decoder names the file
        digest.update(f"{path.relative_to(root)}\x1f{facts}\x1f{label}\n".encode())
    return digest.hexdigest()[:24]


def entry_prefix(data_root: Path, split: str, variant: str) -> str:
    """File-name prefix shared by all entries of one split of one data folder (its listing key follows)."""
    tag = hashlib.sha256(str(data_root).encode()).hexdigest()[:8]
    return f"{tag}-{split}-{variant}"


def prune(folder: Path, prefix: str, keep: Path) -> None:
    """Delete the older entries ``<prefix>-*.npz`` (stale file listings) except ``keep``."""
    for old in folder.glob(f"{prefix}-*.npz"):
        if old != keep:
            old.unlink(missing_ok=True)


def cache_dir(data_root: Path) -> Path:
    """Where cache entries for the data under ``data_root`` go (see the module docstring)."""
    configured = os.environ.get("DROP_DATA_CACHE")
    if configured:
        return Path(configured)
    beside = data_root / ".drop_cache"
    if os.access(beside if beside.exists() else data_root, os.W_OK):
        return beside
    return Path.home() / ".cache" / "drop_core"


def load(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """The cached (images, labels), or None if there is no usable entry at ``path``.

    A damaged entry (truncated, empty, a flipped bit, missing arrays) is reported in one warning
    line naming it and deleted, so the caller decodes again and writes a good one.
    """
    arrays = read_npz(path)
    if arrays is None:
        return None
    images, labels = arrays.get("images"), arrays.get("labels")
    if images is None or labels is None or images.dtype != np.uint8 or images.ndim != 4 or len(images) != len(labels):
        log.warning("The cache file '%s' is damaged (not an images/labels entry); deleting it and decoding again.",
                    path)
        path.unlink(missing_ok=True)
        return None
    return images, labels


def save(path: Path, images: np.ndarray, labels: np.ndarray) -> None:
    """Write an entry atomically (temporary file in the same folder, then ``os.replace``)."""
    write_npz(path, {"images": images, "labels": labels})
