"""``python -m drop_core sweep``: the sweep's command line (the sweep itself is :mod:`drop_core.sweep`).

The run-setting flags are generated from the config declaration, as ``run``'s are
(:func:`drop_core.config.add_flags`): the grid axes take several values (``--scorers``,
``--quoters``, ``--densities``, ``--seeds``), every other field one value, the same at every
point. ``--set KEY=VALUE`` (for scripts) is checked against the same declaration, so a bad
value fails with one line before anything is stored or started.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from drop_core.config import (
    DEFAULT_DATASET,
    STAGES,
    RunConfig,
    add_flags,
    check_field,
    fields_of,
    flag_values,
    plural,
    role,
)
from drop_core.errors import DropError
from drop_core.store import Store, default_store_path
from drop_core.sweep import (
    AXES,
    ENGINES,
    SMOKE_TEST,
    EngineOptions,
    GridSpec,
    check_options,
    run_sweep,
    sigterm_ends_sweep,
)
from drop_core.validate import param_error

SET_OWNER = "sweep --set"     # the name in --set validation messages


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``python -m drop_core sweep``; the handler is ``args.func(args) -> exit code``."""
    p = subparsers.add_parser(
        "sweep", help="run a grid of scorers x quota rules x densities x seeds on Ray (or in-process)",
        description="Run every combination of --scorers x --quoters x --densities x --seeds on one dataset "
                    "(an axis left out takes the run's default). Every other run setting is the same at every "
                    "point. Query models and scores are computed once per group and shared through the cache; "
                    "points already finished in the store are skipped; results land in the store as they finish.")
    add_flags(p, fields_of(*STAGES), multi=AXES)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a run setting by its field name, the same at every point, e.g. --set query_inits=5 "
                        "(for scripts; VALUE is read as JSON when it parses)")
    p.add_argument("--engine", choices=ENGINES.names(), default="ray",
                   help="'ray': one Ray task per point; 'local': one after another in this process (default: ray)")
    p.add_argument("--address", help="Ray cluster to use, e.g. 'auto' or 'HEAD_IP:6379' "
                                     "(default: start a local Ray instance and stop it at the end)")
    p.add_argument("--num-cpus", type=int, help="CPUs of the local Ray instance (default: all of this machine)")
    p.add_argument("--cpus-per-run", type=float, default=1.0,
                   help="Ray CPUs (and torch threads) per point (default: 1)")
    p.add_argument("--gpus-per-run", type=float, default=0.0,
                   help="Ray GPUs per point; a fraction such as 0.25 lets four small runs share one GPU (default: 0)")
    p.add_argument("--cache-dir", help="query cache folder; on a cluster, one all nodes share (default: runs/cache)")
    p.add_argument("--store", help=f"results store (default: $DROP_STORE or {default_store_path()})")
    p.add_argument("--name", default="", help="a name for the sweep in the store")
    p.add_argument("--smoke-test", action="store_true",
                   help="a fixed tiny grid on digits (2 scorers x 2 quota rules x 2 densities, 2 epochs); "
                        "no run settings with it")
    p.add_argument("--json", action="store_true", help="print the sweep report as JSON")
    p.set_defaults(func=cli_sweep)
    return p


def _base_fields() -> list[str]:
    """The run settings that are the same at every grid point (all but the dataset and the axes)."""
    return [n for n in fields_of(*STAGES) if n not in ("dataset", *AXES)]


def _flags_given(args: argparse.Namespace) -> list[str]:
    """The grid and run-setting flags of this command line, as the user typed them."""
    given = ["--" + n.replace("_", "-") for n in flag_values(args, ["dataset", *_base_fields()])]
    given += ["--" + plural(axis) for axis in AXES if getattr(args, plural(axis)) is not None]
    given += ["--set"] * bool(args.set) + ["--name"] * bool(args.name)
    return given


def parse_set(items: list[str]) -> dict[str, Any]:
    """``--set KEY=VALUE`` items as run settings, each checked against its declared constraint."""
    names = fields_of(*STAGES)
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise param_error("--set", "sweep", "KEY=VALUE", item)
        if key not in names:
            raise DropError(f"Unknown run config key {key!r} in --set. Valid keys: {', '.join(names)}.")
        if key in out:
            raise DropError(f"--set {key} is given twice; give it once.")
        out[key] = value = _parse_value(key, text)
        check_field(key, value, owner=SET_OWNER)
    return out


def _parse_value(key: str, text: str) -> Any:
    """JSON when it parses (numbers, true/false, lists), else the text; a str field keeps its text."""
    kind = role(key).kind
    if kind is str:
        return text
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return text
    return tuple(value) if kind is tuple and isinstance(value, list) else value


def spec_from_args(args: argparse.Namespace) -> GridSpec:
    """The grid a ``sweep`` command line asks for; every --set value is checked here."""
    if args.smoke_test:
        given = _flags_given(args)
        if given:
            raise DropError(f"--smoke-test runs a fixed grid; leave out {', '.join(given)}, or --smoke-test.")
        return SMOKE_TEST
    base = flag_values(args, _base_fields())
    for key, value in parse_set(args.set).items():
        if key in base:
            raise DropError(f"--set {key}=... repeats --{key.replace('_', '-')}; give it once.")
        base[key] = value
    defaults = RunConfig()
    axes = {axis: tuple(getattr(args, plural(axis)) or (getattr(defaults, axis),)) for axis in AXES}
    return GridSpec(dataset=args.dataset or DEFAULT_DATASET, scorers=axes["scorer"], quoters=axes["quoter"],
                    densities=axes["density"], seeds=axes["seed"], base=base, name=args.name)


def cli_sweep(args: argparse.Namespace) -> int:
    """``python -m drop_core sweep``: 0 when every point finished or was already done, 1 otherwise."""
    spec = spec_from_args(args)
    options = EngineOptions(address=args.address, num_cpus=args.num_cpus, cpus_per_run=args.cpus_per_run,
                            gpus_per_run=args.gpus_per_run, cache_dir=args.cache_dir)
    check_options(options)                  # before the store is opened: a typo creates no file
    with sigterm_ends_sweep():
        report = run_sweep(spec, Store(args.store), engine=args.engine, options=options,
                           echo=lambda line: print(line, file=sys.stderr, flush=True))
    if args.json:
        print(json.dumps(report.to_dict(), indent=1, default=str))
    else:
        print(f"sweep {report.sweep_id}: " + ", ".join(f"{n} {s}" for s, n in sorted(report.counts().items()))
              + f" in {report.seconds:.1f} s")
    bad = report.unfinished()
    if bad:
        print(f"{bad} of {len(report.points)} points did not finish; their errors are in the store "
              f"(sweep {report.sweep_id}).", file=sys.stderr)
    return 1 if bad else 0
