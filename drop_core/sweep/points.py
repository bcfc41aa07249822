"""Grid points as the driver sees them: resolved, keyed, grouped by shared query stage, checked against the store.

Every point is resolved (its values validated, the preset applied, the data identified)
before the first run is stored or started, so a bad value anywhere in the grid fails the
whole sweep at once with one line. Grouping follows :func:`drop_core.config.query_key`:
points with equal query-model keys share one query stage.
"""
from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from drop_core.sweep.grid import OWNER, GridSpec, expand_grid

if TYPE_CHECKING:   # imported where used: a Ray worker that only relays progress stays light
    from drop_core.store import Store

NO_QUERY_MODEL = "no query model"   # the group key of points whose scorer and quota rule train none


@dataclass
class Point:
    """One grid point as the driver tracks it."""

    config: dict
    key: str
    run_id: int | None = None
    status: str = "queued"     # queued | running | finished | failed | cancelled | interrupted | skipped | active
    error: str | None = None
    summary: dict | None = None


def resolve_point(config: dict[str, Any], device: str) -> tuple[dict[str, Any], str, str]:
    """The resolved config, store key and query group key of a grid point that will run on ``device``.

    The driver resolves for the workers' device (``cpu`` or ``cuda``), which it may not have
    itself, so that the key it checks the store with is the key the worker computes.
    """
    import dataclasses

    from drop_core.config import RunConfig, query_key, resolve, run_key
    from drop_core.pipeline import query_plan

    cfg = RunConfig.from_dict({**config, "device": "cpu"})
    resolved = dataclasses.replace(resolve(cfg)[0], device=device)
    plan = query_plan(resolved)
    group = f"{query_key(resolved, plan.key_facts())}:{plan.inits}" if plan.inits else NO_QUERY_MODEL
    return resolved.to_dict(), run_key(resolved), group


def point_device(requested: str, engine: str, gpus_per_run: float) -> str:
    """The device of every grid point: on the local engine, this machine's; on Ray, ``auto`` means
    cuda when each point gets a GPU share (``gpus_per_run``), else cpu."""
    from drop_core.config import check_field
    from drop_core.errors import DropError
    from drop_core.train.device import resolve_device

    check_field("device", requested, owner=OWNER)
    if engine == "local":
        return resolve_device(requested).type
    device = ("cuda" if gpus_per_run > 0 else "cpu") if requested == "auto" else requested
    if device == "cuda" and gpus_per_run <= 0:
        raise DropError("Grid points on device 'cuda' need a GPU share from Ray; give --gpus-per-run "
                        "(e.g. 0.25 or 1).")
    return device


def query_family(config: dict[str, Any]) -> str:
    """Grid points whose query stages may train the same query models (they differ at most in the scorer).

    Their query stages run one after another, so a shared query model is trained once and
    found in the cache by the next scorer.
    """
    from drop_core.config import fields_of

    return json.dumps({k: config[k] for k in fields_of("data", "query")}, sort_keys=True, default=str)


def query_groups(group_keys: list[str]) -> list[list[int]]:
    """Indices of grid points that share one query stage: equal query-model keys and init counts
    (:func:`resolve_point`), so no two groups ever train the same query model at once."""
    groups: dict[str, list[int]] = {}
    for i, key in enumerate(group_keys):
        groups.setdefault(key, []).append(i)
    return list(groups.values())


class _Once(logging.Filter):
    """Lets each distinct log message through once (the preset overrides are the same at every point)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        new = text not in self.seen
        self.seen.add(text)
        return new


@contextlib.contextmanager
def config_log_once() -> Iterator[None]:
    """Inside, each distinct message of the config log shows once (not once per grid point)."""
    log, once = logging.getLogger("drop_core.config"), _Once()
    log.addFilter(once)
    try:
        yield
    finally:
        log.removeFilter(once)


def resolve_grid(spec: GridSpec, device: str) -> tuple[list[Point], list[str]]:
    """Every grid point resolved, with its query group key; a bad value fails here, before anything is stored."""
    points, groups = [], []
    with config_log_once():
        for cfg in expand_grid(spec):
            resolved, key, group = resolve_point(cfg, device)
            points.append(Point(resolved, key))
            groups.append(group)
    return points, groups


def mark_done(points: list[Point], store: Store) -> None:
    """Points finished in the store become ``skipped``, points queued or running elsewhere ``active``."""
    for p in points:
        done = store.finished_run_for_key(p.key)
        active = None if done is not None else store.active_run_for_key(p.key)
        if done is not None:
            p.run_id, p.status = done, "skipped"
        elif active is not None:
            p.run_id, p.status = active, "active"
