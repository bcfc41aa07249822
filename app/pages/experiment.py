"""Experiment page: choose a comparison, run it in a background worker, watch it, read the result.

Widgets build a list of run configs (``app.plan``); "Run" hands them to ``app.jobs.submit``, which
starts a worker process. Only the returned job (run ids) lives in ``session_state``; a fragment polls
the store for progress. No training ever runs in this script's thread.
"""
from __future__ import annotations

import pandas as pd
import streamlit as st

from app import jobs, plan, resources
from app import results_data as rd
from app.comparison import comparison_ui
from app.errors import app_message, guard, plain, show_error
from drop_core import analysis as an
from drop_core.data import DATASETS
from drop_core.errors import DropError
from drop_core.models import MODELS
from drop_core.pipeline import DEFAULT_DATASET, RunConfig, run_key
from drop_core.presets import PRESETS
from drop_core.quotas import QUOTERS
from drop_core.scoring import SCORERS
from drop_core.store import ACTIVE_STATUSES, Store
from drop_core.train.device import DEVICES, resolve_device

POLL_SECONDS = 1.0
IMAGE_FOLDER = "imagefolder"
PRESET_MODEL = "(preset's choice)"
EPOCH_SCALING = {"the preset's": None, "on (the paper's rule)": True, "off": False}   # label -> epoch_scaling
FLIPS = {"the dataset's": None, "on": True, "off": False}                             # label -> flip


def settings_ui() -> list[RunConfig] | None:
    """The comparison the widgets describe, as run configs; None (after an st.error) for a bad choice."""
    left, middle, right = st.columns(3)
    with left:
        st.markdown("**Data and model**")
        names = [n for n in DATASETS.names() if n != IMAGE_FOLDER] + [IMAGE_FOLDER]
        choice = st.selectbox(
            "Dataset",
            names,
            index=names.index(DEFAULT_DATASET),
            format_func=lambda n: "your image folder" if n == IMAGE_FOLDER else n,
            help="The embedded datasets work offline; the others need their files (see the Guide).",
            key="exp_dataset",
        )
        folder = st.text_input(
            "Image folder (one sub-folder per class)", key="exp_folder", disabled=choice != IMAGE_FOLDER
        )
        data_root = st.text_input(
            "Data folder", key="exp_root", help="Where downloadable datasets live; empty: the default."
        )
        model = st.selectbox("Model", [PRESET_MODEL, *MODELS.names()], key="exp_model")
        preset = st.selectbox(
            "Preset", PRESETS.names(), index=PRESETS.names().index("cpu"),
            help="; ".join(f"{e.name}: {e.description}" for e in PRESETS), key="exp_preset",
        )
        device = st.selectbox("Device", DEVICES, key="exp_device")
    with middle:
        st.markdown("**Pruning**")
        scorers = st.multiselect(
            "Scorers (which samples are hard)", SCORERS.names(), default=["random"],
            help="; ".join(f"{e.name}: {e.description}" for e in SCORERS), key="exp_scorers",
        )
        quoters = st.multiselect(
            "Quota rules (how many per class)", QUOTERS.names(), default=["none", "drop"],
            help="; ".join(f"{e.name}: {e.description}" for e in QUOTERS), key="exp_quoters",
        )
        densities_text = st.text_input(
            "Densities (fraction of the training set kept)", "0.5", key="exp_densities",
            help="Comma-separated, each in (0, 1], e.g. 0.3, 0.5, 0.8.",
        )
    with right:
        st.markdown("**Repeats and reference**")
        n_seeds = st.number_input(
            "Seeds", min_value=1, max_value=5, value=1, key="exp_seeds",
            help=f"With {an.MIN_SEEDS} or more, the results say whether DRoP helped ({an.TEST_NAME}); with "
            "fewer they give the difference in test images and no verdict.",
        )
        full_data = st.checkbox("Also train on the full data (the reference)", value=True, key="exp_full")
        with st.expander("Advanced"):
            epochs = st.number_input("Final epochs", min_value=1, max_value=1000, value=None,
                                     placeholder="the preset's", key="exp_epochs")
            scaling = st.selectbox(
                "Epoch scaling of pruned runs", list(EPOCH_SCALING), key="exp_scaling",
                help="On: a run at density d trains int((0.5+0.5d)/d x epochs) epochs, the paper's rule. Off: the "
                "same epochs at every density, so pruned runs take fewer steps than the full-data reference "
                "and look worse against it than pruning alone explains (the README's CIFAR-10 measurements).",
            )
            flips = st.selectbox(
                "Mirror flips when augmenting", list(FLIPS), key="exp_flip",
                help="The dataset's: on for natural images and image folders, off for digits. Turn them off "
                "where a mirror image belongs to another class (letters, digits, arrows).",
            )
            strength = st.slider("DRoP strength", 0.0, 1.0, 1.0, 0.1, key="exp_strength",
                                 help="Quota weights (1 - recall)^strength: 1 is Algorithm 1, 0 uniform quotas.")
            min_per_class = st.number_input(
                "Minimum samples kept per class", min_value=0, value=None, placeholder="the preset's",
                help="DRoP gives a class with validation recall 1 no samples; a floor keeps it in training. "
                "0 is the paper's Algorithm 1.", key="exp_floor",
            )

    try:
        if choice == IMAGE_FOLDER and not folder.strip():
            raise DropError("Give the path of your image folder (one sub-folder of images per class).")
        if not scorers or not quoters:
            raise DropError("Choose at least one scorer and one quota rule.")
        dataset = f"{IMAGE_FOLDER}:{folder.strip()}" if choice == IMAGE_FOLDER else choice
        root = data_root.strip() or None
        resolve_device(device)
        resources.dataset(dataset, root, 0)          # a missing path or dataset fails here, not in the worker
        densities = plan.parse_densities(densities_text)
        base = RunConfig(
            dataset=dataset, data_root=root, model=None if model == PRESET_MODEL else model, preset=preset,
            epochs=None if epochs is None else int(epochs), epoch_scaling=EPOCH_SCALING[scaling],
            flip=FLIPS[flips], device=device, strength=float(strength),
            min_per_class=None if min_per_class is None else int(min_per_class),
        )
        return plan.comparison_configs(
            base, scorers=scorers, quoters=quoters, densities=densities, seeds=list(range(int(n_seeds))),
            full_data=full_data,
        )
    except DropError as e:
        show_error(e, dataset=choice, stop=False)    # in the app's words (its controls, not CLI flags)
        return None


def run_ui(configs: list[RunConfig]) -> None:
    """Plan summary and the Run button; a click submits one job (never twice for the same run)."""
    store = resources.store()
    try:
        keys = [run_key(c) for c in configs]
    except DropError as e:
        show_error(e)
    stored = sum(store.finished_run_for_key(k) is not None for k in keys)
    methods = an.method_order(an.config_method_name(c.to_dict()) for c in configs)
    st.markdown(
        f"**{len(configs)} runs** ({', '.join(methods)}): {len(configs) - stored} to train, "
        f"{stored} already in the store and shown at once."
    )
    if st.button("Run", type="primary", key="exp_run"):
        st.session_state.experiment_job = jobs.submit(store, configs)
        st.session_state.experiment_shared = []
        st.rerun()


@st.fragment(run_every=POLL_SECONDS)
@guard()                                            # a fragment rerun runs outside main's guard
def progress_ui(job: jobs.Job) -> None:
    """Live progress of the job, read from the store every POLL_SECONDS; Cancel stops it cleanly."""
    store = resources.store()
    p = jobs.progress(store, job)
    if not p.active:
        st.rerun()                                  # redraw the whole page with the results
    with st.status(f"Running: {p.done} of {p.total} runs done", state="running", expanded=True):
        epoch = f" · epoch {p.epoch + 1}/{p.epochs}" if p.epoch is not None and p.epochs else ""
        eta = f" · about {_seconds(p.eta)} left" if p.eta is not None else ""
        st.progress(p.fraction, text=f"{p.stage}{epoch} · {_seconds(p.elapsed)} elapsed{eta}")
        if p.current is not None:
            st.caption(f"run #{p.current}: {p.message}")
        st.dataframe(_run_table(store, job), hide_index=True, width="stretch")
    if st.button("Cancel", key="exp_cancel", disabled=not job.queued):
        st.session_state.experiment_shared = jobs.cancel(store, job)    # the next poll shows the new statuses
    shared = st.session_state.get("experiment_shared")
    if shared:
        runs = ", ".join(f"#{r}" for r in shared)
        st.info(f"Run {runs} is followed by another session too, so it keeps running." if len(shared) == 1
                else f"Runs {runs} are followed by another session too, so they keep running.")


def _run_table(store: Store, job: jobs.Job) -> pd.DataFrame:
    runs = store.list_runs()
    runs = rd.label_runs(runs[runs["id"].isin(job.run_ids)])
    return runs[["id", "method", "density", "seed", "status"]]


def outcome_ui(job: jobs.Job) -> None:
    """How the finished job ended: failures and cancellations say so in words."""
    store = resources.store()
    p = jobs.progress(store, job)
    counts = {s: list(p.statuses.values()).count(s) for s in jobs.TERMINAL}
    say = st.success if counts["finished"] == p.total else st.warning
    say(
        f"{counts['finished']} of {p.total} runs finished"
        + (f" in {_seconds(p.elapsed)}" if job.queued else " (all taken from the store)")
        + (f"; {len(job.reused)} reused from earlier runs." if job.reused and job.queued else ".")
    )
    if counts["cancelled"]:
        st.warning(f"{counts['cancelled']} runs were cancelled; the finished ones are kept.")
    for rid, status in p.statuses.items():
        if status in ("failed", "interrupted"):
            st.error(plain(f"Run #{rid} {status}: {app_message(str(store.get_run(rid)['error']))}"))


def store_active_elsewhere(job: jobs.Job | None) -> int:
    """Queued or running runs in the store that are not this session's job (e.g. after a page reload)."""
    store = resources.store()
    jobs.mark_orphans(store)                         # runs of a dead worker read as interrupted, not active
    runs = store.list_runs()
    if runs.empty:
        return 0
    active = runs[runs["status"].isin(ACTIVE_STATUSES)]
    return int((~active["id"].isin(job.run_ids if job else ())).sum())


def _seconds(s: float) -> str:
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min"


def main() -> None:
    st.title("Experiment")
    st.caption(
        "Prune the training set with a scorer and a quota rule, train on what is left, and see which "
        "classes pay for it. Training runs in a background process: you can switch pages meanwhile."
    )
    st.session_state.setdefault("experiment_job", None)
    configs = settings_ui()
    job: jobs.Job | None = st.session_state.experiment_job
    if job is not None and jobs.progress(resources.store(), job).active:
        progress_ui(job)
        return
    if configs is None:
        st.stop()
    elsewhere = store_active_elsewhere(job)
    if elsewhere:
        st.caption(f"{elsewhere} run{' is' if elsewhere == 1 else 's are'} active in the background (other "
                   "tabs, the CLI or sweeps); results appear on the Results page as runs finish.")
    run_ui(configs)
    if job is not None:
        outcome_ui(job)
        comparison_ui(resources.store(), list(job.run_ids), key="experiment")


# Every page: Streamlit runs the file as "__main__" (importing it, as tests do, draws nothing), and
# ``guard`` turns any fault into one st.error (see app/errors.py).
if __name__ == "__main__":
    with guard():
        main()
