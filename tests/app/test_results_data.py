"""The pure frames behind the result charts, on hand-made store-shaped DataFrames."""
import io

import numpy as np
import pandas as pd
import pytest

from app import results_data as rd
from drop_core import analysis as an


def _runs() -> pd.DataFrame:
    rows = [
        # id, scorer, quoter, density, seed, avg, worst
        (1, "random", "none", 1.0, 0, 0.90, 0.80),
        (2, "random", "none", 0.5, 0, 0.85, 0.60),
        (3, "random", "drop", 0.5, 0, 0.84, 0.70),
        (4, "random", "none", 0.5, 1, 0.83, 0.50),
        (5, "random", "drop", 0.3, 0, 0.80, 0.65),
    ]
    df = pd.DataFrame(rows, columns=["id", "scorer", "quoter", "density", "seed",
                                     "average_accuracy", "worst_class_accuracy"])
    df["status"] = "finished"
    return df


def _metrics() -> pd.DataFrame:
    acc = {1: [0.95, 0.85, 0.90], 2: [0.9, 0.6, 0.95], 3: [0.88, 0.7, 0.92], 4: [0.92, 0.5, 0.9],
           5: [0.8, 0.65, 0.9]}
    kept = {1: [100, 100, 100], 2: [50, 50, 50], 3: [30, 80, 40], 4: [50, 50, 50], 5: [10, 60, 20]}
    rows = []
    for run_id in acc:
        for k, name in enumerate(["cat", "dog", "emu"]):
            rows.append((run_id, "test", k, name, acc[run_id][k], 100, kept[run_id][k], [0.9, 0.6, 0.8][k]))
    return pd.DataFrame(rows, columns=["run_id", "split", "class_index", "class_name", "accuracy",
                                       "class_size", "kept", "val_recall"])


def test_label_runs_names_methods_with_the_analysis_vocabulary():
    runs = _runs()
    runs["selection"] = ["top", "top", "top", "random", "top"]
    methods = rd.label_runs(runs)["method"].tolist()
    assert methods == ["full data", "random", "random+DRoP", "random (random selection)", "random+DRoP"]
    assert methods == [an.method_name(r.scorer, r.quoter, r.density, r.selection) for r in runs.itertuples()]


def test_class_accuracy_averages_seeds_and_marks_each_methods_worst_class():
    out = rd.class_accuracy(_runs(), _metrics(), density=0.5)
    assert set(out["method"]) == {"full data", "random", "random+DRoP"}
    random_dog = out[(out["method"] == "random") & (out["class_name"] == "dog")]["accuracy"].item()
    assert random_dog == pytest.approx(0.55)          # mean of runs 2 and 4
    worst = out[out["worst"]].set_index("method")["class_name"].to_dict()
    assert worst == {"full data": "dog", "random": "dog", "random+DRoP": "dog"}
    assert out["worst"].sum() == 3
    assert out["n_test"].isna().all() and out["lo"].isna().all()     # no test counts stored: no intervals


def test_class_accuracy_carries_wilson_intervals_of_the_seed_mean_from_test_counts():
    metrics = rd.with_test_counts(_metrics(), {run_id: [20, 40, 36] for run_id in range(1, 6)})
    out = rd.class_accuracy(_runs(), metrics, density=0.5).set_index(["method", "class_name"])
    row = out.loc[("random", "dog")]
    assert row["n_test"] == 40
    assert (row["lo"], row["hi"]) == pytest.approx(an.wilson_interval(0.55 * 40, 40))
    assert (out["lo"] <= out["accuracy"]).all() and (out["accuracy"] <= out["hi"]).all()


def test_with_test_counts_fills_only_missing_test_rows():
    metrics = _metrics()
    metrics["test_count"] = np.where(metrics["run_id"] == 1, 50, np.nan)
    out = rd.with_test_counts(metrics, {1: [7, 7, 7], 2: [10, 20, 30]})
    assert out.loc[out["run_id"] == 1, "test_count"].tolist() == [50, 50, 50]
    assert out.loc[out["run_id"] == 2, "test_count"].tolist() == [10, 20, 30]
    assert out.loc[out["run_id"] == 3, "test_count"].isna().all()
    assert rd.test_counts(out).tolist() == [50, 50, 50]


def test_density_curves_give_min_max_over_seeds_and_skip_unfinished_runs():
    runs = _runs()
    runs.loc[runs["id"] == 5, "status"] = "running"
    out = rd.density_curves(runs)
    row = out[(out["method"] == "random") & (out["metric"] == "worst-class accuracy")].iloc[0]
    assert (row["density"], row["mean"], row["min"], row["max"], row["seeds"]) == (0.5, pytest.approx(0.55), 0.5,
                                                                                  0.6, 2)
    assert 0.3 not in set(out["density"])
    assert set(out["metric"]) == {"average accuracy", "worst-class accuracy"}


def test_bias_points_pair_full_data_error_with_kept_density_and_correlate():
    points = rd.bias_points(_runs(), _metrics(), density=0.5)
    drop = points[points["method"] == "random+DRoP"].set_index("class_name")
    assert drop.loc["dog", "full_data_error"] == pytest.approx(0.15)
    assert drop.loc["dog", "kept_density"] == pytest.approx(0.8)
    r = rd.correlations(points)
    expected = np.corrcoef([0.05, 0.15, 0.10], [0.3, 0.8, 0.4])[0, 1]
    assert r["random+DRoP"] == pytest.approx(expected)
    assert np.isnan(r["random"])                       # equal densities: r is undefined, not 0


def test_bias_points_empty_without_full_data_run():
    runs = _runs()[lambda d: d["density"] < 1]
    assert rd.bias_points(runs, _metrics(), density=0.5).empty


def test_quota_table_warns_about_empty_classes():
    metrics = _metrics()
    metrics.loc[(metrics["run_id"] == 3) & (metrics["class_name"] == "cat"), "kept"] = 0
    table = rd.quota_table(metrics, 3)
    assert table["quota"].tolist() == [0, 80, 40]
    assert table["kept density"].tolist() == pytest.approx([0.0, 0.8, 0.4])
    assert table["warning"].astype(bool).tolist() == [True, False, False]


def test_example_indices_split_one_class_into_kept_and_pruned():
    labels = np.array([0, 1, 1, 0, 1, 1, 1])
    kept = np.array([1, 4, 5])
    k, p = rd.example_indices(labels, kept, class_index=1, n=10, rng=np.random.default_rng(0))
    assert k.tolist() == [1, 4, 5] and p.tolist() == [2, 6]
    k, p = rd.example_indices(labels, kept, class_index=1, n=2, rng=np.random.default_rng(0))
    assert len(k) == 2 and set(k) <= {1, 4, 5} and p.tolist() == [2, 6]


def test_to_display_images_moves_channels_last_and_enlarges_small_images_crisply():
    gray = np.arange(2 * 8 * 8, dtype=np.uint8).reshape(2, 1, 8, 8)
    rgb = np.zeros((2, 3, 64, 48), np.uint8)
    big = rd.to_display_images(gray)[1]
    assert big.shape == (48, 48)
    assert (big[:6, :6] == gray[1, 0, 0, 0]).all() and big[6, 0] == gray[1, 0, 1, 0]
    assert rd.to_display_images(rgb)[1].shape == (64, 48, 3)


def test_method_summary_names_the_most_hurt_class_against_full_data():
    table = rd.method_summary(_runs(), _metrics(), density=0.5).set_index("method")
    assert list(table.index) == ["full data", "random", "random+DRoP"]
    assert table.loc["random", "seeds"] == 2
    assert table.loc["random", "worst-class accuracy"] == pytest.approx(0.55)
    assert table.loc["random", "most hurt class"] == "dog"
    assert table.loc["random", "change"] == pytest.approx(0.55 - 0.85)
    assert table.loc["random+DRoP", "worst class"] == "dog"
    assert table.loc["full data", "most hurt class"] == "" and np.isnan(table.loc["full data", "change"])


def test_runs_csv_has_one_row_per_run_split_and_class():
    text = rd.runs_csv(_runs(), _metrics())
    table = pd.read_csv(io.StringIO(text))
    assert len(table) == 15 and {"run_id", "scorer", "class_name", "accuracy"} <= set(table.columns)


def test_runs_csv_adds_intervals_where_the_test_count_is_known():
    metrics = rd.with_test_counts(_metrics(), {2: [20, 40, 36]})
    table = pd.read_csv(io.StringIO(rd.runs_csv(_runs(), metrics)))
    row = table[(table["run_id"] == 2) & (table["class_name"] == "dog")].iloc[0]
    assert (row["accuracy_lo"], row["accuracy_hi"]) == pytest.approx(an.wilson_interval(24, 40))
    assert table.loc[table["run_id"] == 3, "accuracy_lo"].isna().all()


def _seeded(drop_worst: list[float], base_worst: list[float]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Three classes of 36 test images; random and random+DRoP at d = 0.5 and full data over the same seeds."""
    rows, metrics = [], []
    for seed in range(len(drop_worst)):
        for k, (quoter, density, worst) in enumerate([("none", 1.0, 0.9), ("none", 0.5, base_worst[seed]),
                                                      ("drop", 0.5, drop_worst[seed])]):
            rid = 10 * seed + k
            rows.append((rid, "random", quoter, density, seed, 0.9, worst))
            for c, name in enumerate(["cat", "dog", "emu"]):
                acc = worst if name == "dog" else 1.0
                metrics.append((rid, "test", c, name, acc, 100, 50, 0.9, 36))
    runs = pd.DataFrame(rows, columns=["id", "scorer", "quoter", "density", "seed", "average_accuracy",
                                       "worst_class_accuracy"]).assign(status="finished")
    return runs, pd.DataFrame(metrics, columns=["run_id", "split", "class_index", "class_name", "accuracy",
                                                "class_size", "kept", "val_recall", "test_count"])


def test_drop_verdicts_pair_drop_with_its_base_by_seed_with_the_worst_classs_test_count():
    runs, metrics = _seeded([33 / 36, 32 / 36, 34 / 36], [29 / 36, 29 / 36, 30 / 36])
    (v,) = rd.drop_verdicts(runs, metrics, density=0.5)
    assert (v.new, v.old, v.seeds, v.n_test, v.outcome) == ("random+DRoP", "random", 3, 36, "better")
    assert v.p_value == pytest.approx(an.paired_t_test([33, 32, 34], [29, 29, 30]))
    runs, metrics = _seeded([33 / 36], [29 / 36])
    (v,) = rd.drop_verdicts(runs, metrics, density=0.5)
    assert v.outcome == "too few seeds" and v.images == pytest.approx(4)
    assert rd.drop_verdicts(runs[runs["quoter"] != "none"], metrics, density=0.5) == []


def test_hurt_verdicts_compare_the_most_hurt_class_with_full_data():
    runs, metrics = _seeded([33 / 36, 32 / 36, 34 / 36], [20 / 36, 21 / 36, 19 / 36])
    verdicts = {v.new: v for v in rd.hurt_verdicts(runs, metrics, density=0.5)}
    assert verdicts["random"].metric == "class dog" and verdicts["random"].old == "full data"
    assert verdicts["random"].outcome == "worse"
    assert (verdicts["random+DRoP"].metric, verdicts["random+DRoP"].outcome) == ("class cat", "unclear")


def test_setting_groups_split_runs_by_the_fields_that_differ():
    runs = _runs()
    runs["model"] = ["mlp", "mlp", "mlp", "cnn", "mlp"]
    runs["epochs"] = 30
    runs["device"] = "cpu"
    groups = rd.setting_groups(runs, ["model", "epochs", "scorer", "density", "seed", "device"])
    assert groups == [("model=mlp", [1, 2, 3, 5]), ("model=cnn", [4])]
    runs["device"] = ["cpu", "cuda", "cpu", "cpu", "cpu"]        # the device can change numbers: it splits too
    groups = rd.setting_groups(runs, ["model", "epochs", "scorer", "density", "seed", "device"])
    assert groups == [("model=mlp, device=cpu", [1, 3, 5]), ("model=cnn, device=cpu", [4]),
                      ("model=mlp, device=cuda", [2])]
    assert rd.setting_groups(runs[runs["model"] == "mlp"], ["model", "epochs"]) == [("", [1, 2, 3, 5])]
