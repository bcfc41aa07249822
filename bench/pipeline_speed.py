"""End-to-end speed of the default DRoP run, and of a second run that hits the query cache.

    .venv/bin/python bench/pipeline_speed.py [--reps 3] [--hit-density 0.3] [run flags, e.g. --scorer el2n]

1. ``python -m drop_core run --no-store`` as a user types it (process start and imports
   included), into an empty cache: the "< 30 s on a laptop" promise.
2. In-process, after one burn-in run: the config into an empty cache (query models
   trained), then the same config at ``--hit-density`` (query models and scores loaded from
   the cache, only the final model trains). Median of ``--reps`` repetitions, each with a
   fresh cache folder. The ratio cold / cache-hit is printed last.

The run flags are ``run``'s, generated from the config declaration
(:func:`drop_core.config.add_flags`); without any, the run is the default one.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from drop_core.config import RunConfig, add_flags, flag_values, validate  # noqa: E402
from drop_core.errors import DropError  # noqa: E402
from drop_core.pipeline import RunResult, run  # noqa: E402


def timed_run(cfg: RunConfig, cache: str) -> tuple[float, RunResult]:
    t0 = time.perf_counter()
    result = run(cfg, cache_dir=cache)
    return time.perf_counter() - t0, result


def cli_flags(values: dict) -> list[str]:
    """``python -m drop_core run`` flags that give the same config as ``values`` (what ``flag_values`` read)."""
    out: list[str] = []
    for name, value in values.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            out.append(flag if value else "--no-" + flag[2:])
        elif isinstance(value, tuple):
            out += [flag, *map(str, value)]
        else:
            out += [flag, str(value)]
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--hit-density", type=float, default=0.3, help="density of the second (cache-hit) run")
    p.add_argument("--threads", type=int, default=1, help="torch threads in-process (the CLI's default is 1)")
    add_flags(p)
    args = p.parse_args(argv)
    values = flag_values(args)
    try:
        base = RunConfig.from_dict(values)
        hit_config = RunConfig.from_dict({**values, "density": args.hit_density})
        validate(base)
        validate(hit_config)
    except DropError as e:
        sys.exit(f"error: {e}")
    if hit_config == base:
        sys.exit(f"error: --hit-density {args.hit_density:g} is the run's density; give another one.")
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "drop_core", "run", "--no-store", "--cache-dir",
                               f"{tmp}/cli", "--quiet", *cli_flags(values)], cwd=ROOT, capture_output=True, text=True)
        cli_seconds = time.perf_counter() - t0
        if done.returncode != 0:
            sys.exit(f"the CLI run failed: {done.stderr.strip()}")

        timed_run(base, f"{tmp}/burn-in")
        cold, hit = [], []
        for rep in range(args.reps):
            t_cold, a = timed_run(base, f"{tmp}/rep{rep}")
            t_hit, b = timed_run(hit_config, f"{tmp}/rep{rep}")
            if a.query_cache_hit or not b.query_cache_hit:
                sys.exit("cache behaviour is wrong: the first run must train query models, the second must load them "
                         "(a config that trains none, such as random + uniform, has nothing to cache)")
            cold.append(t_cold)
            hit.append(t_hit)

    cfg = a.config
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, device {cfg['device']}; {args.reps} reps after 1 burn-in")
    print(f"# run: {cfg['scorer']} + {cfg['quoter']} at d={cfg['density']} on {cfg['dataset']} "
          f"({cfg['model']}, preset {cfg['preset']}, {cfg['epochs']} epochs, {cfg['query_inits']} query inits)")
    print(f"CLI `python -m drop_core run` end to end (process start, imports, training): {cli_seconds:.1f} s")
    print(f"the run, empty cache (query models trained): median {statistics.median(cold):.2f} s "
          f"(min {min(cold):.2f}, max {max(cold):.2f}); query stage {a.timings['query']:.2f} s, "
          f"final model {a.timings['final']:.2f} s")
    print(f"same config at d={args.hit_density:g}, cache hit (final model only): median {statistics.median(hit):.2f} s "
          f"(min {min(hit):.2f}, max {max(hit):.2f})")
    print(f"cache-hit speed-up: {statistics.median(cold) / statistics.median(hit):.2f}x")


if __name__ == "__main__":
    main()
