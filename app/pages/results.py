"""Results page: browse, filter and compare the runs in the store; download them; delete one."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from app import resources
from app import results_data as rd
from app.comparison import comparison_ui
from app.errors import guard
from drop_core.config import setting_fields
from drop_core.store import ACTIVE_STATUSES, Store

FILTERS = ("dataset", "model", "preset", "scorer", "quoter", "status")
COLUMNS = ["id", "status", "method", "dataset", "model", "preset", "density", "seed",
           "average_accuracy", "worst_class_accuracy", "seconds", "created"]


def filters_ui(runs: pd.DataFrame) -> pd.DataFrame:
    """Multiselect filters over the config columns; an empty filter keeps everything."""
    shown = runs
    columns = st.columns(len(FILTERS))
    for column, name in zip(columns, FILTERS):
        if name not in runs:
            continue
        options = sorted(runs[name].dropna().astype(str).unique())
        chosen = column.multiselect(name, options, key=f"res_filter_{name}", placeholder="all")
        if chosen:
            shown = shown[shown[name].astype(str).isin(chosen)]
    return shown


def table_ui(runs: pd.DataFrame) -> None:
    st.dataframe(
        runs[[c for c in COLUMNS if c in runs]],
        hide_index=True,
        width="stretch",
        column_config={
            "average_accuracy": st.column_config.NumberColumn("average acc.", format="%.3f"),
            "worst_class_accuracy": st.column_config.NumberColumn("worst-class acc.", format="%.3f"),
            "seconds": st.column_config.NumberColumn(format="%.1f"),
        },
    )


def download_ui(store: Store, runs: pd.DataFrame) -> None:
    metrics = store.class_metrics([int(i) for i in runs["id"]])
    st.download_button(
        "Download CSV (one row per run, split and class)",
        rd.runs_csv(runs.drop(columns="method"), metrics),
        file_name="drop_runs.csv",
        mime="text/csv",
        key="res_download",
    )


def compare_ui(store: Store, runs: pd.DataFrame) -> None:
    """Charts over the chosen finished runs; runs of different settings (dataset, model, epochs, ...)
    are never mixed: the user picks one setting."""
    finished = runs[runs["status"] == "finished"]
    if finished.empty:
        st.info("No finished run matches the filters.")
        return
    groups = rd.setting_groups(finished, setting_fields())
    if len(groups) > 1:
        labels = {label: f"{label} ({len(ids)} runs)" for label, ids in groups}
        label = st.selectbox(
            "The filtered runs differ in more than scorer, quota rule, density and seed; compare one setting",
            list(labels), format_func=labels.get, key="res_setting",
        )
        finished = finished[finished["id"].isin(dict(groups)[label])]
    labels = {int(r.id): f"#{r.id} {r.method} · d={r.density:g} · seed {r.seed}" for r in finished.itertuples()}
    chosen = st.multiselect(
        "Runs to compare", list(labels), default=list(labels), format_func=labels.get,
        key=f"res_compare_{hash(tuple(labels))}",   # a new set of runs (filters, setting) starts with all chosen
    )
    comparison_ui(store, chosen, key="results")


def delete_ui(store: Store, runs: pd.DataFrame) -> None:
    """Delete one run after an explicit confirmation; a queued or running run must be cancelled first."""
    labels = {int(r.id): f"#{r.id} {r.method} · {r.status}" for r in runs.itertuples()}
    run_id = st.selectbox("Run", list(labels), format_func=labels.get, key="res_delete_id")
    if st.session_state.get("res_pending_delete") != run_id:
        if st.button("Delete this run…", key="res_delete"):
            st.session_state.res_pending_delete = run_id
            st.rerun()
        return
    if runs.set_index("id").loc[run_id, "status"] in ACTIVE_STATUSES:
        st.error(f"Run #{run_id} is still active; cancel it on the Experiment page first.")
        st.session_state.res_pending_delete = None
        return
    st.warning(f"Delete run #{run_id} with its metrics and kept indices? This cannot be undone.")
    yes, no = st.columns(2)
    if yes.button(f"Yes, delete run #{run_id}", type="primary", key="res_confirm"):
        store.delete_run(run_id)
        st.session_state.res_pending_delete = None
        st.toast(f"Run #{run_id} deleted.")
        st.rerun()
    if no.button("Keep it", key="res_keep"):
        st.session_state.res_pending_delete = None
        st.rerun()


def main() -> None:
    st.title("Results")
    st.caption("Every run in the store, from this app, the CLI and sweeps.")
    store = resources.store()
    runs = store.list_runs()
    if runs.empty:
        st.info("The store is empty: run an experiment on the Experiment page or with `python -m drop_core run`.")
        return
    runs = rd.label_runs(runs)
    shown = filters_ui(runs)
    st.markdown(f"**{len(shown)} of {len(runs)} runs**")
    table_ui(shown)
    if shown.empty:
        return
    download_ui(store, shown)
    st.subheader("Compare")
    compare_ui(store, shown)
    with st.expander("Delete a run"):
        delete_ui(store, shown)


# Every page: Streamlit runs the file as "__main__" (importing it, as tests do, draws nothing), and
# ``guard`` turns any fault into one st.error (see app/errors.py).
if __name__ == "__main__":
    with guard():
        main()
