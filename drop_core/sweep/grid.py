"""The grid of a sweep (pure): which runs it asks for, as plain RunConfig dicts.

No I/O and no pipeline import: a grid is checked and expanded before anything is resolved,
stored or started.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from drop_core.errors import DropError
from drop_core.validate import param_error

AXES = ("scorer", "quoter", "density", "seed")   # the RunConfig fields a grid varies
OWNER = "sweep"                                   # the name in validation messages


@dataclass(frozen=True)
class GridSpec:
    """A sweep: every combination of scorers x quoters x densities x seeds on one dataset.

    ``base`` holds the other RunConfig fields (model, preset, epochs, data_root, device, ...),
    the same at every grid point.
    """

    dataset: str
    scorers: tuple[str, ...]
    quoters: tuple[str, ...]
    densities: tuple[float, ...]
    seeds: tuple[int, ...] = (0,)
    base: Mapping[str, Any] = field(default_factory=dict)
    name: str = ""

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> GridSpec:
        """Build from plain data (lists are fine); an unknown key is a DropError."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise DropError(f"Unknown grid key(s) {', '.join(map(repr, unknown))}. "
                            f"Valid keys: {', '.join(sorted(known))}.")
        if "dataset" not in d:
            raise DropError("The grid needs a 'dataset' (e.g. 'digits').")
        return cls(dataset=str(d["dataset"]), scorers=tuple(d.get("scorers", ())),
                   quoters=tuple(d.get("quoters", ())), densities=tuple(d.get("densities", ())),
                   seeds=tuple(d.get("seeds", (0,))), base=dict(d.get("base", {})), name=str(d.get("name", "")))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data (what the store keeps as the sweep's config); inverse of :meth:`from_dict`."""
        return {"dataset": self.dataset, "scorers": list(self.scorers), "quoters": list(self.quoters),
                "densities": list(self.densities), "seeds": list(self.seeds), "base": dict(self.base),
                "name": self.name}


SMOKE_TEST = GridSpec(dataset="digits", scorers=("random", "el2n"), quoters=("uniform", "drop"),
                      densities=(0.3, 0.6), seeds=(0,), base={"epochs": 2}, name="smoke test")


FULL_DATA_POINT: Mapping[str, Any] = {"scorer": "random", "quoter": "none", "density": 1.0}   # the reference run


def grid_points(base: Mapping[str, Any], *, scorers: Iterable[str], quoters: Iterable[str],
                densities: Iterable[float], seeds: Iterable[int], full_data: bool = False) -> list[dict[str, Any]]:
    """Every point of scorers x quoters x densities x seeds as a RunConfig dict, without repeats, in run order.

    The one grid expansion (the sweep's :func:`expand_grid` and the app's comparison use it).
    ``base`` gives the other fields; an axis value overrides it. ``full_data`` adds a full-data
    reference per seed, first. Then per scorer and seed every density and quota rule, so points
    sharing a query model follow each other and a sequential worker finds it in the cache.
    An int density becomes a float (1 and 1.0 are one run key).
    """
    scorers, quoters, seeds = list(scorers), list(quoters), list(seeds)
    densities = [_as_float(d) for d in densities]
    points = [{**base, **FULL_DATA_POINT, "seed": seed} for seed in seeds] if full_data else []
    points += [{**base, "scorer": s, "quoter": q, "density": d, "seed": seed}
               for s in scorers for seed in seeds for d in densities for q in quoters]
    unique: list[dict[str, Any]] = []
    for point in points:            # a few hundred points at most; dict values may be unhashable (lists)
        if point not in unique:
            unique.append(point)
    return unique


def expand_grid(spec: GridSpec) -> list[dict[str, Any]]:
    """Every grid point as a RunConfig dict, in :func:`grid_points` order (scorer, seed, density, quoter).

    Checks the grid's shape only (each axis non-empty, no repeated value, ``base`` sets no
    axis); the values themselves are checked when each point is resolved, before any run.
    """
    axes = {"scorers": spec.scorers, "quoters": spec.quoters, "densities": spec.densities, "seeds": spec.seeds}
    for axis, values in axes.items():
        if len(values) == 0:
            raise param_error(axis, OWNER, "a non-empty list", [])
        if len(set(values)) != len(values):
            raise param_error(axis, OWNER, "a list without repeated values", list(values))
    clash = sorted(set(spec.base) & {"dataset", *AXES})
    if clash:
        raise DropError(f"The 'base' settings of a sweep must not set a grid axis; give {clash[0]!r} "
                        f"as a sweep parameter instead. Got base keys {sorted(spec.base)}.")
    return grid_points({**spec.base, "dataset": spec.dataset}, **axes)


def _as_float(value: Any) -> Any:
    """An int density becomes a float; anything else is left to the config's checks."""
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else value
