"""Shared, cached resources of the app pages: the results store and loaded datasets.

Both loaders are page entry points: what a user caused (a store that is not SQLite or is read-only,
a damaged or oversized image, too little memory) arrives as one DropError line (see
:mod:`app.errors`), never as an exception box.
"""
from __future__ import annotations

import streamlit as st

from app.errors import as_user_error, guard
from drop_core.data import load_dataset
from drop_core.data.base import Dataset
from drop_core.errors import DropError
from drop_core.store import Store, default_store_path


@st.cache_resource(max_entries=4)
def _store(path: str) -> Store:
    return Store(path)


def store() -> Store:
    """The results store at ``$DROP_STORE`` (default ``runs/drop.sqlite``); shared by all sessions.

    A ``Store`` opens one short connection per call, so sharing it across sessions is safe. A store
    that cannot be used ends the page in one ``st.error``.
    """
    with guard():
        return _store(default_store_path())


@st.cache_resource(max_entries=2, show_spinner="Loading the dataset...")
def _dataset(name: str, root: str | None, seed: int) -> Dataset:
    return load_dataset(name, root=root, seed=seed)


def dataset(name: str, root: str | None, seed: int) -> Dataset:
    """A loaded dataset (read-only: never mutate it).

    Raises DropError for missing or bad data, including an OS, image or memory error the user
    caused (the caller shows it next to the widgets); a bug of ours ends the page as an internal error.
    """
    try:
        return _dataset(name, root, seed)
    except DropError:
        raise
    except Exception as exc:
        raise as_user_error(exc) from None
