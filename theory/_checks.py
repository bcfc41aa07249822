"""Input checks for the theory package: ValueError in scikit-learn's message style."""
from __future__ import annotations

import numpy as np


def check_in_range(
    value: object, name: str, owner: str, lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False
) -> np.ndarray:
    """Return ``value`` as a float array, or raise ValueError naming ``name`` if any entry is out of range or NaN."""
    arr = np.asarray(value, dtype=float)
    lo_ok = arr > lo if lo_open else arr >= lo
    hi_ok = arr < hi if hi_open else arr <= hi
    ok = lo_ok & hi_ok
    if not ok.all():
        bad = (arr if arr.ndim == 0 else arr[~ok]).flat[0].item()
        interval = f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
        raise ValueError(
            f"The '{name}' parameter of {owner} must be a float in the range {interval}. Got {bad!r} instead."
        )
    return arr


def check_pair(value: object, name: str, owner: str) -> tuple[float, float]:
    """Return a pair of finite floats, or raise ValueError naming ``name``."""
    try:
        pair = tuple(float(v) for v in value)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        pair = ()
    if len(pair) != 2 or not np.all(np.isfinite(pair)):
        raise ValueError(f"The '{name}' parameter of {owner} must be a pair of finite floats. Got {value!r} instead.")
    return pair  # type: ignore[return-value]


def check_int(value: object, name: str, owner: str, lo: int, hi: int | None = None) -> int:
    """Return ``value`` as an int in [lo, hi], or raise ValueError naming ``name``."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, np.integer))
        or value < lo
        or (hi is not None and value > hi)
    ):
        upper = "inf" if hi is None else str(hi)
        raise ValueError(
            f"The '{name}' parameter of {owner} must be an int in the range [{lo}, {upper}]. Got {value!r} instead."
        )
    return int(value)


def scalar_or_array(arr: np.ndarray) -> float | np.ndarray:
    """A 0-d result as a Python float, anything else unchanged."""
    return float(arr) if np.ndim(arr) == 0 else arr
