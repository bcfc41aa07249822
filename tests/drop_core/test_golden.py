"""Golden numbers: a tiny deterministic run whose per-class results are pinned.

Run keys hash ``drop_core.config.RESULTS_VERSION`` instead of the source text, so an edit that
changes no number keeps every stored run and cache entry. This test is what makes that safe: a
change that moves any number below fails here, and its author must bump ``RESULTS_VERSION`` (so
old results are never served as new ones) and re-pin these values in the same commit.
"""
import pytest

from drop_core.config import RESULTS_VERSION
from drop_core.pipeline import RunConfig, run

# Pinned at RESULTS_VERSION 1 (digits, mlp, fp32 on the CPU, one torch thread).
PINNED_VERSION = 1
KEPT = {"0": 20, "1": 43, "2": 75, "3": 64, "4": 32, "5": 53, "6": 20, "7": 20, "8": 104, "9": 108}
VAL_RECALL = {"0": 1.0, "1": 0.888889, "2": 0.8, "3": 0.833333, "4": 0.916667, "5": 0.861111, "6": 1.0, "7": 1.0,
              "8": 0.714286, "9": 0.694444}
TEST_ACCURACY = {"0": 0.916667, "1": 0.945946, "2": 1.0, "3": 0.918919, "4": 0.972222, "5": 0.972973, "6": 1.0,
                 "7": 0.861111, "8": 0.885714, "9": 0.916667}


@pytest.fixture(scope="module")
def golden(tmp_path_factory):
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield run(RunConfig(dataset="digits", model="mlp", preset="cpu", epochs=10, query_inits=1, density=0.5,
                            scorer="el2n", quoter="drop", precision="fp32", device="cpu"),
                  cache_dir=tmp_path_factory.mktemp("cache"))
    finally:
        torch.set_num_threads(threads)


def test_results_version_matches_the_pinned_numbers():
    assert RESULTS_VERSION == PINNED_VERSION, "re-pin the golden numbers below for the new RESULTS_VERSION"


def test_query_recalls_quotas_and_test_accuracy_are_unchanged(golden):
    assert {k: round(v, 6) for k, v in golden.val_recall.items()} == VAL_RECALL
    assert golden.kept_per_class == KEPT
    assert {k: round(v, 6) for k, v in golden.class_accuracy.items()} == TEST_ACCURACY
