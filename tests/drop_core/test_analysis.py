"""Results analysis: names, seed aggregation, Pearson r, Wilson intervals, paired verdicts and their wording."""
import numpy as np
import pytest
from scipy import stats

from drop_core import analysis as an
from drop_core.errors import DropError


def test_method_names_and_order():
    assert an.method_name("random", "none", 1.0) == "full data"
    assert an.method_name("el2n", "none", 0.5) == "el2n"
    assert an.method_name("random", "drop", 0.5) == "random+DRoP"
    assert an.method_name("aum", "strange", 0.5) == "aum+strange"
    assert an.method_name("el2n", "none", 0.5, "random") == "el2n (random selection)"
    assert an.method_name("random", "drop", 0.5, correction="logit_adjust") == "logit adj."
    assert an.config_method_name({"scorer": "el2n", "quoter": "drop", "density": 0.3}) == "el2n+DRoP"
    assert an.method_order(["random+DRoP", "full data", "el2n"]) == ["full data", "el2n", "random+DRoP"]
    assert an.drop_pairs(["random+DRoP", "random", "el2n+DRoP", "full data"]) == [("random", "random+DRoP")]


def test_summarize_seeds_mean_min_max_for_scalars_and_arrays():
    seeds = [{"worst_class_accuracy": 0.2, "class_accuracy": np.array([0.2, 0.9])},
             {"worst_class_accuracy": 0.4, "class_accuracy": np.array([0.4, 0.7])},
             {"worst_class_accuracy": 0.3, "class_accuracy": np.array([0.3, 0.8])}]
    out = an.summarize_seeds(seeds)
    assert out["worst_class_accuracy"] == pytest.approx({"mean": 0.3, "min": 0.2, "max": 0.4})
    np.testing.assert_allclose(out["class_accuracy"]["mean"], [0.3, 0.8])
    np.testing.assert_allclose(out["class_accuracy"]["min"], [0.2, 0.7])
    np.testing.assert_allclose(out["class_accuracy"]["max"], [0.4, 0.9])


def test_summarize_seeds_errors():
    with pytest.raises(DropError, match="no seed results"):
        an.summarize_seeds([])
    with pytest.raises(DropError, match="every seed must report the same metrics"):
        an.summarize_seeds([{"gap": 0.1}, {"std": 0.1}])
    with pytest.raises(DropError, match="Metric 'gap' is not finite"):
        an.summarize_seeds([{"gap": 0.1}, {"gap": float("nan")}])


def test_pearson_r_matches_numpy_and_is_nan_where_undefined():
    x, y = [0.05, 0.15, 0.10], [0.3, 0.8, 0.4]
    assert an.pearson_r(x, y) == pytest.approx(np.corrcoef(x, y)[0, 1])
    assert np.isnan(an.pearson_r(x, [0.5, 0.5, 0.5]))
    assert np.isnan(an.pearson_r([0.1], [0.2]))


@pytest.mark.parametrize("k, n", [(30, 36), (0, 36), (36, 36), (1, 5), (499, 500), (250, 500)])
def test_wilson_interval_matches_scipy(k, n):
    ref = stats.binomtest(k, n).proportion_ci(method="wilson")          # scipy uses the exact 97.5% quantile
    assert an.wilson_interval(k, n, z=stats.norm.ppf(0.975)) == pytest.approx((ref.low, ref.high), abs=1e-12)
    assert an.wilson_interval(k, n) == pytest.approx((ref.low, ref.high), abs=1e-5)   # z = 1.96


def test_wilson_interval_known_value_and_arrays():
    lo, hi = an.wilson_interval(30, 36)       # Wilson (1927) score interval, z = 1.96
    assert (round(lo, 4), round(hi, 4)) == (0.6811, 0.9213)
    lo, hi = an.wilson_interval(np.array([0, 18, 36]), 36)
    assert lo[0] == 0.0 and hi[2] == 1.0 and lo[1] == pytest.approx(1 - hi[1])
    with pytest.raises(DropError, match="must lie in \\[0, n\\]"):
        an.wilson_interval(37, 36)
    with pytest.raises(DropError, match="positive test counts"):
        an.wilson_interval(0, 0)


def test_class_intervals_per_class_from_test_counts():
    out = an.class_intervals({"cat": 30 / 36, "dog": 1.0}, {"cat": 36, "dog": 18})
    assert out["cat"] == pytest.approx(list(an.wilson_interval(30, 36)))
    assert out["dog"] == pytest.approx(list(an.wilson_interval(18, 18)))
    with pytest.raises(DropError, match=r"No test count for class\(es\) \['dog'\]"):
        an.class_intervals({"cat": 0.5, "dog": 0.5}, {"cat": 10})


@pytest.mark.parametrize("new, old", [([0.9, 0.8, 0.85], [0.8, 0.75, 0.7]), ([0.1, 0.2], [0.3, 0.1]),
                                      ([0.5, 0.6, 0.4, 0.7], [0.55, 0.5, 0.45, 0.5])])
def test_paired_t_test_matches_scipy(new, old):
    assert an.paired_t_test(new, old) == pytest.approx(stats.ttest_rel(new, old).pvalue, rel=1e-9)


def test_paired_t_test_limits_for_equal_differences():
    assert an.paired_t_test([3, 4, 5], [2, 3, 4]) == 0.0
    assert an.paired_t_test([3, 4, 5], [3, 4, 5]) == 1.0


def _verdict(new, old, n=36, **kw):
    return an.compare(dict(enumerate(new)), dict(enumerate(old)), new_name="random+DRoP", old_name="random",
                      metric="worst-class accuracy", n_test=n, **kw)


def test_one_seed_never_gives_a_verdict_and_says_how_many_images():
    v = _verdict([32 / 36], [29 / 36])                   # the case: 80.6% -> 88.9% from one seed
    assert v.outcome == "too few seeds" and v.images == pytest.approx(3)
    text = an.verdict_text(v)
    assert text == ("random+DRoP vs random, worst-class accuracy: 80.6% → 88.9% (+8.3 points, +3.0 of 36 test "
                    "images) from 1 seed; the difference is within 3 test images, which one seed cannot tell "
                    "from training noise: run 3 or more seeds for a paired t-test over seeds.")
    assert "beats" not in text and "helped" not in text


def test_two_seeds_are_too_few_even_when_they_agree():
    assert _verdict([30 / 36, 31 / 36], [29 / 36, 30 / 36]).outcome == "too few seeds"


def test_verdict_boundaries_over_three_seeds():
    better = _verdict([33 / 36, 32 / 36, 34 / 36], [29 / 36, 29 / 36, 30 / 36])
    p = stats.ttest_rel([33, 32, 34], [29, 29, 30]).pvalue
    assert better.outcome == "better" and better.p_value == pytest.approx(p)
    assert an.verdict_text(better).startswith("random+DRoP beats random on worst-class accuracy: ")
    assert an.verdict_text(better).endswith(f"paired t-test over seeds (3 seeds), p = {p:.3f}.")
    worse = _verdict([29 / 36, 29 / 36, 30 / 36], [33 / 36, 32 / 36, 34 / 36])
    assert worse.outcome == "worse" and " is below random " in an.verdict_text(worse)
    same = _verdict([33 / 36, 32 / 36, 34 / 36], [29 / 36, 28 / 36, 30 / 36])      # +4 images on every seed
    assert same.p_value == 0.0 and an.verdict_text(same).endswith("(3 seeds), p < 0.001.")
    noisy = _verdict([33 / 36, 25 / 36, 34 / 36], [29 / 36, 29 / 36, 30 / 36])
    assert noisy.p_value > 0.05 and noisy.outcome == "unclear"
    assert an.verdict_text(noisy).endswith("not significant at 5%.")
    assert an.verdict_text(noisy).startswith("No clear difference between random+DRoP and random")


def test_significant_but_under_one_test_image_is_no_verdict():
    v = an.compare({0: 0.8025, 1: 0.803, 2: 0.8035}, {0: 0.8, 1: 0.8, 2: 0.8}, new_name="a", old_name="b",
                   metric="average accuracy", n_test=100)
    assert v.p_value < 0.05 and v.outcome == "unclear"
    assert an.verdict_text(v).endswith("under one test image.")


def test_compare_pairs_by_seed_and_needs_a_shared_seed():
    v = an.compare({0: 0.9, 1: 0.8, 5: 0.1}, {0: 0.8, 1: 0.7, 2: 0.0}, new_name="a", old_name="b", metric="m")
    assert v.seeds == 2 and v.new_value == pytest.approx(0.85) and v.n_test is None
    assert "the test count is unknown" in an.verdict_text(v)
    with pytest.raises(DropError, match="share no seed"):
        an.compare({0: 0.9}, {1: 0.8}, new_name="a", old_name="b", metric="m")


def test_seed_summary_lines_give_mean_min_max_and_the_worth_of_one_image():
    results = [{"average_accuracy": a, "worst_class_accuracy": w, "worst_class": "dog",
                "test_counts": {"cat": 40, "dog": 36}} for a, w in ((0.9, 29 / 36), (0.91, 31 / 36), (0.92, 30 / 36))]
    lines = an.seed_summary_lines(results)
    assert lines[0] == "over 3 seeds (mean [min, max]):"
    assert lines[1] == "  average accuracy     0.9100 [0.9000, 0.9200]"
    assert lines[3] == ("  one test image of the worst class is 2.8 points (36 test images); "
                        "the seeds' worst-class accuracies span 2 images")
    assert len(an.seed_summary_lines([{**r, "test_counts": None} for r in results])) == 3
