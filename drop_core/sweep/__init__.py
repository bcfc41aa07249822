"""Sweeps: a grid of pipeline runs (scorers x quota rules x densities x seeds) on Ray or in-process.

Rooms: :mod:`.grid` (the grid, pure), :mod:`.points` (resolving, keying and grouping grid
points, checking the store), :mod:`.engines` (the ``local`` and ``ray`` engines and what
workers run), :mod:`.driver` (:func:`run_sweep`, the store's one writer). The command line
is :mod:`drop_core.cli_sweep`.

Order of work: query models and scores first, once per group of grid points that share them
(equal :func:`drop_core.config.query_key`: quota rule and density only affect the final
model), into the pipeline's on-disk cache; then every grid point, each depending only on its
own group's query stage. Points already finished in the store are skipped; a failed point is
recorded with its error and the others go on.

Top-level imports stay light (no torch, no pipeline): a Ray worker that only relays progress
imports this package.
"""
from drop_core.sweep.driver import SweepReport, run_sweep, sigterm_ends_sweep
from drop_core.sweep.engines import ENGINES, Engine, EngineOptions, check_options, ray_session, run_point, run_query
from drop_core.sweep.grid import AXES, FULL_DATA_POINT, SMOKE_TEST, GridSpec, expand_grid, grid_points
from drop_core.sweep.points import (
    Point,
    mark_done,
    point_device,
    query_family,
    query_groups,
    resolve_grid,
    resolve_point,
)

__all__ = ["AXES", "ENGINES", "FULL_DATA_POINT", "SMOKE_TEST", "Engine", "EngineOptions", "GridSpec", "Point",
           "SweepReport", "check_options", "expand_grid", "grid_points", "mark_done", "point_device", "query_family",
           "query_groups", "ray_session", "resolve_grid", "resolve_point", "run_point", "run_query", "run_sweep",
           "sigterm_ends_sweep"]
