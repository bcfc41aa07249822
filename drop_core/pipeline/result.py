"""What a run produced: :class:`RunResult` (also what ``--json`` prints) and its rebuild from the store."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from drop_core.analysis import class_intervals
from drop_core.store import Store


@dataclass
class RunResult:
    """What a run produced (also what ``--json`` prints, without ``kept_indices``)."""

    average_accuracy: float                 # overall test accuracy
    worst_class_accuracy: float             # min per-class test recall
    class_accuracy: dict[str, float]        # class name -> test recall
    kept_per_class: dict[str, int]
    class_sizes: dict[str, int]             # training samples per class before pruning
    val_recall: dict[str, float]            # query models' validation recall ({} without a query model)
    train_size: int
    config: dict[str, Any]                  # the resolved config
    warnings: list[str]
    query_cache_hit: bool
    timings: dict[str, float]               # stage -> seconds
    worst_class: str = ""
    mean_recall: float = float("nan")
    recall_std: float = float("nan")
    recall_gap: float = float("nan")
    val_class_accuracy: dict[str, float] = field(default_factory=dict)   # final model on the val split
    final_epochs: int = 0
    test_counts: dict[str, int] = field(default_factory=dict)              # test images per class
    class_accuracy_ci: dict[str, list[float]] = field(default_factory=dict)  # 95% Wilson [lo, hi] per class
    key: str = ""
    run_id: int | None = None
    reused: bool = False                    # an identical finished run was returned from the store
    kept_indices: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64), repr=False)

    def to_dict(self, *, indices: bool = True) -> dict[str, Any]:
        """Plain dict (JSON-serialisable); ``indices=False`` leaves out ``kept_indices``."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "kept_indices"}
        if indices:
            d["kept_indices"] = self.kept_indices.tolist()
        return d

    @classmethod
    def from_store(cls, store: Store, run_id: int) -> RunResult:
        """Rebuild the result of a finished run from the store."""
        run = store.get_run(run_id)
        cm = store.class_metrics([run_id])
        test, val = cm[cm.split == "test"], cm[cm.split == "val"]
        names = list(test.class_name)
        summary = run["summary"] or {}
        counts = {n: int(c) for n, c in zip(names, test.test_count) if c is not None and c == c}
        if len(counts) != len(names):      # a run stored before test counts were: no intervals
            counts = {}
        accuracy = dict(zip(names, test.accuracy.astype(float)))
        return cls(
            average_accuracy=summary["average_accuracy"], worst_class_accuracy=summary["worst_class_accuracy"],
            class_accuracy=accuracy,
            kept_per_class=dict(zip(names, test.kept.astype(int).tolist())),
            class_sizes=dict(zip(names, test.class_size.astype(int).tolist())),
            val_recall={n: float(v) for n, v in zip(names, test.val_recall) if v is not None and v == v},
            train_size=int(summary["train_size"]), config=run["config"], warnings=list(summary.get("warnings", [])),
            query_cache_hit=bool(summary.get("query_cache_hit")), timings=run["timings"],
            worst_class=summary.get("worst_class", ""), mean_recall=summary.get("mean_recall", float("nan")),
            recall_std=summary.get("recall_std", float("nan")), recall_gap=summary.get("recall_gap", float("nan")),
            val_class_accuracy=dict(zip(val.class_name, val.accuracy.astype(float))),
            final_epochs=int(summary.get("final_epochs", 0)), test_counts=counts,
            class_accuracy_ci=class_intervals(accuracy, counts) if counts else {}, key=run["key"], run_id=run_id,
            kept_indices=store.kept_indices(run_id))
