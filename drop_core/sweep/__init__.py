"""Sweeps: the former ``drop_core/sweep.py``, moved to :mod:`.driver` as the first step of splitting it."""
from drop_core.sweep.driver import *  # noqa: F403
