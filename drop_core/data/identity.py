"""What a dataset *is*, for run keys: absolute paths and a fingerprint of the files behind a name.

A run's identity must change when its data changes, never only when its name does, so a result
is never served for other data. Embedded datasets (``digits``, ``gaussians``) are defined by
the package itself. An image folder, and the files of a torchvision dataset under its root, are
fingerprinted by the sorted list of their files with relative path, size and modification time
in nanoseconds: one ``stat`` per file and no reads (about a quarter of a second for the
60,000 files of CIFAR-10 as JPEGs), so it runs on every run. Any tool that rewrites, adds,
removes or renames a file changes that list. Content hashes would read every byte on every run:
3-4 times slower on that folder even with every file in the page cache, and a full read of the
dataset from disk otherwise (minutes for an ImageNet-sized folder); they would only add files
rewritten byte-for-byte with their old size and mtime restored, which normal tools do not do.

Hidden entries (names starting with ``.``, such as the decode cache ``.drop_cache`` or macOS
``._*`` files) are skipped, as the image-folder loader skips them.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

IMAGEFOLDER = "imagefolder:"
EMBEDDED_DATASETS = ("digits", "gaussians")

# What each on-disk dataset reads under its root (the rest of the root may hold other datasets).
DATASET_PATHS: dict[str, tuple[str, ...]] = {
    "cifar10": ("cifar-10-batches-py",),
    "cifar100": ("cifar-100-python",),
    "mnist": ("MNIST/raw",),
    "fashion_mnist": ("FashionMNIST/raw",),
    "svhn": ("train_32x32.mat", "test_32x32.mat"),
    "tinyimagenet": ("tiny-imagenet-200",),
}


def resolve_dataset_name(dataset: str) -> str:
    """``imagefolder:relative/path`` -> ``imagefolder:/absolute/path`` (``~`` expanded); other names unchanged."""
    if dataset.startswith(IMAGEFOLDER) and dataset[len(IMAGEFOLDER):]:
        return IMAGEFOLDER + str(Path(dataset[len(IMAGEFOLDER):]).expanduser().resolve())
    return dataset


def _walk(folder: str, rel: str, seen: set[tuple[int, int]], out: list[str]) -> None:
    """Append ``rel/name\\0size\\0mtime_ns`` for every non-hidden file under ``folder`` (symlinks followed)."""
    try:
        st = os.stat(folder)
        if (st.st_dev, st.st_ino) in seen:        # a symlink loop
            return
        seen.add((st.st_dev, st.st_ino))
        with os.scandir(folder) as it:
            entries = sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)
    except OSError as err:
        out.append(f"{rel}\0unreadable\0{type(err).__name__}")
        return
    for entry in entries:
        path = f"{rel}/{entry.name}" if rel else entry.name
        try:
            if entry.is_dir():
                _walk(entry.path, path, seen, out)
                continue
            stat = entry.stat()
        except OSError:
            out.append(f"{path}\0unreadable")
            continue
        out.append(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}")


def fingerprint(paths: list[Path], base: Path) -> dict[str, Any]:
    """``{"files": n, "sha256": ...}`` over the files under ``paths`` (each a file or folder), relative to ``base``.

    A path that does not exist is recorded as missing, so the identity changes once it appears.
    """
    lines: list[str] = []
    for path in paths:
        rel = os.path.relpath(path, base) if path != base else ""
        if path.is_dir():
            _walk(str(path), rel, set(), lines)
        elif path.is_file():
            st = path.stat()
            lines.append(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}")
        else:
            lines.append(f"{rel}\0missing")
    digest = hashlib.sha256("\n".join(lines).encode("utf-8", "surrogateescape"))
    return {"files": sum("\0missing" not in line for line in lines), "sha256": digest.hexdigest()}


def data_identity(dataset: str, root: str | None) -> dict[str, Any]:
    """What the data behind ``dataset`` is, as a JSON-able dict (``root``: the torchvision data root).

    ``{"dataset": name}`` for embedded datasets; ``{"imagefolder": abs_path, "files", "sha256"}``
    for an image folder; ``{"dataset", "root": abs_root, "files", "sha256"}`` for a dataset read
    from a root folder (only its own files are fingerprinted, see :data:`DATASET_PATHS`; a
    dataset registered elsewhere gets the whole root).
    """
    if dataset in EMBEDDED_DATASETS:
        return {"dataset": dataset}
    if dataset == IMAGEFOLDER:
        return {"imagefolder": ""}                # no path: the loader reports it
    if dataset.startswith(IMAGEFOLDER):
        folder = Path(resolve_dataset_name(dataset)[len(IMAGEFOLDER):])
        return {"imagefolder": str(folder), **fingerprint([folder], folder)}
    from drop_core.data.vision import data_root

    base = Path(data_root(root))
    paths = [base / p for p in DATASET_PATHS.get(dataset, ("",))]
    return {"dataset": dataset, "root": str(base), **fingerprint(paths, base)}
