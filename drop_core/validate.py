"""One validation helper and one message template for every user-facing parameter check.

The template is scikit-learn's (``sklearn/utils/_param_validation.py``): *"The 'density'
parameter of run must be a float in the range (0.0, 1.0]. Got 1.5 instead."* Numbers must
be finite: ``inf`` and ``nan`` are rejected everywhere a number enters.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from drop_core.errors import DropError


def param_error(name: str, owner: str, expected: str, got: Any, cls: type[Exception] = DropError, *,
                shown: str | None = None) -> Exception:
    """The one message template: what the parameter must be, and what it was (``shown``: ready-made text)."""
    text = repr(got) if shown is None else shown
    return cls(f"The {name!r} parameter of {owner} must be {expected}. Got {text} instead.")


def is_int(value: Any) -> bool:
    """An int (numpy ints too), not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """A finite int or float (numpy too), not a bool."""
    return (isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
            and math.isfinite(float(value)))


def interval(low: float | None, high: float | None, open_low: bool, open_high: bool) -> str:
    """``(0.0, 1.0]``-style text; a missing bound is ``inf``."""
    lo = "-inf" if low is None else repr(low)
    hi = "inf" if high is None else repr(high)
    return f"{'(' if open_low or low is None else '['}{lo}, {hi}{')' if open_high or high is None else ']'}"


def in_range(value: float, low: float | None, high: float | None, open_low: bool, open_high: bool) -> bool:
    """Whether ``value`` lies in the interval (a missing bound is unbounded)."""
    if low is not None and (value < low or (open_low and value == low)):
        return False
    return not (high is not None and (value > high or (open_high and value == high)))


def check_number(name: str, owner: str, value: Any, *, kind: type = float, low: float | None = None,
                 high: float | None = None, open_low: bool = False, open_high: bool = False,
                 cls: type[Exception] = DropError) -> None:
    """Raise the template error unless ``value`` is a finite ``kind`` (int or float) in the interval."""
    ok = is_int(value) if kind is int else is_number(value)
    if not (ok and in_range(float(value), low, high, open_low, open_high)):
        text = "an int" if kind is int else "a float"
        raise param_error(name, owner, f"{text} in the range {interval(low, high, open_low, open_high)}", value, cls)


def check_choice(name: str, owner: str, value: Any, choices: Iterable[str], cls: type[Exception] = DropError) -> None:
    """Raise the template error unless ``value`` is one of ``choices``."""
    options = list(choices)
    if value not in options:
        raise param_error(name, owner, f"one of {', '.join(map(str, options))}", value, cls)
