"""What a dataset *is*, for run keys: absolute paths and a fingerprint of the files behind a name.

A run's identity must change when its data changes, never only when its name does. Embedded
datasets are defined by the package (and ``data_seed``); an image folder or a torchvision root
is fingerprinted by its file list with sizes and modification times (``os.stat``, no reads):
cheap enough for every run, and any rewrite of a file changes its mtime. Content hashes would
read every byte on every run (seconds for CIFAR-10) and catch only a file rewritten with its
old size and mtime restored, which no normal tool does.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

IMAGEFOLDER = "imagefolder:"
EMBEDDED_DATASETS = ("digits", "gaussians")


def resolve_dataset_name(dataset: str) -> str:
    """``imagefolder:relative/path`` -> ``imagefolder:/absolute/path``; other names unchanged."""
    if dataset.startswith(IMAGEFOLDER) and dataset[len(IMAGEFOLDER):]:
        return IMAGEFOLDER + str(Path(dataset[len(IMAGEFOLDER):]).expanduser().resolve())
    return dataset


def folder_fingerprint(path: str | os.PathLike) -> dict[str, Any]:
    """Hash of every file's relative path, size and mtime under ``path`` (hidden entries and our cache skipped)."""
    root = Path(path)
    h, count = hashlib.sha256(), 0
    if not root.is_dir():
        return {"missing": str(root)}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            full = os.path.join(dirpath, name)
            try:
                st = os.stat(full)
            except OSError:
                continue
            h.update(f"{os.path.relpath(full, root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
            count += 1
    return {"files": count, "sha256": h.hexdigest()}


def data_identity(dataset: str, root: str | None) -> dict[str, Any]:
    """What the data behind ``dataset`` (and ``root`` for torchvision datasets) is, as a JSON-able dict."""
    if dataset in EMBEDDED_DATASETS:
        return {"dataset": dataset}
    if dataset.startswith(IMAGEFOLDER):
        path = resolve_dataset_name(dataset)[len(IMAGEFOLDER):]
        return {"imagefolder": path, **folder_fingerprint(path)}
    from drop_core.data.vision import data_root

    folder = data_root(root)
    return {"dataset": dataset, "root": folder, **folder_fingerprint(folder)}
