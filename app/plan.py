"""What a comparison runs: the densities field parsed, the chosen grid expanded into run configs."""
from __future__ import annotations

from drop_core.errors import DropError
from drop_core.pipeline import RunConfig
from drop_core.sweep import grid_points


def parse_densities(text: str) -> list[float]:
    """``"0.3, 0.5"`` -> ``[0.3, 0.5]`` (sorted, without repeats); each must lie in (0, 1]."""
    values: list[float] = []
    for part in text.replace(";", ",").split(","):
        if not part.strip():
            continue
        try:
            value = float(part)
        except ValueError:
            raise DropError(
                f"The 'densities' field must list numbers separated by commas, such as 0.3, 0.5. "
                f"Got {part.strip()!r} instead."
            ) from None
        if not 0.0 < value <= 1.0:
            raise DropError(
                f"The 'density' parameter must be a float in the range (0.0, 1.0]. Got {value:g} instead."
            )
        values.append(value)
    if not values:
        raise DropError("The 'densities' field is empty: give at least one density in (0.0, 1.0], such as 0.5.")
    return sorted(set(values))


def comparison_configs(
    base: RunConfig,
    *,
    scorers: list[str],
    quoters: list[str],
    densities: list[float],
    seeds: list[int],
    full_data: bool,
) -> list[RunConfig]:
    """Every run of the comparison, without repeats, in the order a worker should run them.

    The sweep's grid expansion (:func:`drop_core.sweep.grid_points`): full-data references first
    (one per seed), then per scorer and seed every density and quota rule, so runs sharing a
    query model follow each other and later ones hit its cache.
    """
    points = grid_points(base.to_dict(), scorers=scorers, quoters=quoters, densities=densities, seeds=seeds,
                         full_data=full_data)
    return [RunConfig.from_dict(p) for p in points]
