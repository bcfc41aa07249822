"""The dataset registry. Loaders register themselves here; ``drop_core.data`` re-exports it."""
from __future__ import annotations

from typing import Callable, Optional

from drop_core.data.base import Dataset
from drop_core.registry import Registry

#: A loader takes ``(root, download, seed)`` and returns a fully split, in-memory Dataset.
Loader = Callable[[Optional[str], bool, int], Dataset]

DATASETS: Registry[Loader] = Registry("dataset")
