"""The job worker: ``python -m app.worker --store PATH RUN_ID [RUN_ID ...]``.

Runs queued runs one after the other through ``drop_core.pipeline.run``, which adopts each run
row, writes progress events and the result to the store, stops at the store's cancel flag and
marks a failed or cancelled run as such. Never imports Streamlit. A run that is no longer queued
(cancelled while waiting, or taken by another process) is skipped; a failure does not stop the
runs after it.
"""
from __future__ import annotations

import argparse
import traceback

import torch

from drop_core.errors import DropError
from drop_core.pipeline import RunConfig
from drop_core.pipeline import run as run_pipeline
from drop_core.store import ACTIVE_STATUSES, Store


def run_one(store: Store, run_id: int) -> str:
    """Run one queued run to its end; returns its final status."""
    run = store.get_run(run_id)
    if run["status"] != "queued":
        return run["status"]
    try:
        run_pipeline(RunConfig.from_dict(run["config"]), store=store, run_id=run_id)
    except DropError as e:            # bad data or config, or Cancelled: the pipeline has set the status
        print(f"run {run_id}: {e}", flush=True)
    except Exception:                 # a bug: the pipeline marked the run failed; keep the traceback here
        traceback.print_exc()
    status = store.get_run(run_id)["status"]
    if status in ACTIVE_STATUSES:     # the pipeline failed before it could settle the row
        store.set_status(run_id, "failed", error="the worker stopped before the run ended; see the worker log")
        status = "failed"
    return status


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m app.worker", description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True, help="path of the results store (SQLite file)")
    parser.add_argument("run_ids", nargs="+", type=int, help="queued runs to execute, in order")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1, as the CLI: one thread per run keeps parallel jobs fast)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    store = Store(args.store)
    for run_id in args.run_ids:
        print(f"run {run_id}: {run_one(store, run_id)}", flush=True)


if __name__ == "__main__":
    main()
