"""torchvision datasets: CIFAR-10, CIFAR-100, MNIST, Fashion-MNIST and SVHN, read once into uint8 arrays.

``root`` is the folder torchvision reads from and downloads into (default ``$DROP_DATA_ROOT``
or ``./data``). Without ``download`` nothing is fetched; a missing or corrupt copy is a
DropError that names the folder searched and how to obtain the data.

Normalisation: CIFAR-10/100 use the constants of the authors' code (docs/drop-method.md);
the others use per-channel statistics of their train split. Augmentation follows the paper
for CIFAR (horizontal flip + shifts of at most 4 px); digits (MNIST, SVHN) are never flipped;
Fashion-MNIST is (clothing is left-right symmetric); 28 px images shift by at most 2 px.
"""
from __future__ import annotations

import os
import pickle
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from drop_core.data._registry import DATASETS
from drop_core.data.base import Dataset
from drop_core.data.build import assemble
from drop_core.errors import DropError


def _tvd():
    """torchvision.datasets, imported on first use: it adds seconds to every CLI start."""
    import torchvision.datasets

    return torchvision.datasets

DEFAULT_ROOT = "data"


def data_root(root: str | None) -> str:
    """The absolute data folder: ``root``, else ``$DROP_DATA_ROOT``, else ``./data``."""
    return os.path.abspath(root or os.environ.get("DROP_DATA_ROOT") or DEFAULT_ROOT)


@dataclass(frozen=True)
class TorchvisionSource:
    """How to read one torchvision dataset and what its files look like on disk."""

    title: str                                        # e.g. "CIFAR-10"
    open_split: Callable[[str, bool, bool], object]   # (root, train, download) -> torchvision dataset
    layout: str                                       # what torchvision expects under root
    flip: bool
    max_shift: int
    mean: tuple[float, ...] | None = None          # None: computed from the train split
    std: tuple[float, ...] | None = None
    classes: tuple[str, ...] | None = None         # None: the torchvision dataset's ``classes``


def _images_nchw(data) -> np.ndarray:
    """torchvision's ``.data`` ((N,H,W,C) numpy, (N,H,W) tensor, or (N,C,H,W) for SVHN) as uint8 (N,C,H,W)."""
    array = data.numpy() if hasattr(data, "numpy") else np.asarray(data)
    if array.ndim == 3:
        return np.ascontiguousarray(array[:, None])
    if array.shape[-1] in (1, 3) and array.shape[1] not in (1, 3):
        return np.ascontiguousarray(array.transpose(0, 3, 1, 2))
    return np.ascontiguousarray(array)


def _labels(split) -> np.ndarray:
    labels = getattr(split, "targets", None)
    if labels is None:
        labels = split.labels                        # SVHN
    return np.asarray(labels, dtype=np.int64)


def _damaged_errors() -> tuple[type[BaseException], ...]:
    """What reading a truncated or damaged file raises (scipy's MatReadError for SVHN's .mat, when loaded)."""
    matlab = sys.modules.get("scipy.io.matlab")
    extra = (matlab.MatReadError,) if matlab is not None and hasattr(matlab, "MatReadError") else ()
    return (OSError, ValueError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, *extra)


def _open(source: TorchvisionSource, root: str, train: bool, download: bool):
    try:
        return source.open_split(root, train, download)
    except RuntimeError:
        hint = (
            f"Rerun with --download to fetch it into '{root}'" if not download
            else "Delete the damaged files and rerun with --download"
        )
        raise DropError(
            f"{source.title} was not found (or failed its checksum) in '{root}': expected {source.layout}. "
            f"{hint}, or pass --data-root pointing at a folder that holds it."
        ) from None
    except PermissionError as err:
        raise DropError(f"Cannot read {source.title} in '{root}' ({err.strerror}: '{err.filename}'); fix the "
                        f"permissions of its files, or pass --data-root with a readable copy.") from None
    except (*_damaged_errors(), MemoryError) as err:      # URLError is an OSError
        if isinstance(err, MemoryError):
            raise DropError(f"Out of memory reading {source.title} from '{root}'; free memory or use a smaller "
                            f"dataset.") from None
        action = "Downloading" if download else "Reading"
        raise DropError(
            f"{action} {source.title} in '{root}' failed ({err}). Delete the damaged files and rerun with --download."
        ) from None


def load_torchvision(name: str, source: TorchvisionSource, root: str | None, download: bool) -> Dataset:
    """Read both official splits of ``source`` and assemble a Dataset (validation = first half of test per class)."""
    folder = data_root(root)
    if download:
        os.makedirs(folder, exist_ok=True)
    train = _open(source, folder, True, download)
    test = _open(source, folder, False, False)
    return assemble(
        name, list(source.classes or train.classes),
        _images_nchw(train.data), _labels(train), _images_nchw(test.data), _labels(test),
        flip=source.flip, max_shift=source.max_shift, mean=source.mean, std=source.std,
        source=f"torchvision {type(train).__name__} at {folder}",
    )


SOURCES: dict[str, tuple[str, TorchvisionSource]] = {
    "cifar10": ("CIFAR-10, 3x32x32, 10 classes, 50k train / 5k val / 5k test (torchvision)", TorchvisionSource(
        "CIFAR-10", lambda r, t, d: _tvd().CIFAR10(r, train=t, download=d),
        "'cifar-10-batches-py/' with data_batch_1..5, test_batch and batches.meta",
        flip=True, max_shift=4, mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616))),
    "cifar100": ("CIFAR-100, 3x32x32, 100 classes, 50k train / 5k val / 5k test (torchvision)", TorchvisionSource(
        "CIFAR-100", lambda r, t, d: _tvd().CIFAR100(r, train=t, download=d),
        "'cifar-100-python/' with train, test and meta",
        flip=True, max_shift=4, mean=(0.5071, 0.4865, 0.4409), std=(0.2673, 0.2564, 0.2762))),
    "mnist": ("MNIST, 1x28x28, 10 classes, 60k train / 5k val / 5k test (torchvision)", TorchvisionSource(
        "MNIST", lambda r, t, d: _tvd().MNIST(r, train=t, download=d),
        "'MNIST/raw/' with train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
        "t10k-labels-idx1-ubyte", flip=False, max_shift=2)),
    "fashion_mnist": ("Fashion-MNIST, 1x28x28, 10 classes, 60k train / 5k val / 5k test (torchvision)",
                      TorchvisionSource(
        "Fashion-MNIST", lambda r, t, d: _tvd().FashionMNIST(r, train=t, download=d),
        "'FashionMNIST/raw/' with train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
        "t10k-labels-idx1-ubyte", flip=True, max_shift=2)),
    "svhn": ("SVHN digits, 3x32x32, 10 classes, 73k train / 13k val / 13k test (torchvision, no 'extra')",
             TorchvisionSource(
        "SVHN", lambda r, t, d: _tvd().SVHN(r, split="train" if t else "test", download=d),
        "train_32x32.mat and test_32x32.mat", flip=False, max_shift=4, classes=tuple("0123456789"))),
}


def _register(name: str, description: str, source: TorchvisionSource) -> None:
    def loader(root: str | None, download: bool, seed: int) -> Dataset:
        return load_torchvision(name, source, root, download)

    loader.__doc__ = f"{source.title} from torchvision; ``seed`` is ignored (the splits are fixed)."
    DATASETS.add(name, loader, description)


for _name, (_description, _source) in SOURCES.items():
    _register(_name, _description, _source)
