"""Per-class metrics: recall (never one-vs-rest accuracy), summaries, errors."""
import numpy as np
import pytest

from drop_core.errors import DropError
from drop_core.metrics import class_recalls, summarize

Y_TRUE = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2, 2])
Y_PRED = np.array([0, 0, 0, 1, 1, 0, 2, 0, 0, 0])


def test_class_accuracy_is_recall_not_one_vs_rest_accuracy():
    recalls = class_recalls(Y_TRUE, Y_PRED, 3)
    np.testing.assert_allclose(recalls, [3 / 4, 1 / 2, 1 / 4])
    # one-vs-rest accuracy of class 2 would be 7/10: every non-2 sample counts as a hit
    one_vs_rest = np.mean((Y_TRUE == 2) == (Y_PRED == 2))
    assert one_vs_rest == 0.7 and recalls[2] != one_vs_rest


def test_summarize_hand_computed():
    s = summarize(np.array([0.75, 0.5, 0.25]))
    assert s == pytest.approx({"average_accuracy": 0.5, "worst_class_accuracy": 0.25,
                               "best_class_accuracy": 0.75, "std": np.sqrt(1 / 24),
                               "gap": 0.5})


def test_class_without_samples_is_an_error_not_nan_or_zero():
    with pytest.raises(DropError) as info:
        class_recalls(np.array([0, 0, 2]), np.array([0, 1, 2]), 4)
    assert str(info.value) == (
        "Class accuracy is undefined for class(es) [1, 3]: the evaluation split has no samples "
        "of them. Use a split that contains every class.")


def test_bad_labels_raise():
    with pytest.raises(ValueError, match="same length"):
        class_recalls(Y_TRUE, Y_PRED[:3], 3)
    with pytest.raises(ValueError, match=r"'y_pred' parameter of class_recalls must hold integer "
                                         r"class ids in \[0, 2\]"):
        class_recalls(Y_TRUE, Y_PRED + 1, 3)


def test_summarize_rejects_non_finite_recalls():
    with pytest.raises(DropError, match="need a non-empty list of finite numbers"):
        summarize(np.array([0.5, np.nan]))
