"""The paper's comparison (Table 2 / Fig. 5 style) at CPU scale: average and worst-class accuracy.

Methods: full data, random, el2n, forgetting, random+DRoP, el2n+DRoP, and the two corrections that
train on all data (logit adj.: log d_k of DRoP's class densities added to the logits; CDB-W) at each density, over
several seeds; each cell is mean [min, max] over seeds (the paper's error bands). Method names
and verdicts come from ``drop_core.analysis``, as in the app and the CLI.

    .venv/bin/python bench/cifar10_drop.py --data /tmp/cifar10          # CIFAR-10 image folder
    .venv/bin/python bench/cifar10_drop.py --dataset gaussians           # any registered dataset
    .venv/bin/python bench/cifar10_drop.py --dataset cifar10 --data-root ~/data --download \
        --preset paper --device cuda                                     # the paper's protocol on a GPU

``--data PATH`` is an image-folder tree with PATH/train/<class>/ and PATH/test/<class>/, e.g.
``unzip -q ../shared/data/cifar10-jpeg.zip -d /tmp/cifar10``. Runs go through the results
store (``--store``), so an interrupted benchmark resumes where it stopped and a finished cell
is never trained twice; query models are shared through the cache. The table and the
verdicts come last: each X+DRoP against X and against each correction, and each method against full data in worst-class
accuracy at every density, paired by seed (a paired t-test over 3 or more seeds, else the
difference in test images).
Epoch scaling is on by default, whatever the preset: the README's measurements show why.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from drop_core import analysis as an  # noqa: E402
from drop_core.config import STAGES, add_flags, fields_of, flag_values  # noqa: E402
from drop_core.data import load_dataset  # noqa: E402
from drop_core.errors import DropError  # noqa: E402
from drop_core.pipeline import RunConfig, run  # noqa: E402
from drop_core.store import Store  # noqa: E402

_METHOD_CONFIGS = ({"scorer": "random", "quoter": "none"}, {"scorer": "el2n", "quoter": "none"},
                  {"scorer": "forgetting", "quoter": "none"}, {"scorer": "random", "quoter": "drop"},
                  {"scorer": "el2n", "quoter": "drop"},
                  {"scorer": "random", "quoter": "drop", "correction": "logit_adjust"},   # all data, shifted logits
                  {"scorer": "random", "quoter": "none", "correction": "cdbw"})           # all data, CDB-W weights
METHODS = {an.config_method_name({**c, "density": 0.5}): c for c in _METHOD_CONFIGS}   # name -> config fields


VARIED = ("dataset", "scorer", "quoter", "correction", "density", "seed")   # set per cell, or by --data / --dataset
SHARED = [name for name in fields_of(*STAGES) if name not in VARIED]        # one flag each, the same in every cell


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The bench's own options, and one flag per other RunConfig field (``drop_core.config.add_flags``, as the CLI)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", help="image-folder root of CIFAR-10 (PATH/train, PATH/test)")
    src.add_argument("--dataset", help="a registered dataset name instead (digits, gaussians, cifar10, ...)")
    p.add_argument("--densities", type=float, nargs="+", default=[0.3, 0.5])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--no-full", action="store_true", help="skip the full-data baseline")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    p.add_argument("--store", default="runs/bench.sqlite")
    p.add_argument("--cache-dir")
    add_flags(p, SHARED)
    return p.parse_args(argv)


def base_config(args: argparse.Namespace) -> dict:
    """The fields every cell shares: the data, the flags given, and epoch scaling on unless turned off."""
    base = {"dataset": args.dataset or f"imagefolder:{args.data}",
            **flag_values(args, SHARED)}
    base.setdefault("epoch_scaling", True)
    return base


def cells(args: argparse.Namespace) -> list[tuple[str, float, dict]]:
    """(method, density, config) for every cell of the table, one config per seed listed later."""
    out = [] if args.no_full else [(an.FULL_DATA, 1.0, {"scorer": "random", "quoter": "none", "density": 1.0})]
    for d in args.densities:
        for m in args.methods:
            out.append((m, d, {**METHODS[m], "density": d}))
    return out


def fmt(stats: dict) -> str:
    return f"{100 * stats['mean']:5.1f} [{100 * stats['min']:5.1f}, {100 * stats['max']:5.1f}]"


def wilson_cell(accuracy: float, n_test: int | None) -> str:
    """The test set's 95% interval around a (seed-mean) accuracy, or n/a without the test count."""
    if not n_test:
        return "n/a"
    lo, hi = an.wilson_interval(accuracy * n_test, n_test)
    return f"[{100 * lo:.1f}, {100 * hi:.1f}] ({n_test})"


def verdict_lines(rows: list[dict], densities: list[float]) -> list[str]:
    """At each density, in worst-class accuracy: every X+DRoP against X and against each correction (is pruning
    needed for the gain?), then every method against full data."""
    by = {(r["method"], r["density"]): r for r in rows}
    full = next((r for r in rows if r["method"] == an.FULL_DATA), None)
    lines = []
    for d in densities:
        at = [r["method"] for r in rows if r["density"] == d]
        pairs = [(by[(drop, d)], by[(base, d)]) for base, drop in an.drop_pairs(at)]
        corrected = [m for m in at if m in an.CORRECTION_NAMES.values()]
        pairs += [(by[(drop, d)], by[(c, d)]) for _, drop in an.drop_pairs(at) for c in corrected]
        pairs += [] if full is None else [(by[(m, d)], full) for m in at]
        for new, old in pairs:
            v = an.compare(new["worst"], old["worst"], new_name=f"{new['method']} (d={d:g})", old_name=old["method"],
                           metric="worst-class accuracy", n_test=new["n_test"])
            lines.append(an.verdict_text(v))
    return lines


def _test_counts(result) -> dict[str, int]:
    """Test images per class: the result's own ``test_counts``, else counted from the dataset's test split
    (loaded once; every cell of one benchmark uses the same data)."""
    counts = result.to_dict(indices=False).get("test_counts")
    if counts:
        return counts
    c = result.config
    if c["dataset"] not in _COUNTS:
        data = load_dataset(c["dataset"], root=c.get("data_root"), seed=int(c.get("data_seed") or 0))
        _COUNTS[c["dataset"]] = dict(zip(data.classes, np.bincount(data.y_test.numpy(),
                                                                    minlength=data.num_classes).tolist()))
    return _COUNTS[c["dataset"]]


_COUNTS: dict[str, dict[str, int]] = {}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    base = base_config(args)
    store = Store(args.store)
    rows = []
    t0 = time.perf_counter()
    for method, density, cfg in cells(args):
        per_seed, worst, counts, secs = [], {}, [], 0.0
        for seed in args.seeds:
            r = run(RunConfig.from_dict({**base, **cfg, "seed": seed}), store=store, cache_dir=args.cache_dir)
            per_seed.append({"average_accuracy": r.average_accuracy, "worst_class_accuracy": r.worst_class_accuracy})
            worst[seed] = r.worst_class_accuracy
            counts.append(_test_counts(r)[r.worst_class])
            secs += sum(r.timings.values())
            print(f"  {method:<12} d={density:<4} seed {seed}: avg {r.average_accuracy:.4f} worst "
                  f"{r.worst_class_accuracy:.4f} ({r.worst_class}) {sum(r.timings.values()):.1f} s"
                  + (" [stored]" if r.reused else ""), file=sys.stderr, flush=True)
        rows.append({"method": method, "density": density, "stats": an.summarize_seeds(per_seed), "secs": secs,
                     "worst": worst, "n_test": min(counts)})
    resolved = r.config
    print(f"# {resolved['dataset']} / {resolved['model']} / preset {resolved['preset']}: {resolved['epochs']} epochs "
          f"(epoch scaling {'on' if resolved['epoch_scaling'] else 'off'}), query: early {resolved['query_fraction']} "
          f"x epochs x {resolved['query_inits']} inits, full-length for Forgetting; DRoP floor "
          f"{resolved['min_per_class']} per class; seeds {args.seeds}")
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"device {resolved['device']}, {torch.get_num_threads()} threads; wall {time.perf_counter() - t0:.0f} s")
    print()
    print("| method | density | average acc % mean [min, max] | worst-class acc % mean [min, max] "
          "| worst-class 95% Wilson % (test images) | run s |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        s = row["stats"]
        print(f"| {row['method']} | {row['density']:g} | {fmt(s['average_accuracy'])} | "
              f"{fmt(s['worst_class_accuracy'])} | {wilson_cell(s['worst_class_accuracy']['mean'], row['n_test'])} "
              f"| {row['secs'] / len(args.seeds):.0f} |")
    print()
    for line in verdict_lines(rows, sorted(args.densities)):
        print(f"- {line}")


if __name__ == "__main__":
    try:
        main()
    except DropError as exc:   # bad input: one line, like the CLI
        sys.exit(f"error: {exc}")
