"""The dataset registry. Loaders register themselves here; ``drop_core.data`` re-exports it."""
from __future__ import annotations

from collections.abc import Callable

from drop_core.data.base import Dataset
from drop_core.registry import Registry

#: A loader takes ``(root, download, seed)`` and returns a fully split, in-memory Dataset.
Loader = Callable[[str | None, bool, int], Dataset]

DATASETS: Registry[Loader] = Registry("dataset")
