"""Shared, cached resources of the app pages: the results store and loaded datasets."""
from __future__ import annotations

import streamlit as st

from drop_core.data import load_dataset
from drop_core.data.base import Dataset
from drop_core.errors import DropError
from drop_core.store import Store, default_store_path


@st.cache_resource(max_entries=4)
def _store(path: str) -> Store:
    return Store(path)


def store() -> Store:
    """The results store at ``$DROP_STORE`` (default ``runs/drop.sqlite``); shared by all sessions.

    A ``Store`` opens one short connection per call, so sharing it across sessions is safe.
    """
    try:
        return _store(default_store_path())
    except DropError as e:
        st.error(str(e))
        st.stop()


@st.cache_resource(max_entries=2, show_spinner="Loading the dataset...")
def dataset(name: str, root: str | None, seed: int) -> Dataset:
    """A loaded dataset (read-only: never mutate it). Raises DropError when the data is missing."""
    return load_dataset(name, root=root, seed=seed)
