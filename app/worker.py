"""The job worker: ``python -m app.worker --store PATH RUN_ID [RUN_ID ...]``.

Runs the queued runs one after the other through ``drop_core.pipeline.run``, which adopts each
run row, writes progress events and the result to the store and stops at the store's cancel flag.
Never imports Streamlit. A run another process already took, or one cancelled while queued, is
skipped; a run that fails is marked ``failed`` with its one-line reason and the next run goes on.
"""
from __future__ import annotations

import argparse
import traceback

from drop_core.errors import DropError
from drop_core.pipeline import RunConfig
from drop_core.pipeline import run as run_pipeline
from drop_core.store import ACTIVE_STATUSES, Store
from drop_core.train.trainer import Stopped


def run_one(store: Store, run_id: int) -> str:
    """Run one queued run to its end; returns its final status."""
    run = store.get_run(run_id)
    if run["status"] != "queued":
        return run["status"]
    try:
        run_pipeline(RunConfig(**run["config"]), store=store, run_id=run_id)
    except Stopped:
        _settle(store, run_id, "cancelled", None)
    except DropError as e:
        _settle(store, run_id, "failed", str(e))
    except Exception as e:  # noqa: BLE001  (a bug: keep the traceback in the log, the reason in the store)
        traceback.print_exc()
        _settle(store, run_id, "failed", f"{type(e).__name__}: {e}")
    return store.get_run(run_id)["status"]


def _settle(store: Store, run_id: int, status: str, error: str | None) -> None:
    if store.get_run(run_id)["status"] in ACTIVE_STATUSES:
        store.set_status(run_id, status, error=error)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m app.worker", description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True, help="path of the results store (SQLite file)")
    parser.add_argument("run_ids", nargs="+", type=int, help="queued runs to execute, in order")
    args = parser.parse_args(argv)
    store = Store(args.store)
    for run_id in args.run_ids:
        status = run_one(store, run_id)
        print(f"run {run_id}: {status}", flush=True)


if __name__ == "__main__":
    main()
