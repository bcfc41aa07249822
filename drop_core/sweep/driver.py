"""Sweeps: a grid of pipeline runs (scorers x quota rules x densities x seeds) on Ray or in-process.

A grid point is one call of :func:`run_point`, a function of a config dict that calls the
pipeline (in the style of ray-project/ray ``tune/examples/tune_basic_example.py``). The driver
(the process that calls :func:`run_sweep`) owns the results store: workers return results and
send progress events to a small Ray actor, and only the driver writes them to SQLite, so the
app's Results page shows a sweep point by point as it runs.

Order of work: query models and scores first, once per group of grid points that share them
(same dataset, model, scorer, seed...; quota rule and density only affect the final model),
into the pipeline's on-disk cache; then every grid point, each depending only on its own
group's query stage. Points already finished in the store are skipped; a failed point is
recorded with its error and the others go on.
"""
from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from drop_core.errors import DropError
from drop_core.registry import Registry

if TYPE_CHECKING:   # imported where used: a Ray worker that only relays progress stays light
    from drop_core.store import Store

AXES = ("scorer", "quoter", "density", "seed")   # the RunConfig fields a grid varies
POLL_SECONDS = 0.5            # driver: how often it collects progress and checks cancel flags
EVENT_EVERY_SECONDS = 2.0     # worker: at most one per-step progress event per run this often
REPO_ROOT = Path(__file__).resolve().parents[2]


# --- the grid (pure) ------------------------------------------------------------------------

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
    def from_dict(cls, d: Mapping[str, Any]) -> "GridSpec":
        """Build from plain data (lists are fine); an unknown key is a DropError."""
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(d) - known)
        if unknown:
            raise DropError(f"Unknown grid key(s) {', '.join(map(repr, unknown))}. "
                            f"Valid keys: {', '.join(sorted(known))}.")
        if "dataset" not in d:
            raise DropError("The grid needs a 'dataset' (e.g. 'digits').")
        return cls(dataset=str(d["dataset"]), scorers=tuple(d.get("scorers", ())),
                   quoters=tuple(d.get("quoters", ())), densities=tuple(d.get("densities", ())),
                   seeds=tuple(d.get("seeds", (0,))), base=dict(d.get("base", {})), name=str(d.get("name", "")))

    def to_dict(self) -> dict:
        return {"dataset": self.dataset, "scorers": list(self.scorers), "quoters": list(self.quoters),
                "densities": list(self.densities), "seeds": list(self.seeds), "base": dict(self.base),
                "name": self.name}


SMOKE_TEST = GridSpec(dataset="digits", scorers=("random", "el2n"), quoters=("uniform", "drop"),
                      densities=(0.3, 0.6), seeds=(0,), base={"epochs": 2}, name="smoke test")


def expand_grid(spec: GridSpec) -> list[dict]:
    """Every grid point as a RunConfig dict, in scorer, quoter, density, seed order."""
    axes = {"scorers": spec.scorers, "quoters": spec.quoters, "densities": spec.densities, "seeds": spec.seeds}
    for axis, values in axes.items():
        if len(values) == 0:
            raise DropError(f"The '{axis}' parameter of a sweep must be a non-empty list. Got [] instead.")
        if len(set(values)) != len(values):
            raise DropError(f"The '{axis}' parameter of a sweep must not repeat a value. Got {list(values)} instead.")
    clash = sorted(set(spec.base) & {"dataset", *AXES})
    if clash:
        raise DropError(f"The 'base' settings of a sweep must not set a grid axis; give {clash[0]!r} "
                        f"as a sweep parameter instead. Got base keys {sorted(spec.base)}.")
    return [{**spec.base, "dataset": spec.dataset, "scorer": s, "quoter": q, "density": _as_float(d), "seed": seed}
            for s, q, d, seed in itertools.product(*axes.values())]


def _as_float(value: Any) -> Any:
    """An int density becomes a float (1 and 1.0 are one run key); anything else is left to the pipeline's checks."""
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


def query_family(config: dict) -> str:
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


def resolve_point(config: dict, device: str) -> tuple[dict, str, str]:
    """The resolved config, store key and query group key of a grid point that will run on ``device``.

    The driver resolves for the workers' device (``cpu`` or ``cuda``), which it may not have
    itself, so that the key it checks the store with is the key the worker computes.
    """
    import dataclasses

    from drop_core import pipeline
    from drop_core.config import query_key

    cfg = pipeline.RunConfig.from_dict({**config, "device": "cpu"})
    resolved = dataclasses.replace(pipeline.resolve(cfg)[0], device=device)
    plan = pipeline.query_plan(resolved)
    group = f"{query_key(resolved, plan.key_facts())}:{plan.inits}" if plan.inits else "no query model"
    return resolved.to_dict(), pipeline.run_key(resolved), group


def point_device(requested: str, engine: str, gpus_per_run: float) -> str:
    """The device of every grid point: on the local engine, this machine's; on Ray, ``auto`` means
    cuda when each point gets a GPU share (``gpus_per_run``), else cpu."""
    from drop_core.train.device import resolve_device

    if engine == "local":
        return resolve_device(requested).type
    if requested not in ("auto", "cpu", "cuda"):
        raise DropError(f"The 'device' parameter of a Ray sweep must be one of auto, cpu, cuda. "
                        f"Got {requested!r} instead.")
    device = ("cuda" if gpus_per_run > 0 else "cpu") if requested == "auto" else requested
    if device == "cuda" and gpus_per_run <= 0:
        raise DropError("Grid points on device 'cuda' need a GPU share from Ray; give --gpus-per-run "
                        "(e.g. 0.25 or 1).")
    return device


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


class _Throttle:
    """Progress callback: forwards every event but per-step ones, and those at most every few seconds."""

    def __init__(self, send: Callable[[dict], None]) -> None:
        self._send, self._at = send, 0.0

    def __call__(self, event: dict) -> None:
        now = time.monotonic()
        if event.get("event") != "step" or now - self._at >= EVENT_EVERY_SECONDS:
            self._at = now
            self._send(dict(event))


# --- Ray side ------------------------------------------------------------------------------

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
        """Once a ping's reference resolves, the caller's earlier pushes have arrived (one caller's calls run in order)."""


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


# --- the driver ----------------------------------------------------------------------------

@dataclass
class Point:
    """One grid point as the driver tracks it."""

    config: dict
    key: str
    run_id: int | None = None
    status: str = "queued"     # queued | running | finished | failed | cancelled | interrupted | skipped | active
    error: str | None = None
    summary: dict | None = None


@dataclass(frozen=True)
class EngineOptions:
    address: str | None = None      # Ray: connect to this cluster; None starts a local instance
    num_cpus: int | None = None     # Ray: CPUs of the local instance (None: all of this machine)
    cpus_per_run: float = 1.0
    gpus_per_run: float = 0.0
    cache_dir: str | None = None


def _error_text(exc: BaseException) -> str:
    """One line for the store: a DropError's own message, else the exception type and message."""
    if isinstance(exc, DropError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}".strip()


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
                self.store.set_status(run_id, "interrupted", error="the sweep driver stopped before this point finished")
                p.status = "interrupted"

    def _echo(self, p: Point, text: str) -> None:
        self.done += 1
        c = p.config
        self.echo(f"[{self.done}/{self.total}] run {p.run_id} {p.status}: {c['scorer']}/{c['quoter']} "
                  f"d={c['density']:g} seed={c['seed']}: {text}")


Runner = Callable[[list[Point], list[list[int]], _Recorder, EngineOptions], None]


@dataclass(frozen=True)
class Engine:
    """``session(options)`` is entered before any point is queued in the store; ``run`` runs the points."""

    session: Callable[[EngineOptions], contextlib.AbstractContextManager]
    run: Runner


ENGINES: Registry[Engine] = Registry("engine")


def _run_local(todo: list[Point], groups: list[list[int]], rec: _Recorder, opts: EngineOptions) -> None:
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


def _run_ray(todo: list[Point], groups: list[list[int]], rec: _Recorder, opts: EngineOptions) -> None:
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

    def __enter__(self) -> "ray_session":
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


ENGINES.add("local", Engine(lambda opts: contextlib.nullcontext(), _run_local),
            "sequentially in this process; no Ray needed")
ENGINES.add("ray", Engine(lambda opts: ray_session(opts.address, opts.num_cpus), _run_ray),
            "one Ray task per grid point, on a local instance or the cluster at --address")


def _connect_error(address: str, exc: BaseException) -> str:
    """One line saying why ``ray.init(address=...)`` failed and what to do."""
    chain, e = [], exc
    while e is not None:
        chain.append(str(e))
        e = e.__cause__
    if any("InvalidAuthToken" in text or "AuthenticationError" in text for text in chain):
        return (f"The Ray cluster at {address!r} requires token authentication; run the sweep with "
                f"RAY_AUTH_MODE=token and the cluster's token in ~/.ray/auth_token (or RAY_AUTH_TOKEN).")
    return (f"Cannot connect to the Ray cluster at {address!r} ({chain[0].strip().splitlines()[0]}). Give the "
            f"address `ray start --head` printed (HEAD_IP:PORT), or 'auto' on a node of the cluster.")


def _pythonpath() -> str:
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return os.pathsep.join(paths if str(REPO_ROOT) in paths else [str(REPO_ROOT), *paths])


@dataclass
class SweepReport:
    """What a sweep did: one entry per grid point (also what ``--json`` prints)."""

    sweep_id: int
    engine: str
    seconds: float
    points: list[Point]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for p in self.points:
            out[p.status] = out.get(p.status, 0) + 1
        return out

    def to_dict(self) -> dict:
        return {"sweep_id": self.sweep_id, "engine": self.engine, "seconds": round(self.seconds, 3),
                "counts": self.counts(), "points": [asdict(p) for p in self.points]}


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


def resolve_grid(spec: GridSpec, device: str) -> tuple[list[Point], list[Any]]:
    """Every grid point resolved (a bad value fails here, before anything is stored), with its query plan."""
    points, plans = [], []
    log, once = logging.getLogger("drop_core.config"), _Once()
    log.addFilter(once)
    try:
        for cfg in expand_grid(spec):
            resolved, key, query = resolve_point(cfg, device)
            points.append(Point(resolved, key))
            plans.append(query)
    finally:
        log.removeFilter(once)
    return points, plans


def mark_done(points: list[Point], store: Store) -> None:
    """Points finished in the store become ``skipped``, points queued or running elsewhere ``active``."""
    for p in points:
        done = store.finished_run_for_key(p.key)
        active = None if done is not None else store.active_run_for_key(p.key)
        if done is not None:
            p.run_id, p.status = done, "skipped"
        elif active is not None:
            p.run_id, p.status = active, "active"


def run_sweep(spec: GridSpec, store: Store, *, engine: str = "ray", options: EngineOptions = EngineOptions(),
              sweep_id: int | None = None, echo: Callable[[str], None] = lambda line: None) -> SweepReport:
    """Run every grid point not yet finished in ``store``; the calling process writes all results."""
    eng = ENGINES.get(engine)
    _check_options(options)
    start = time.perf_counter()
    device = point_device(str(spec.base.get("device", "auto")), engine, options.gpus_per_run)
    points, plans = resolve_grid(spec, device)
    mark_done(points, store)
    if sweep_id is None:
        sweep_id = store.create_sweep(spec.name or f"{spec.dataset} sweep", spec.to_dict())
    todo = [(p, q) for p, q in zip(points, plans) if p.status == "queued"]
    echo(f"sweep {sweep_id}: {len(points)} points, {len(points) - len(todo)} already done or active, "
         f"{len(todo)} to run on {engine}")
    if todo:
        with eng.session(options):          # Ray is up (or the address answered) before runs are queued
            for p, _ in todo:
                p.run_id = store.create_run(p.config, p.key, sweep_id=sweep_id)
            run_points = [p for p, _ in todo]
            rec = _Recorder(store, run_points, echo)
            try:
                eng.run(run_points, query_groups([q for _, q in todo]), rec,
                        options)
            finally:
                rec.interrupt_unfinished()
    return SweepReport(sweep_id, engine, time.perf_counter() - start, points)


def _check_options(o: EngineOptions) -> None:
    if not o.cpus_per_run > 0:
        raise DropError(f"The 'cpus_per_run' parameter of a sweep must be a float > 0. Got {o.cpus_per_run} instead.")
    if not o.gpus_per_run >= 0:
        raise DropError(f"The 'gpus_per_run' parameter of a sweep must be a float >= 0. Got {o.gpus_per_run} instead.")
    if o.gpus_per_run > 1 and o.gpus_per_run != int(o.gpus_per_run):
        raise DropError("The 'gpus_per_run' parameter of a sweep must be a fraction in (0, 1] or a whole number. "
                        f"Got {o.gpus_per_run} instead.")
    if o.num_cpus is not None and o.num_cpus < 1:
        raise DropError(f"The 'num_cpus' parameter of a sweep must be an int >= 1. Got {o.num_cpus} instead.")


@contextlib.contextmanager
def sigterm_ends_sweep():
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


def launch_sweep(grid_spec: GridSpec | Mapping[str, Any], store_path: str | None, engine: str = "ray", *,
                 sweep_id: int | None = None, num_cpus: int | None = None, cpus_per_run: float = 1.0,
                 gpus_per_run: float = 0.0, address: str | None = None, cache_dir: str | None = None) -> dict:
    """Run a sweep to the end and return its report as a dict; for a background process of the app.

    Takes only plain, picklable arguments. Create the sweep first with
    ``Store(path).create_sweep(name, spec)`` and pass its ``sweep_id`` to watch it from the start
    with ``store.list_runs(sweep_id=...)``.
    """
    spec = grid_spec if isinstance(grid_spec, GridSpec) else GridSpec.from_dict(grid_spec)
    options = EngineOptions(address=address, num_cpus=num_cpus, cpus_per_run=cpus_per_run,
                            gpus_per_run=gpus_per_run, cache_dir=cache_dir)
    from drop_core.store import Store

    with sigterm_ends_sweep():
        return run_sweep(spec, Store(store_path), engine=engine, options=options, sweep_id=sweep_id).to_dict()


# --- CLI ------------------------------------------------------------------------------------

def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``python -m drop_core sweep``; the handler is ``args.func(args) -> exit code``."""
    from drop_core.store import default_store_path

    p = subparsers.add_parser(
        "sweep", help="run a grid of scorers x quota rules x densities x seeds on Ray (or in-process)",
        description="Run every combination of --scorers x --quoters x --densities x --seeds on one dataset. "
                    "Query models and scores are computed once per group and shared through the cache; "
                    "points already finished in the store are skipped; results land in the store as they finish.")
    p.add_argument("--engine", choices=ENGINES.names(), default="ray",
                   help="'ray': one Ray task per point; 'local': one after another in this process (default: ray)")
    p.add_argument("--address", help="Ray cluster to use, e.g. 'auto' or 'HEAD_IP:6379' "
                                     "(default: start a local Ray instance and stop it at the end)")
    p.add_argument("--num-cpus", type=int, help="CPUs of the local Ray instance (default: all of this machine)")
    p.add_argument("--dataset", help="dataset name (default: the pipeline's default)")
    p.add_argument("--scorers", nargs="+", default=[], metavar="SCORER", help="scoring methods, e.g. el2n forgetting")
    p.add_argument("--quoters", nargs="+", default=[], metavar="QUOTER", help="quota rules, e.g. none uniform drop")
    p.add_argument("--densities", nargs="+", type=float, default=[], metavar="D", help="fractions kept, in (0, 1]")
    p.add_argument("--seeds", nargs="+", type=int, metavar="SEED", help="seeds (default: 0)")
    p.add_argument("--model", help="model name (default: the preset's)")
    p.add_argument("--preset", help="training preset (default: the pipeline's)")
    p.add_argument("--epochs", type=int, help="final-model epochs (default: the preset's)")
    p.add_argument("--data-root", help="folder with the dataset files")
    p.add_argument("--device", help="device inside each run, e.g. auto, cpu, cuda (default: auto)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any other run setting, the same at every point, e.g. --set query_inits=5 "
                        "--set selection=random (see `run --help`; VALUE is read as JSON when it parses)")
    p.add_argument("--cpus-per-run", type=float, default=1.0, help="Ray CPUs (and torch threads) per point (default: 1)")
    p.add_argument("--gpus-per-run", type=float, default=0.0,
                   help="Ray GPUs per point; a fraction such as 0.25 lets four small runs share one GPU (default: 0)")
    p.add_argument("--cache-dir", help="query cache folder; on a cluster, one all nodes share (default: runs/cache)")
    p.add_argument("--store", help=f"results store (default: $DROP_STORE or {default_store_path()})")
    p.add_argument("--name", default="", help="a name for the sweep in the store")
    p.add_argument("--smoke-test", action="store_true",
                   help="a fixed tiny grid on digits (2 scorers x 2 quota rules x 2 densities, 2 epochs); "
                        "no grid options with it")
    p.add_argument("--json", action="store_true", help="print the sweep report as JSON")
    p.set_defaults(func=cli_sweep)
    return p


GRID_OPTIONS = ("dataset", "scorers", "quoters", "densities", "seeds", "model", "preset", "epochs", "data_root",
                "device", "set", "name")


def spec_from_args(args: argparse.Namespace) -> GridSpec:
    """The grid a ``sweep`` command line asks for."""
    if args.smoke_test:
        given = [name for name in GRID_OPTIONS if getattr(args, name)]
        if given:
            flags = ", ".join("--" + name.replace("_", "-") for name in given)
            raise DropError(f"--smoke-test runs a fixed grid; leave out {flags}, or --smoke-test.")
        return SMOKE_TEST
    base = {k: getattr(args, k) for k in ("model", "preset", "epochs", "data_root", "device")
            if getattr(args, k) is not None}
    for item in args.set:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise DropError(f"The '--set' option must look like KEY=VALUE. Got {item!r} instead.")
        try:
            base[key.strip()] = json.loads(text)
        except json.JSONDecodeError:
            base[key.strip()] = text
    if args.dataset is None:
        from drop_core.pipeline import DEFAULT_DATASET

        args.dataset = DEFAULT_DATASET
    return GridSpec(dataset=args.dataset, scorers=tuple(args.scorers), quoters=tuple(args.quoters),
                    densities=tuple(args.densities), seeds=tuple(args.seeds or (0,)), base=base, name=args.name)


def cli_sweep(args: argparse.Namespace) -> int:
    """``python -m drop_core sweep``: 0 when every point finished or was already done, 1 otherwise."""
    from drop_core.store import Store

    spec = spec_from_args(args)
    options = EngineOptions(address=args.address, num_cpus=args.num_cpus, cpus_per_run=args.cpus_per_run,
                            gpus_per_run=args.gpus_per_run, cache_dir=args.cache_dir)
    with sigterm_ends_sweep():
        report = run_sweep(spec, Store(args.store), engine=args.engine, options=options,
                           echo=lambda line: print(line, file=sys.stderr, flush=True))
    counts = report.counts()
    if args.json:
        print(json.dumps(report.to_dict(), indent=1, default=str))
    else:
        print(f"sweep {report.sweep_id}: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
              + f" in {report.seconds:.1f} s")
    bad = sum(n for s, n in counts.items() if s in ("failed", "cancelled", "interrupted"))
    if bad:
        print(f"{bad} of {len(report.points)} points did not finish; their errors are in the store "
              f"(sweep {report.sweep_id}).", file=sys.stderr)
    return 1 if bad else 0
