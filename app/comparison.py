"""Render a comparison of finished runs: headline table, the five result views, cache and quota notes.

Shared by the Experiment page (the runs of the last job) and the Results page (runs picked there).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from app import charts
from app import results_data as rd
from app.resources import dataset
from drop_core import analysis as an
from drop_core.cache import config_hash
from drop_core.data.identity import EMBEDDED_DATASETS, data_identity
from drop_core.errors import DropError
from drop_core.pipeline import RunConfig, query_plan
from drop_core.store import Store
from theory.mixture import bayes_class_accuracy

EXAMPLES_PER_ROW = 8


def comparison_ui(store: Store, run_ids: list[int], *, key: str) -> None:
    """Everything about the finished runs among ``run_ids``; ``key`` keeps widget keys unique per page."""
    runs = store.list_runs()
    runs = runs[runs["id"].isin(run_ids) & (runs["status"] == "finished")]
    if runs.empty:
        st.info("No finished run to show yet.")
        return
    runs = rd.label_runs(runs)
    methods = an.method_order(runs["method"])          # one colour per method across all views
    metrics = _with_test_counts(runs, store.class_metrics([int(i) for i in runs["id"]]))
    pruned = runs[runs["method"] != an.FULL_DATA]
    densities = sorted(pruned["density"].unique()) or [1.0]
    density = densities[0]
    if len(densities) > 1:
        density = st.select_slider("Density to inspect", densities, value=densities[0], key=f"{key}_density")

    _headline_ui(runs, metrics, density)
    _notes_ui(store, runs)
    chosen = _pruned_run_picker(pruned[np.isclose(pruned["density"], density)], key)
    tabs = st.tabs(["Per class", "Across densities", "Bias", "Quotas", "Examples"])
    with tabs[0]:
        acc = rd.class_accuracy(runs, metrics, density)
        bayes = _bayes_accuracy(runs)
        if bayes is not None:
            acc[charts.REFERENCE] = acc["class_index"].map(dict(enumerate(bayes)))
        st.altair_chart(charts.class_accuracy_chart(acc, methods), width="stretch")
        st.caption(charts.READING_GUIDE["class_accuracy"] + ("" if bayes is None else " " + charts.REFERENCE_GUIDE))
    with tabs[1]:
        curves = rd.density_curves(runs)
        st.altair_chart(charts.density_curves_chart(curves, methods))
        st.caption(charts.READING_GUIDE["density_curves"])
        if len(densities) < 2:
            st.info("Only one density so far: add densities (e.g. 0.3, 0.5, 0.8) to draw the curves.")
    with tabs[2]:
        _bias_ui(runs, metrics, density, methods)
    with tabs[3]:
        if chosen is not None:
            st.dataframe(
                rd.quota_table(metrics, chosen),
                hide_index=True,
                width="stretch",
                column_config={
                    "val recall": st.column_config.NumberColumn(format="%.3f"),
                    "kept density": st.column_config.NumberColumn(format="%.3f"),
                    "warning": st.column_config.TextColumn(width="large"),
                },
            )
        st.caption(charts.READING_GUIDE["quota"])
    with tabs[4]:
        if chosen is not None:
            _examples_ui(store, store.get_run(chosen), key)


def _headline_ui(runs: pd.DataFrame, metrics: pd.DataFrame, density: float) -> None:
    table = rd.method_summary(runs, metrics, density)
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        column_config={
            "average accuracy": st.column_config.NumberColumn(format="%.3f"),
            "worst-class accuracy": st.column_config.NumberColumn(format="%.3f"),
            "change": st.column_config.NumberColumn("change of most hurt class", format="%+.3f"),
        },
    )
    lines = [
        f"- **{row['method']}** at density {density:g}: worst class *{row['worst class']}* "
        f"({row['worst-class accuracy']:.1%}); *{row['most hurt class']}* changed most against full data "
        f"({100 * row['change']:+.1f} points)."
        for row in table.to_dict("records")
        if row["method"] != an.FULL_DATA and not np.isnan(row["change"])
    ]
    verdicts = rd.drop_verdicts(runs, metrics, density) + rd.hurt_verdicts(runs, metrics, density)
    lines += [f"- {an.verdict_text(v)}" for v in verdicts]
    st.markdown("\n".join(lines))


def _with_test_counts(runs: pd.DataFrame, metrics: pd.DataFrame) -> pd.DataFrame:
    """Fill the test counts of runs stored without them by counting the dataset's test split, but only where
    that is exact: the data is still what the run saw (same identity hash; embedded datasets always are).
    The rest keep NaN, and the per-class chart says that their intervals are missing."""
    test = metrics[metrics["split"] == "test"]
    missing = set(test["run_id"]) if "test_count" not in test else set(test.loc[test["test_count"].isna(), "run_id"])
    fields = [f for f in ("dataset", "data_root", "data_seed", "data_id") if f in runs]
    counts, by_data = {}, {}
    for row in runs[runs["id"].isin(missing)][["id", *fields]].to_dict("records"):
        data = tuple((k, None if pd.isna(v) else v) for k, v in row.items() if k != "id")
        if data not in by_data:                      # one identity check and load per distinct dataset
            by_data[data] = _dataset_test_counts(dict(data))
        if by_data[data] is not None:
            counts[int(row["id"])] = by_data[data]
    return rd.with_test_counts(metrics, counts)


def _bayes_accuracy(runs: pd.DataFrame) -> list[float] | None:
    """Per-class accuracy of the Bayes-optimal rule for balanced classes (the test split is balanced) when
    every run is on the `gaussians` data, whose exact mixture :mod:`theory.mixture` holds; else None."""
    if "dataset" not in runs or not (runs["dataset"] == "gaussians").all():
        return None
    return bayes_class_accuracy().tolist()          # the shared mixture computes its risks once per process


def _dataset_test_counts(config: dict) -> list[int] | None:
    name, root, stored_id = config["dataset"], config.get("data_root"), config.get("data_id")
    try:
        if stored_id is None and name not in EMBEDDED_DATASETS:
            return None
        if stored_id is not None and stored_id != config_hash(data_identity(name, root)):
            return None
        data = dataset(name, root, int(config.get("data_seed") or 0))
    except DropError:
        return None
    return np.bincount(data.y_test.numpy(), minlength=data.num_classes).tolist()


def _notes_ui(store: Store, runs: pd.DataFrame) -> None:
    """Which runs reused cached query scores (only runs that have a query model), and every run warning."""
    records = [store.get_run(int(rid)) for rid in runs["id"]]
    with_query = [r for r in records if query_plan(RunConfig.from_dict(r["config"])).inits > 0]
    hits = [r["id"] for r in with_query if (r["summary"] or {}).get("query_cache_hit")]
    if hits:
        st.info(
            f"{len(hits)} of the {len(with_query)} runs with a query model reused its cached scores "
            f"({', '.join(f'#{i}' for i in hits)}): only their final models were trained."
        )
    for r in records:
        for warning in (r["summary"] or {}).get("warnings", []):
            st.warning(f"Run #{r['id']}: {warning}")


def _bias_ui(runs: pd.DataFrame, metrics: pd.DataFrame, density: float, methods: list[str]) -> None:
    points = rd.bias_points(runs, metrics, density)
    if points.empty:
        st.info("This view needs a finished full-data run (tick 'Also train on the full data').")
        return
    r = rd.correlations(points)
    st.altair_chart(charts.bias_chart(points, methods, r), width="stretch")
    st.caption(charts.READING_GUIDE["bias"])


def _pruned_run_picker(pruned: pd.DataFrame, key: str) -> int | None:
    if pruned.empty:
        st.info("No pruned run at this density.")
        return None
    first = pruned.sort_values("method", key=lambda m: ~m.str.contains("DRoP"), kind="stable")   # DRoP first
    labels = {int(r.id): f"{r.method} · seed {r.seed} · run #{r.id}" for r in first.itertuples()}
    return st.selectbox("Run for quotas and examples", list(labels), format_func=labels.get, key=f"{key}_run")


def _examples_ui(store: Store, run: dict, key: str) -> None:
    config = run["config"]
    try:
        data = dataset(config["dataset"], config.get("data_root"), int(config.get("data_seed", 0)))
    except DropError as e:
        st.error(str(e))
        return
    if not data.is_image:
        st.info(f"{data.name} is not an image dataset: there are no pictures to show.")
        return
    class_index = st.selectbox(
        "Class", range(data.num_classes), format_func=lambda k: data.classes[k], key=f"{key}_class"
    )
    labels = data.y_train.numpy()
    rng = np.random.default_rng(0)
    kept, pruned = rd.example_indices(labels, store.kept_indices(run["id"]), class_index, EXAMPLES_PER_ROW, rng)
    for title, idx in (("kept", kept), ("pruned", pruned)):
        st.markdown(f"**{title}** ({len(idx)} shown)")
        if len(idx):
            st.image(rd.to_display_images(data.x_train[idx].numpy()), width=64)
    st.caption(charts.READING_GUIDE["examples"])
