"""``python -m drop_core``: run the DRoP pipeline, list what is available, show and export stored runs.

A thin layer over :mod:`drop_core.pipeline` and :mod:`drop_core.store`. A user error is one
line on stderr and a non-zero exit, never a traceback. Progress bars (tqdm) and log lines go
to stderr; results go to stdout (with ``--json``, one JSON object per line, the last line
being the last run's result).
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from drop_core.errors import DropError, user_error
from drop_core.store import Store, default_store_path
from drop_core.validate import check_number

LIST_KINDS = ("datasets", "models", "scorers", "quoters", "presets", "runs")


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage block)."""

    def error(self, message: str) -> None:   # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


class _LogFormat(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        return text if record.levelno < logging.WARNING else f"{record.levelname.lower()}: {text}"


# --- run -------------------------------------------------------------------------------

def _add_run_parser(sub: argparse._SubParsersAction) -> None:
    from drop_core.config import add_flags

    p = sub.add_parser("run", help="run the DRoP pipeline once (or once per --seeds)",
                       description="Query model(s) -> validation recall -> scores -> class quotas -> subset -> "
                                   "final model -> per-class test accuracy. Unset options come from the preset; "
                                   "every option you set wins and is logged.")
    add_flags(p)
    p.add_argument("--seeds", type=int, nargs="+", metavar="SEED", help="run once per seed and summarise")
    p.add_argument("--store", help=f"results store (default: $DROP_STORE or {default_store_path()})")
    p.add_argument("--no-store", action="store_true", help="do not record the run in a store")
    p.add_argument("--force", action="store_true", help="rerun even if an identical run already finished")
    p.add_argument("--cache-dir", help="query cache folder (default: $DROP_CACHE or runs/cache)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default: 1, measured 10x+ faster than 2 for the embedded datasets on "
                        "a busy 2-core machine; raise it for big models on an idle machine)")
    p.add_argument("--json", action="store_true", help="print each result as one JSON line on stdout")
    p.add_argument("--quiet", action="store_true",
                   help="no progress bars (they are off anyway when stderr is not a terminal) and no log lines "
                        "but warnings")
    p.add_argument("--verbose", action="store_true", help="also log every value the preset sets")
    p.set_defaults(func=cmd_run)


class _Bars:
    """tqdm bars on stderr: one per training (query init or final model)."""

    def __init__(self, quiet: bool) -> None:
        from tqdm import tqdm

        self.tqdm, self.disable = tqdm, quiet or not sys.stderr.isatty()
        self.bar, self.name = None, None

    def __call__(self, ev: dict) -> None:
        kind = ev.get("event")
        if kind is None:
            if ev.get("stage") not in ("warning", "done") and ev.get("message") and not self.disable:
                self.tqdm.write(f"[{ev['stage']}] {ev['message']}", file=sys.stderr)
            return
        name = ev["stage"] + (f" {ev['init'] + 1}/{ev['inits']}" if "init" in ev else "")
        if name != self.name:
            self.close()
            self.bar = self.tqdm(total=ev["epochs"] * ev["steps"], desc=name, unit="step", file=sys.stderr,
                                 disable=self.disable, leave=False, dynamic_ncols=True)
            self.name = name
        done = ev["epoch"] * ev["steps"] + ev["step"]
        self.bar.update(done - self.bar.n)
        if kind == "epoch":
            self.bar.set_postfix(epoch=f"{ev['epoch'] + 1}/{ev['epochs']}", loss=f"{ev['loss']:.3f}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = self.name = None


def _configs(args: argparse.Namespace) -> list:
    """One config per seed, every one checked before the first run starts."""
    from drop_core.config import RunConfig, flag_values, validate

    values = flag_values(args)
    if args.seeds is not None and args.seed is not None:
        raise DropError("Give either --seed or --seeds, not both.")
    seeds = args.seeds if args.seeds is not None else [values.pop("seed", 0)]
    configs = [RunConfig.from_dict({**values, "seed": s}) for s in seeds]
    for cfg in configs:
        validate(cfg)
    return configs


def cmd_run(args: argparse.Namespace) -> int:
    import torch

    from drop_core import pipeline

    check_number("threads", "run", args.threads, kind=int, low=1)
    torch.set_num_threads(args.threads)
    configs = _configs(args)
    store = None if args.no_store else Store(args.store)
    bars = _Bars(args.quiet)
    results = []
    try:
        for cfg in configs:
            result = pipeline.run(cfg, store=store, progress=bars, force=args.force, cache_dir=args.cache_dir)
            bars.close()
            results.append(result)
            if args.json:
                print(json.dumps(_jsonable(result.to_dict(indices=False))), flush=True)
            else:
                _print_result(result)
    finally:
        bars.close()
    if len(results) > 1 and not args.json:
        _print_seed_summary(results)
    return 0


def _jsonable(d: Any) -> Any:
    """NaN/inf become null so the output is strict JSON."""
    if isinstance(d, dict):
        return {k: _jsonable(v) for k, v in d.items()}
    if isinstance(d, (list, tuple)):
        return [_jsonable(v) for v in d]
    if isinstance(d, float) and not math.isfinite(d):
        return None
    return d


def _print_result(r) -> None:
    c = r.config
    head = (f"{c['scorer']} + {c['quoter']} at density {c['density']} on {c['dataset']} "
            f"({c['model']}, preset {c['preset']}, seed {c['seed']})")
    if r.run_id is not None:
        head = f"run {r.run_id}: " + head + (" [identical finished run, not rerun; --force reruns]"
                                             if r.reused else "")
    print(head)
    print(f"  average accuracy     {r.average_accuracy:.4f}")
    print(f"  worst-class accuracy {r.worst_class_accuracy:.4f} (class {r.worst_class!r})")
    print(f"  kept {r.train_size} of {sum(r.class_sizes.values())} training samples, final model "
          f"{r.final_epochs} epochs, {_query_text(r)}, "
          f"{sum(r.timings.values()):.1f} s")
    width = max(len(n) for n in r.class_accuracy)
    print(f"  {'class':<{width}}  {'size':>6} {'kept':>6} {'val rec':>8} {'test acc':>8} {'95% interval':>14} "
          f"{'n test':>6}")
    for name, acc in r.class_accuracy.items():
        val = r.val_recall.get(name)
        val_s = "-" if val is None else f"{val:.3f}"
        ci = r.class_accuracy_ci.get(name)
        ci_s = "-" if ci is None else f"[{ci[0]:.3f}, {ci[1]:.3f}]"
        print(f"  {name:<{width}}  {r.class_sizes[name]:>6} {r.kept_per_class[name]:>6} {val_s:>8} {acc:>8.3f} "
              f"{ci_s:>14} {r.test_counts.get(name, '-'):>6}")
    for msg in r.warnings:
        print(f"  warning: {msg}")


def _query_text(r) -> str:
    if not r.val_recall:
        return "no query model"
    return "query models from the cache" if r.query_cache_hit else "query models trained"


def _print_seed_summary(results: list) -> None:
    from drop_core.analysis import seed_summary_lines

    print("\n".join(seed_summary_lines([r.to_dict(indices=False) for r in results])))


# --- list / show / export ----------------------------------------------------------------

def _registries() -> dict[str, Any]:
    from drop_core.data import DATASETS
    from drop_core.models import MODELS
    from drop_core.presets import PRESETS
    from drop_core.quotas import QUOTERS
    from drop_core.scoring import SCORERS

    return {"datasets": DATASETS, "models": MODELS, "scorers": SCORERS, "quoters": QUOTERS, "presets": PRESETS}


def cmd_list(args: argparse.Namespace) -> int:
    if args.what == "runs":
        runs = Store(args.store).list_runs(status=args.status)
        if runs.empty:
            print("no runs")
            return 0
        cols = [c for c in ("id", "status", "dataset", "model", "preset", "scorer", "quoter", "density", "seed",
                            "average_accuracy", "worst_class_accuracy", "seconds") if c in runs.columns]
        print(runs[cols].to_string(index=False, float_format=lambda x: f"{x:.4f}"))
        return 0
    regs = _registries()
    for kind in [args.what] if args.what else list(regs):
        print(f"{kind}:")
        for entry in regs[kind]:
            print(f"  {entry.name:<20} {entry.description}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from drop_core.analysis import known_intervals

    store = Store(args.store)
    run = store.get_run(args.run)
    classes = store.class_metrics([args.run])
    classes["accuracy_lo"], classes["accuracy_hi"] = known_intervals(classes["accuracy"], classes["test_count"])
    if args.json:
        run["classes"] = classes.drop(columns="run_id").to_dict("records")
        print(json.dumps(_jsonable(run), default=str))
        return 0
    print(f"run {run['id']}: {run['status']}" + (f" ({run['error']})" if run["error"] else ""))
    print(f"  created {run['created']}, started {run['started']}, finished {run['finished']}")
    print("  config: " + ", ".join(f"{k}={v}" for k, v in run["config"].items() if v is not None))
    if run["environment"]:
        print("  environment: " + ", ".join(f"{k}={v}" for k, v in run["environment"].items()))
    if run["timings"]:
        print("  timings: " + ", ".join(f"{k} {v:.2f} s" for k, v in run["timings"].items()))
    for key, value in (run["summary"] or {}).items():
        print(f"  {key}: {value}")
    if not classes.empty:
        print(classes.drop(columns="run_id").to_string(index=False, float_format=lambda x: f"{x:.4f}"))
    latest = store.latest_event(args.run)
    if latest and run["status"] != "finished":
        print(f"  last event: [{latest.get('stage')}] {latest.get('message', '')} at {latest['time']}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    fmt = args.format or Path(args.path).suffix.lstrip(".").lower()
    if fmt not in ("csv", "json"):
        raise DropError(f"Cannot tell the export format from {args.path!r}; name the file *.csv or *.json, "
                        f"or pass --format csv|json.")
    Store(args.store).export(args.path, fmt)
    print(f"exported to {args.path}")
    return 0


# --- the parser ------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m drop_core", description="DRoP Explorer: data pruning, class by class.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_run_parser(sub)

    p = sub.add_parser("list", help="list datasets, models, scorers, quoters, presets (or stored runs)",
                       description="List what the registries offer, with one-line descriptions, or the stored runs.")
    p.add_argument("what", nargs="?", choices=LIST_KINDS, help="one kind only (default: every registry)")
    p.add_argument("--status", help="with 'runs': only runs with this status")
    p.add_argument("--store", help=f"results store (default: $DROP_STORE or {default_store_path()})")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("show", help="show one stored run: config, environment, timings, per-class metrics",
                       description="Show one stored run.")
    p.add_argument("run", type=int, metavar="RUN", help="run id (see `list runs`)")
    p.add_argument("--store", help=f"results store (default: $DROP_STORE or {default_store_path()})")
    p.add_argument("--json", action="store_true", help="print the run as one JSON object")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("export", help="export every stored run to CSV (one row per run and class) or JSON",
                       description="Export every stored run to CSV or JSON.")
    p.add_argument("path", help="output file, *.csv or *.json")
    p.add_argument("--format", choices=("csv", "json"), help="default: from the file suffix")
    p.add_argument("--store", help=f"results store (default: $DROP_STORE or {default_store_path()})")
    p.set_defaults(func=cmd_export)

    from drop_core.cli_sweep import add_parser as add_sweep_parser  # flags from the config, like `run`'s

    add_sweep_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LogFormat())
    root = logging.getLogger("drop_core")
    root.handlers[:] = [handler]
    root.propagate = False
    quiet, verbose = getattr(args, "quiet", False), getattr(args, "verbose", False)
    root.setLevel(logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:   # `run --json ... | head` closed stdout: not an error of the run
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except Exception as e:    # what a user can cause becomes one line; our own bugs keep their traceback
        error = user_error(e)
        if error is None:
            raise
        print(f"error: {error}", file=sys.stderr)
        return 1
