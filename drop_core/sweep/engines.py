"""Engines that run a sweep's grid points: ``local`` (in this process) and ``ray`` (one task per point).

Workers run the pipeline without a store: they return results and send progress events, and
the driver's recorder writes them. On Ray, events go through a small actor (:class:`_Relay`)
the driver drains every :data:`POLL_SECONDS`; a worker sends at most one per-step event every
:data:`EVENT_EVERY_SECONDS`. Each query group's stage runs before its points; stages of one
:func:`~drop_core.sweep.points.query_family` run one after another so that a query model
they share is trained once.
"""
from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drop_core.errors import DropError
from drop_core.registry import Registry
from drop_core.sweep.grid import OWNER
from drop_core.sweep.points import Point, query_family
from drop_core.validate import check_number, param_error

if TYPE_CHECKING:
    from drop_core.sweep.driver import _Recorder

POLL_SECONDS = 0.5            # driver: how often it collects progress and checks cancel flags
EVENT_EVERY_SECONDS = 2.0     # worker: at most one per-step progress event per run this often
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class EngineOptions:
    """Where and with what resources the points run (the sweep's engine options, not run settings)."""

    address: str | None = None      # Ray: connect to this cluster; None starts a local instance
    num_cpus: int | None = None     # Ray: CPUs of the local instance (None: all of this machine)
    cpus_per_run: float = 1.0       # Ray CPUs per point, also its torch threads
    gpus_per_run: float = 0.0       # Ray GPUs per point; a fraction lets points share a GPU
    cache_dir: str | None = None    # the query cache every worker reads and writes


def check_options(o: EngineOptions) -> None:
    """Raise the one-template DropError for an option Ray would reject late (or misread)."""
    check_number("cpus_per_run", OWNER, o.cpus_per_run, low=0.0, open_low=True)
    check_number("gpus_per_run", OWNER, o.gpus_per_run, low=0.0)
    if o.gpus_per_run > 1 and o.gpus_per_run != int(o.gpus_per_run):
        raise param_error("gpus_per_run", OWNER, "a fraction in (0.0, 1.0] or a whole number", o.gpus_per_run)
    if o.num_cpus is not None:
        check_number("num_cpus", OWNER, o.num_cpus, kind=int, low=1)


# --- one grid point (runs on a worker) -----------------------------------------------------

def run_point(config: dict, *, progress: Callable[[dict], None] | None = None,
              should_stop: Callable[[], bool] | None = None, cache_dir: str | None = None) -> dict:
    """Run one grid point through the pipeline without a store; return ``RunResult.to_dict()``."""
    from drop_core import pipeline

    result = pipeline.run(pipeline.RunConfig.from_dict(config), progress=progress, should_stop=should_stop,
                          cache_dir=cache_dir)
    return result.to_dict()


def run_query(config: dict, *, progress: Callable[[dict], None] | None = None,
              cache_dir: str | None = None) -> None:
    """Train/load the query model(s) and scores a grid point needs into the on-disk cache."""
    from drop_core import pipeline

    pipeline.query_stage(pipeline.RunConfig.from_dict(config), progress=progress, cache_dir=cache_dir)


def _environment(device: str) -> dict:
    """Where a grid point ran: the pipeline's environment, and the Ray node and GPUs when on Ray."""
    from drop_core import pipeline

    env: dict[str, Any] = {**pipeline.environment(device), "pid": os.getpid()}
    if "ray" in sys.modules:
        import ray

        if ray.is_initialized():
            ctx = ray.get_runtime_context()
            env.update(ray_node=ctx.get_node_id(), ray_gpu_ids=[str(g) for g in ray.get_gpu_ids()])
    return env


def _error_text(exc: BaseException) -> str:
    """One line for the store: a DropError's own message, else the exception type and message."""
    if isinstance(exc, DropError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}".strip()


class _Throttle:
    """Progress callback: forwards every event but per-step ones, and those at most every few seconds."""

    def __init__(self, send: Callable[[dict], None]) -> None:
        self._send, self._at = send, 0.0

    def __call__(self, event: dict) -> None:
        now = time.monotonic()
        if event.get("event") != "step" or now - self._at >= EVENT_EVERY_SECONDS:
            self._at = now
            self._send(dict(event))


# --- the engine registry -------------------------------------------------------------------

Runner = Callable[[list[Point], list[list[int]], "_Recorder", EngineOptions], None]


@dataclass(frozen=True)
class Engine:
    """``session(options)`` is entered before any point is queued in the store; ``run`` runs the points.

    ``run(todo, groups, recorder, options)``: ``groups`` are lists of indices into ``todo`` that
    share one query stage; every outcome goes to ``recorder`` (the driver's store writer).
    """

    session: Callable[[EngineOptions], contextlib.AbstractContextManager]
    run: Runner


ENGINES: Registry[Engine] = Registry("engine")


def _run_local(todo: list[Point], groups: list[list[int]], rec: _Recorder, opts: EngineOptions) -> None:
    """Each group's query stage, then its points, one after another; a cancel request is read between steps."""
    from drop_core.pipeline import Cancelled, StopPoll

    for group in groups:
        members = [todo[i] for i in group]

        def to_members(event: dict, members: list[Point] = members) -> None:
            for p in members:
                rec.event(p.run_id, event)

        try:
            run_query(members[0].config, cache_dir=opts.cache_dir, progress=_Throttle(to_members))
        except Exception as exc:   # recorded per point; the sweep goes on
            for p in members:
                rec.failed(p.run_id, f"query stage failed: {_error_text(exc)}")
            continue
        for p in members:
            rid = p.run_id
            if rec.store.cancel_requested(rid):
                rec.failed(rid, "cancelled by request", status="cancelled")
                continue
            rec.started(rid, _environment(p.config["device"]))
            try:
                result = run_point(p.config, progress=_Throttle(lambda ev, rid=rid: rec.event(rid, ev)),
                                   should_stop=StopPoll(rec.store, rid, None),   # not a query per step
                                   cache_dir=opts.cache_dir)
            except Cancelled:
                rec.failed(rid, "cancelled by request", status="cancelled")
            except Exception as exc:
                rec.failed(rid, _error_text(exc))
            else:
                rec.finished(rid, result)


# --- Ray -----------------------------------------------------------------------------------

class _Relay:
    """Ray actor: workers push (kind, id, event) tuples, the driver drains them."""

    def __init__(self) -> None:
        self._items: list[tuple] = []

    def push(self, item: tuple) -> None:
        self._items.append(item)

    def drain(self) -> list[tuple]:
        items, self._items = self._items, []
        return items

    def ping(self) -> None:
        """Once a ping's reference resolves, the caller's earlier pushes have arrived.

        One caller's calls run in order, so nothing it pushed before the ping is still in flight.
        """


def _ray_query(config: dict, group: int, relay, threads: int, cache_dir: str | None, _after: Any) -> str | None:
    """Returns None, or the error text that each point of the group then fails with.

    ``_after`` is the previous query stage of the same family (Ray starts this one when it is done).
    """
    import torch

    torch.set_num_threads(threads)
    try:
        run_query(config, progress=_Throttle(lambda ev: relay.push.remote(("query", group, ev))), cache_dir=cache_dir)
    except Exception as exc:   # reported by every point that needed this query stage
        return _error_text(exc)
    return None


def _ray_point(config: dict, run_id: int, relay, threads: int, cache_dir: str | None,
               query_error: str | None) -> dict:
    """``{"result", "error", "flushed"}``; ``flushed`` resolves once the relay has this run's events.

    The task never blocks on the relay: a blocking ``ray.get`` inside a task lends its CPU
    out, and Ray would start extra worker processes.
    """
    import torch

    result, error = None, None
    if query_error is not None:
        error = f"query stage failed: {query_error}"
    else:
        torch.set_num_threads(threads)
        relay.push.remote(("start", run_id, _environment(config["device"])))
        try:
            result = run_point(config, progress=_Throttle(lambda ev: relay.push.remote(("point", run_id, ev))),
                               cache_dir=cache_dir)
        except Exception as exc:   # recorded for this point; the sweep goes on
            error = _error_text(exc)
    return {"result": result, "error": error, "flushed": relay.ping.remote()}


def _run_ray(todo: list[Point], groups: list[list[int]], rec: _Recorder, opts: EngineOptions) -> None:
    """Every query stage and point as a Ray task at once (Ray orders them); the driver records as results come."""
    import ray

    relay = ray.remote(_Relay).options(num_cpus=0).remote()
    res = {"num_cpus": opts.cpus_per_run, "num_gpus": opts.gpus_per_run}
    threads = max(1, int(opts.cpus_per_run))
    query_task = ray.remote(_ray_query).options(**res)
    point_task = ray.remote(_ray_point).options(**res)
    pending: dict[Any, Point] = {}
    ref_of: dict[int, Any] = {}
    group_of: dict[int, list[Point]] = {}
    last_of_family: dict[str, Any] = {}
    for g, group in enumerate(groups):
        members = [todo[i] for i in group]
        group_of[g] = members
        family = query_family(members[0].config)
        qref = query_task.remote(members[0].config, g, relay, threads, opts.cache_dir, last_of_family.get(family))
        last_of_family[family] = qref
        for p in members:
            ref = point_task.remote(p.config, p.run_id, relay, threads, opts.cache_dir, qref)
            pending[ref], ref_of[p.run_id] = p, ref

    def drain() -> None:
        for kind, ident, event in ray.get(relay.drain.remote()):
            if kind == "start":
                if rec.store.cancel_requested(ident):    # cancelled while it waited for a worker
                    ray.cancel(ref_of[ident])
                else:
                    rec.started(ident, event)
            elif kind == "point":
                rec.event(ident, event)
            else:   # a query stage: shown on every point waiting for it
                for p in group_of[ident]:
                    rec.event(p.run_id, event)

    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=POLL_SECONDS)
            drain()
            for ref in ready:
                p = pending.pop(ref)
                try:
                    out = ray.get(ref)
                except ray.exceptions.TaskCancelledError:
                    rec.failed(p.run_id, "cancelled by request", status="cancelled")
                    continue
                except ray.exceptions.RayError as exc:   # the worker died, the node was lost, ...
                    rec.failed(p.run_id, _error_text(getattr(exc, "cause", None) or exc))
                    continue
                ray.get(out["flushed"])
                drain()
                if out["error"] is None:
                    rec.finished(p.run_id, out["result"])
                else:
                    rec.failed(p.run_id, out["error"])
            for ref, p in pending.items():   # only running points: a few per node, one query each
                if p.status == "running" and rec.store.cancel_requested(p.run_id):
                    ray.cancel(ref)
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)


class ray_session:
    """Context manager: connect to ``address``, or start a local Ray instance and stop it on exit.

    A Ray already initialised in this process is used as it is and left running.
    """

    def __init__(self, address: str | None = None, num_cpus: int | None = None) -> None:
        self.address, self.num_cpus, self._owned = address, num_cpus, False

    def __enter__(self) -> ray_session:
        os.environ.setdefault("RAY_DISABLE_USAGE_STATS", "1")
        import ray

        if ray.is_initialized():
            return self
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": "WARNING"}
        if self.address:
            # The cluster's workers get this checkout of drop_core (its Python dependencies must be installed there).
            try:
                ray.init(address=self.address, runtime_env={"py_modules": [str(REPO_ROOT / "drop_core")]}, **kwargs)
            except (ConnectionError, RuntimeError) as e:
                raise DropError(_connect_error(self.address, e)) from None
        else:
            # Workers of a local instance inherit this environment: make this checkout importable there.
            os.environ["PYTHONPATH"] = _pythonpath()
            # "local": always a new instance, never one found through RAY_ADDRESS or /tmp/ray
            ray.init(address="local", num_cpus=self.num_cpus or os.cpu_count(), **kwargs)
        self._owned = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._owned:
            import ray

            ray.shutdown()


def _connect_error(address: str, exc: BaseException) -> str:
    """One line saying why ``ray.init(address=...)`` failed and what to do."""
    chain: list[str] = []
    e: BaseException | None = exc
    while e is not None:
        chain.append(str(e))
        e = e.__cause__
    if any("InvalidAuthToken" in text or "AuthenticationError" in text for text in chain):
        return (f"The Ray cluster at {address!r} requires token authentication; run the sweep with "
                f"RAY_AUTH_MODE=token and the cluster's token in ~/.ray/auth_token (or RAY_AUTH_TOKEN).")
    reason = (chain[0].strip().splitlines() or [type(exc).__name__])[0]
    return (f"Cannot connect to the Ray cluster at {address!r} ({reason}). Give the "
            f"address `ray start --head` printed (HEAD_IP:PORT), or 'auto' on a node of the cluster.")


def _pythonpath() -> str:
    """PYTHONPATH with this checkout first, so a local instance's workers import this drop_core."""
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return os.pathsep.join(paths if str(REPO_ROOT) in paths else [str(REPO_ROOT), *paths])


ENGINES.add("local", Engine(lambda opts: contextlib.nullcontext(), _run_local),
            "sequentially in this process; no Ray needed")
ENGINES.add("ray", Engine(lambda opts: ray_session(opts.address, opts.num_cpus), _run_ray),
            "one Ray task per grid point, on a local instance or the cluster at --address")
