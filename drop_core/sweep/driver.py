"""The sweep driver: the one process that owns the results store while a sweep runs.

:func:`run_sweep` resolves every grid point (a bad value fails before anything is stored),
skips points already finished or active in the store, queues the rest as runs of one sweep,
and hands them to an engine. Workers never open the store: each result and progress event
comes back to the driver's :class:`_Recorder`, the only writer, so the app's Results page
shows the sweep point by point as it runs. A point that fails is recorded with its error and
the others go on; points left unfinished when the driver stops are marked ``interrupted``,
and a rerun picks them up.
"""
from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from drop_core.sweep.engines import ENGINES, EngineOptions, check_options
from drop_core.sweep.grid import GridSpec
from drop_core.sweep.points import Point, config_log_once, mark_done, point_device, query_groups, resolve_grid

if TYPE_CHECKING:
    from drop_core.store import Store

UNFINISHED = ("failed", "cancelled", "interrupted")   # statuses of points a sweep did not complete


class _Recorder:
    """Driver side: the only writer of the store during a sweep."""

    def __init__(self, store: Store, points: list[Point], echo: Callable[[str], None]) -> None:
        self.store, self.echo = store, echo
        self.by_run = {p.run_id: p for p in points if p.run_id is not None}
        self.total, self.done = len(self.by_run), 0

    def started(self, run_id: int, environment: dict) -> None:
        self.store.set_status(run_id, "running")
        self.store.set_environment(run_id, environment)
        self.by_run[run_id].status = "running"

    def event(self, run_id: int, event: dict) -> None:
        self.store.add_event(run_id, event)

    def finished(self, run_id: int, result: dict) -> None:
        self.store.save_result(run_id, result)
        p = self.by_run[run_id]
        p.status = "finished"
        p.summary = {k: result.get(k) for k in ("average_accuracy", "worst_class_accuracy", "train_size")}
        self._echo(p, f"avg {p.summary['average_accuracy']:.3f} worst {p.summary['worst_class_accuracy']:.3f}")

    def failed(self, run_id: int, error: str, status: str = "failed") -> None:
        self.store.set_status(run_id, status, error=error)
        p = self.by_run[run_id]
        p.status, p.error = status, error
        self._echo(p, error)

    def interrupt_unfinished(self) -> None:
        for run_id, p in self.by_run.items():
            if p.status in ("queued", "running"):
                self.store.set_status(run_id, "interrupted",
                                      error="the sweep driver stopped before this point finished")
                p.status = "interrupted"

    def _echo(self, p: Point, text: str) -> None:
        self.done += 1
        c = p.config
        self.echo(f"[{self.done}/{self.total}] run {p.run_id} {p.status}: {c['scorer']}/{c['quoter']} "
                  f"d={c['density']:g} seed={c['seed']}: {text}")


@dataclass
class SweepReport:
    """What a sweep did: one entry per grid point (also what ``--json`` prints)."""

    sweep_id: int
    engine: str
    seconds: float
    points: list[Point]

    def counts(self) -> dict[str, int]:
        """How many points ended in each status."""
        out: dict[str, int] = {}
        for p in self.points:
            out[p.status] = out.get(p.status, 0) + 1
        return out

    def unfinished(self) -> int:
        """Points that failed, were cancelled or were interrupted (the CLI's exit status is 1 if any)."""
        return sum(1 for p in self.points if p.status in UNFINISHED)

    def to_dict(self) -> dict[str, Any]:
        return {"sweep_id": self.sweep_id, "engine": self.engine, "seconds": round(self.seconds, 3),
                "counts": self.counts(), "points": [asdict(p) for p in self.points]}


def run_sweep(spec: GridSpec, store: Store, *, engine: str = "ray", options: EngineOptions | None = None,
              sweep_id: int | None = None, echo: Callable[[str], None] = lambda line: None) -> SweepReport:
    """Run every grid point not yet finished in ``store``; the calling process writes all results.

    ``sweep_id``: fill a sweep created beforehand (``store.create_sweep``), so a watcher can
    follow it from the start; by default a new one is created. ``echo`` gets one line per event
    worth telling (a point done, the plan). ``options``: default :class:`EngineOptions()`.
    """
    eng = ENGINES.get(engine)
    options = options if options is not None else EngineOptions()
    check_options(options)
    start = time.perf_counter()
    device = point_device(str(spec.base.get("device", "auto")), engine, options.gpus_per_run)
    with config_log_once():                 # the preset's overrides show once, not once per point and stage
        points, groups = resolve_grid(spec, device)
        mark_done(points, store)
        if sweep_id is None:
            sweep_id = store.create_sweep(spec.name or f"{spec.dataset} sweep", spec.to_dict())
        todo = [(p, g) for p, g in zip(points, groups) if p.status == "queued"]
        echo(f"sweep {sweep_id}: {len(points)} points, {len(points) - len(todo)} already done or active, "
             f"{len(todo)} to run on {engine}")
        if todo:
            with eng.session(options):          # Ray is up (or the address answered) before runs are queued
                for p, _ in todo:
                    p.run_id = store.create_run(p.config, p.key, sweep_id=sweep_id)
                run_points = [p for p, _ in todo]
                rec = _Recorder(store, run_points, echo)
                try:
                    eng.run(run_points, query_groups([g for _, g in todo]), rec, options)
                finally:
                    rec.interrupt_unfinished()
    return SweepReport(sweep_id, engine, time.perf_counter() - start, points)


@contextlib.contextmanager
def sigterm_ends_sweep() -> Iterator[None]:
    """In a process's main thread, SIGTERM (a SLURM time limit, a job's cancel) ends the sweep like Ctrl-C:
    the driver marks its unfinished points interrupted, and a rerun picks them up."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
