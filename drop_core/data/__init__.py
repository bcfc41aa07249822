"""Datasets: a registry of loaders that return a fully in-memory, split :class:`Dataset`.

``load_dataset("cifar10", root=..., download=...)`` or ``load_dataset("imagefolder:PATH")``.
Every dataset's validation split is the first half of each class of its original test
split, in dataset order (:func:`drop_core.data.splits.validation_split`); it is never used
for reported test metrics.
"""
from __future__ import annotations

# Explicit imports register the loaders, in the order `list` shows them.
# isort: off
from drop_core.data import embedded  # noqa: F401
from drop_core.data import vision  # noqa: F401
from drop_core.data import folders  # noqa: F401
# isort: on
from drop_core.data._registry import DATASETS, Loader
from drop_core.data.base import Dataset
from drop_core.errors import DropError

__all__ = ["DATASETS", "Dataset", "Loader", "load_dataset"]

IMAGEFOLDER_PREFIX = "imagefolder:"


def load_dataset(name: str, *, root: str | None = None, download: bool = False, seed: int = 0) -> Dataset:
    """Load a registered dataset by name, or ``imagefolder:PATH``.

    ``root`` is the folder torchvision-style datasets live in (and are downloaded into with
    ``download=True``); ``seed`` only affects generated datasets (``gaussians``).
    """
    if name.startswith(IMAGEFOLDER_PREFIX):
        path = name[len(IMAGEFOLDER_PREFIX):]
        if not path:
            raise DropError(
                "The dataset 'imagefolder:PATH' needs a path after the colon, e.g. imagefolder:/data/cifar10."
            )
        return DATASETS.get("imagefolder")(path, download, seed)
    return DATASETS.get(name)(root, download, seed)
