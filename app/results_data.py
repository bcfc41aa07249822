"""Pure functions turning the store's DataFrames into chart-ready frames (no Streamlit, no SQL).

Inputs are what ``Store.list_runs()`` (one row per run: ``id``, ``status``, config columns such as
``scorer``/``quoter``/``density``/``seed``, summary columns such as ``average_accuracy``) and
``Store.class_metrics()`` (``run_id, split, class_index, class_name, accuracy, class_size, kept,
val_recall``) return.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

FULL_DATA = "full data"

# How a quota rule shows up in a method's name: "random" + "+DRoP" -> "random+DRoP".
QUOTER_SUFFIX: dict[str, str] = {
    "none": "",
    "uniform": "+uniform",
    "drop": "+DRoP",
    "drop_authors": "+DRoP (authors' code)",
}

METRICS: dict[str, str] = {
    "average_accuracy": "average accuracy",
    "worst_class_accuracy": "worst-class accuracy",
}


# Config fields that tell methods and repeats apart; every other setting field (drop_core.config) is the setting.
METHOD_AXES = ("scorer", "quoter", "selection", "density", "seed")


def method_label(scorer: str, quoter: str, density: float, selection: str = "top") -> str:
    """The name a run's method has in every chart: "full data", "el2n", "random+DRoP", ..."""
    if density >= 1.0:
        return FULL_DATA
    label = f"{scorer}{QUOTER_SUFFIX.get(quoter, f'+{quoter}')}"
    return label if selection == "top" else f"{label} ({selection} selection)"


def label_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """Return ``runs`` with a ``method`` column (see :func:`method_label`)."""
    out = runs.copy()
    selection = out["selection"] if "selection" in out else ["top"] * len(out)
    out["method"] = [
        method_label(s, q, float(d), sel)
        for s, q, d, sel in zip(out["scorer"], out["quoter"], out["density"], selection)
    ]
    return out


def setting_groups(runs: pd.DataFrame, config_fields: list[str]) -> list[tuple[str, list[int]]]:
    """Split runs into groups that share a setting (every config field but the method axes).

    Returns ``(label, run ids)`` per group, largest first; the label names only the fields that
    differ between groups (``"epochs=60, model=cnn"``) and is empty when there is one group.
    """
    fields = [f for f in config_fields if f in runs and f not in METHOD_AXES]
    keys = runs[fields].astype(str)
    differing = [f for f in fields if keys[f].nunique() > 1]
    if not differing:
        return [("", runs["id"].astype(int).tolist())]
    groups = [
        (", ".join(f"{f}={v}" for f, v in zip(differing, key if isinstance(key, tuple) else (key,))),
         runs.loc[index, "id"].astype(int).tolist())
        for key, index in keys.groupby(differing).groups.items()
    ]
    return sorted(groups, key=lambda g: -len(g[1]))


def method_order(methods: pd.Series | list[str]) -> list[str]:
    """Methods in a stable display order: full data first, then alphabetical."""
    unique = sorted(set(methods))
    return ([FULL_DATA] if FULL_DATA in unique else []) + [m for m in unique if m != FULL_DATA]


def _test_metrics(runs: pd.DataFrame, metrics: pd.DataFrame) -> pd.DataFrame:
    labelled = label_runs(runs)[["id", "method", "density", "seed"]].rename(columns={"id": "run_id"})
    test = metrics[metrics["split"] == "test"]
    return test.merge(labelled, on="run_id", how="inner")


def class_accuracy(runs: pd.DataFrame, metrics: pd.DataFrame, density: float) -> pd.DataFrame:
    """Per-class test accuracy of each method at ``density`` (and of full data), mean over seeds.

    Columns: ``method, class_index, class_name, accuracy, worst`` where ``worst`` marks each
    method's lowest-accuracy class.
    """
    rows = _test_metrics(runs, metrics)
    rows = rows[np.isclose(rows["density"], density) | (rows["method"] == FULL_DATA)]
    out = (
        rows.groupby(["method", "class_index", "class_name"], as_index=False)["accuracy"].mean()
        .sort_values(["method", "class_index"], ignore_index=True)
    )
    worst_idx = out.groupby("method")["accuracy"].idxmin()
    out["worst"] = out.index.isin(worst_idx)
    return out


def density_curves(runs: pd.DataFrame) -> pd.DataFrame:
    """Average and worst-class accuracy per method and density: mean, min and max over seeds.

    Finished runs only. The full-data run is drawn at density 1. Columns:
    ``method, density, metric, mean, min, max, seeds``.
    """
    finished = label_runs(runs[runs["status"] == "finished"])
    long = finished.melt(
        id_vars=["method", "density", "seed"], value_vars=list(METRICS), var_name="metric", value_name="value"
    )
    long["metric"] = long["metric"].map(METRICS)
    out = long.groupby(["method", "density", "metric"], as_index=False)["value"].agg(
        mean="mean", min="min", max="max", seeds="count"
    )
    return out.sort_values(["metric", "method", "density"], ignore_index=True)


def bias_points(runs: pd.DataFrame, metrics: pd.DataFrame, density: float) -> pd.DataFrame:
    """Kept density per class against the full-data model's error on that class.

    Columns: ``method, class_name, full_data_error, kept_density``. Empty when there is no
    finished full-data run (the x axis needs it) or no pruned run at ``density``.
    """
    rows = _test_metrics(runs, metrics)
    full = rows[rows["method"] == FULL_DATA]
    if full.empty:
        return pd.DataFrame(columns=["method", "class_name", "full_data_error", "kept_density"])
    error = (1.0 - full.groupby("class_index")["accuracy"].mean()).rename("full_data_error")
    pruned = rows[(rows["method"] != FULL_DATA) & np.isclose(rows["density"], density)].copy()
    pruned["kept_density"] = pruned["kept"] / pruned["class_size"]
    out = (
        pruned.groupby(["method", "class_index", "class_name"], as_index=False)["kept_density"].mean()
        .join(error, on="class_index")
    )
    return out[["method", "class_name", "full_data_error", "kept_density"]].reset_index(drop=True)


def correlations(points: pd.DataFrame) -> dict[str, float]:
    """Pearson r between full-data class error and kept density, per method.

    NaN where it is undefined (fewer than two classes, or one side constant, e.g. uniform quotas).
    """
    out: dict[str, float] = {}
    for method, group in points.groupby("method"):
        x = group["full_data_error"].to_numpy(float)
        y = group["kept_density"].to_numpy(float)
        defined = len(x) > 1 and np.ptp(x) > 0 and np.ptp(y) > 0
        out[str(method)] = float(np.corrcoef(x, y)[0, 1]) if defined else float("nan")
    return out


def quota_table(metrics: pd.DataFrame, run_id: int) -> pd.DataFrame:
    """One run's per-class budget: class size, validation recall, quota (samples kept), kept density.

    ``warning`` names classes the run kept no sample of (the final model never sees them).
    """
    rows = metrics[(metrics["run_id"] == run_id) & (metrics["split"] == "test")].sort_values("class_index")
    out = pd.DataFrame(
        {
            "class": rows["class_name"].to_numpy(),
            "class size": rows["class_size"].to_numpy(int),
            "val recall": rows["val_recall"].to_numpy(float),
            "quota": rows["kept"].to_numpy(int),
        }
    )
    out["kept density"] = out["quota"] / out["class size"]
    out["warning"] = np.where(out["quota"] == 0, "0 kept: never seen in training", "")
    return out


def example_indices(
    labels: np.ndarray, kept: np.ndarray, class_index: int, n: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``n`` kept and ``n`` pruned training indices of one class, drawn at random by ``rng``."""
    in_class = np.flatnonzero(labels == class_index)
    is_kept = np.isin(in_class, kept)
    kept_idx, pruned_idx = in_class[is_kept], in_class[~is_kept]

    def pick(idx: np.ndarray) -> np.ndarray:
        return np.sort(rng.choice(idx, size=min(n, len(idx)), replace=False))

    return pick(kept_idx), pick(pruned_idx)


def to_display_images(x: np.ndarray, min_side: int = 48) -> list[np.ndarray]:
    """(B, C, H, W) uint8 -> list of (H, W) or (H, W, 3) uint8 arrays that ``st.image`` shows.

    Small images are enlarged by pixel repetition to at least ``min_side`` pixels (crisp, not blurred).
    """
    factor = max(1, -(-min_side // min(x.shape[2:])))
    x = x.repeat(factor, axis=2).repeat(factor, axis=3)
    if x.shape[1] == 1:
        return [img[0] for img in x]
    return [np.transpose(img, (1, 2, 0)) for img in x]


def method_summary(runs: pd.DataFrame, metrics: pd.DataFrame, density: float) -> pd.DataFrame:
    """One row per method at ``density`` (plus full data): what pruning did to it, mean over seeds.

    Columns: ``method, seeds, average accuracy, worst-class accuracy, worst class, most hurt class,
    change`` where ``change`` is the most hurt class's test-accuracy change against full data
    (NaN without a full-data run).
    """
    acc = class_accuracy(runs, metrics, density)
    full = acc[acc["method"] == FULL_DATA].set_index("class_index")["accuracy"]
    labelled = label_runs(runs[runs["status"] == "finished"])
    at_density = labelled[np.isclose(labelled["density"], density) | (labelled["method"] == FULL_DATA)]
    rows = []
    for method in method_order(acc["method"]):
        per_class = acc[acc["method"] == method].set_index("class_index")
        runs_m = at_density[at_density["method"] == method]
        change = per_class["accuracy"] - full.reindex(per_class.index) if len(full) else None
        hurt = None if change is None or method == FULL_DATA else change.idxmin()
        rows.append({
            "method": method,
            "seeds": len(runs_m),
            "average accuracy": runs_m["average_accuracy"].mean(),
            "worst-class accuracy": runs_m["worst_class_accuracy"].mean(),
            "worst class": per_class.loc[per_class["worst"], "class_name"].iloc[0],
            "most hurt class": "" if hurt is None else per_class.loc[hurt, "class_name"],
            "change": float("nan") if hurt is None else float(change.loc[hurt]),
        })
    return pd.DataFrame(rows)


def runs_csv(runs: pd.DataFrame, metrics: pd.DataFrame) -> str:
    """CSV text with one row per (run, split, class): the run's config and summary, then the class columns."""
    table = runs.rename(columns={"id": "run_id"})
    if len(table):
        table = table.merge(metrics, on="run_id", how="left", suffixes=("", "_class"))
    return table.to_csv(index=False)


def drop_verdicts(summary: pd.DataFrame) -> list[dict]:
    """Each ``X+DRoP`` method of a :func:`method_summary` table next to its plain ``X``.

    One dict per pair: ``base, drop, worst_base, worst_drop, average_base, average_drop``.
    """
    rows = summary.set_index("method")
    out = []
    for method in rows.index:
        base = method.split("+")[0]
        if "+DRoP" in method and base in rows.index:
            out.append({
                "base": base, "drop": method,
                "worst_base": float(rows.loc[base, "worst-class accuracy"]),
                "worst_drop": float(rows.loc[method, "worst-class accuracy"]),
                "average_base": float(rows.loc[base, "average accuracy"]),
                "average_drop": float(rows.loc[method, "average accuracy"]),
            })
    return out
