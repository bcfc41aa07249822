"""Quota rules: Algorithm 1, its edge cases, the authors' variant and the registry."""
import math
import random as _random

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from drop_core.errors import DropError
from drop_core.quotas import (
    QUOTERS,
    QuotaParams,
    authors_code_quotas,
    drop_quotas,
    exact_drop_counts,
    quoter_needs_recalls,
    uniform_quotas,
)


def _budget(sizes, d):
    return math.floor(d * sum(sizes) + 0.5)


@st.composite
def problems(draw, balanced=False):
    k = draw(st.integers(1, 12))
    if balanced:
        sizes = [draw(st.integers(0, 3000))] * k
    else:
        sizes = draw(st.lists(st.integers(0, 3000), min_size=k, max_size=k))
    recalls = draw(st.lists(
        st.one_of(st.floats(0.0, 1.0), st.sampled_from([0.0, 1.0])), min_size=k, max_size=k))
    density = draw(st.floats(1e-3, 1.0))
    return np.array(sizes), np.array(recalls), density


# ----------------------------------------------------------------------- worked examples

def test_worked_imbalanced_example_paper_vs_authors_code():
    assert drop_quotas([5000, 2500], [0.9, 0.8], 0.5).tolist() == [1875, 1875]
    assert authors_code_quotas([5000, 2500], [0.9, 0.8], 0.5).tolist() == [1250, 2500]


def test_no_saturation_matches_closed_form():
    # d_k = d N (1 - r_k) / sum_j N_j (1 - r_j): (0.05, 0.3, 0.4) * 15000 * 0.3 / 0.75 * 5000
    assert drop_quotas([5000] * 3, [0.95, 0.7, 0.6], 0.3).tolist() == [300, 1800, 2400]


def test_saturated_class_excess_goes_to_the_others_by_error():
    # budget 270: class 2 wants 270 * 0.5/0.6 = 225 > 100, so it is capped and the excess
    # 170 splits 1:1 between the two other classes
    assert drop_quotas([100, 100, 100], [0.95, 0.95, 0.5], 0.9).tolist() == [85, 85, 100]


def test_density_one_keeps_everything():
    assert drop_quotas([7, 0, 13], [0.2, 0.5, 1.0], 1.0).tolist() == [7, 0, 13]


def test_balanced_data_paper_and_authors_code_agree():
    sizes, r = [500] * 4, [0.9, 0.6, 0.75, 0.3]
    for d in (0.1, 0.3, 0.5, 0.8):
        assert drop_quotas(sizes, r, d).tolist() == authors_code_quotas(sizes, r, d).tolist()


# ----------------------------------------------------------------------- edge cases

def test_all_zero_error_spreads_by_class_size():
    assert drop_quotas([100, 50, 10], [1.0, 1.0, 1.0], 0.5).tolist() == [50, 25, 5]


def test_zero_error_classes_take_the_rest_once_others_saturate():
    # only class 2 has error; it saturates at 10, the other 70 go by size 100:50
    assert drop_quotas([100, 50, 10], [1.0, 1.0, 0.9], 0.5).tolist() == [47, 23, 10]


def test_perfect_class_gets_zero_by_default_and_the_floor_with_min_per_class():
    assert drop_quotas([100, 100], [1.0, 0.5], 0.3).tolist() == [0, 60]
    assert drop_quotas([100, 100], [1.0, 0.5], 0.3, min_per_class=15).tolist() == [15, 45]


def test_min_per_class_is_capped_by_the_class_size():
    assert drop_quotas([4, 100, 100], [1.0, 1.0, 0.5], 0.5, min_per_class=10).tolist() == [4, 10, 88]


def test_min_per_class_rebalances_until_no_class_is_below():
    # budget 90 -> (0, 15, 75); class 0 is lifted to 14, which leaves class 1 only
    # 76 * 0.2 / 1.2 = 12.7 < 14, so it is lifted too
    out = drop_quotas([100, 100, 100], [1.0, 0.8, 0.0], 0.3, min_per_class=14)
    assert out.tolist() == [14, 14, 62]


def test_min_per_class_larger_than_budget_raises():
    with pytest.raises(ValueError, match=r"needs 60 samples, but the budget round\(d\*N\) is only 30"):
        drop_quotas([100, 100, 100], [0.5] * 3, 0.1, min_per_class=20)


def test_strength_zero_is_uniform_and_one_is_the_paper():
    sizes, r = [300, 120, 45], [0.95, 0.5, 0.8]
    assert drop_quotas(sizes, r, 0.4, strength=0.0).tolist() == uniform_quotas(sizes, 0.4).tolist()
    assert drop_quotas(sizes, r, 0.4, strength=1.0).tolist() == drop_quotas(sizes, r, 0.4).tolist()


def test_strength_moves_the_hardest_class_monotonically():
    sizes, r = [1000] * 3, [0.95, 0.8, 0.4]
    hardest = [drop_quotas(sizes, r, 0.3, strength=t)[2] for t in (0.0, 0.25, 0.5, 0.75, 1.0)]
    assert hardest == sorted(hardest) and hardest[0] < hardest[-1]


def test_authors_rule_and_uniform_take_floor_and_strength_too():
    # authors: counts 1250:2500 ~ error; strength 0 gives equal counts
    assert authors_code_quotas([5000, 2500], [0.9, 0.8], 0.5, strength=0.0).tolist() == [1875, 1875]
    assert authors_code_quotas([100, 100], [1.0, 0.5], 0.3, min_per_class=15).tolist() == [15, 45]
    assert uniform_quotas([1000, 10], 0.1, min_per_class=5).tolist() == [96, 5]


def test_rounding_is_largest_remainder_and_halves_round_up():
    # 3 equal classes of 5, d=0.5: budget round(7.5)=8, exact 2.5 each -> one class gets 3
    out = uniform_quotas([5, 5, 5], 0.5)
    assert out.sum() == 8 and sorted(out.tolist()) == [2, 3, 3]


# ----------------------------------------------------------------------- properties

def _check_counts(out, sizes, exact, d):
    assert out.dtype == np.int64
    assert out.sum() == _budget(sizes, d)
    assert np.all(out >= 0) and np.all(out <= sizes)
    assert np.all(np.abs(out - exact) < 1 + 1e-9)


@settings(max_examples=150, deadline=None)
@given(problems())
def test_drop_properties_imbalanced(problem):
    sizes, r, d = problem
    out = drop_quotas(sizes, r, d)
    _check_counts(out, sizes, exact_drop_counts(sizes, r, d), d)


@settings(max_examples=60, deadline=None)
@given(problems(balanced=True))
def test_drop_properties_balanced(problem):
    sizes, r, d = problem
    out = drop_quotas(sizes, r, d)
    _check_counts(out, sizes, exact_drop_counts(sizes, r, d), d)
    np.testing.assert_array_equal(out, authors_code_quotas(sizes, r, d))


@settings(max_examples=80, deadline=None)
@given(problems(), st.integers(0, 50), st.floats(0.0, 1.0))
def test_drop_properties_with_floor_and_strength(problem, floor, tau):
    sizes, r, d = problem
    if np.minimum(floor, sizes).sum() > _budget(sizes, d):
        return
    out = drop_quotas(sizes, r, d, min_per_class=floor, strength=tau)
    exact = exact_drop_counts(sizes, r, d, min_per_class=floor, strength=tau)
    _check_counts(out, sizes, exact, d)
    assert np.all(out >= np.minimum(floor, sizes))


# Found by hypothesis: errors equal in float (1 - 1e-38 == 1 - 0) but recalls distinct, remainders tied.
_TIED = (np.array([0, 0, 0, 0, 0, 2, 0, 2, 0, 0, 1]),
         np.array([0, 0, 0, 0, 0, 1.17549435e-38, 0, 0, 0, 0, 1.0]), 0.5)


@settings(max_examples=80, deadline=None)
@given(problems(), st.randoms(use_true_random=False))
@example(_TIED, _random.Random(1)).via("regression")
@example(_TIED, _random.Random(2)).via("regression")
def test_drop_is_permutation_equivariant(problem, random):
    sizes, r, d = problem
    perm = np.arange(sizes.size)
    random.shuffle(perm)
    out = drop_quotas(sizes, r, d)
    out_perm = drop_quotas(sizes[perm], r[perm], d)
    # classes with identical (N_k, r_k) are interchangeable: compare them as multisets
    for key in set(zip(sizes.tolist(), r.tolist())):
        same = [i for i in range(sizes.size) if (sizes[i], r[i]) == key]
        same_p = [i for i in range(sizes.size) if (sizes[perm][i], r[perm][i]) == key]
        assert sorted(out[same].tolist()) == sorted(out_perm[same_p].tolist())


@settings(max_examples=60, deadline=None)
@given(problems())
def test_drop_ranks_classes_by_density(problem):
    """A class with more error never gets a lower density (up to rounding)."""
    sizes, r, d = problem
    exact = exact_drop_counts(sizes, r, d)
    live = sizes > 0
    dens, err = exact[live] / sizes[live], 1 - r[live]
    for i in range(dens.size):
        for j in range(dens.size):
            if err[i] > err[j]:
                assert dens[i] >= dens[j] - 1e-9


@settings(max_examples=60, deadline=None)
@given(problems())
def test_authors_and_uniform_properties(problem):
    sizes, r, d = problem
    for out in (authors_code_quotas(sizes, r, d), uniform_quotas(sizes, d)):
        assert out.sum() == _budget(sizes, d)
        assert np.all(out >= 0) and np.all(out <= sizes)
    assert np.all(np.abs(uniform_quotas(sizes, d) - d * sizes) < 1 + 1e-9)


# ----------------------------------------------------------------------- bad input

@pytest.mark.parametrize("kwargs, message", [
    (dict(density=1.5),
     "The 'density' parameter of drop_quotas must be a float in the range (0.0, 1.0]. Got 1.5 instead."),
    (dict(density=0.0),
     "The 'density' parameter of drop_quotas must be a float in the range (0.0, 1.0]. Got 0.0 instead."),
    (dict(recalls=[0.5, float("nan")]),
     "The 'recalls' parameter of drop_quotas must be an array of floats in the range [0.0, 1.0]. "
     "Got nan (class 1) instead."),
    (dict(recalls=[0.5, 1.2]),
     "The 'recalls' parameter of drop_quotas must be an array of floats in the range [0.0, 1.0]. "
     "Got 1.2 (class 1) instead."),
    (dict(recalls=[0.5]),
     "The 'recalls' parameter of drop_quotas must be an array with one entry per class (2, like "
     "'class_sizes'). Got shape (1,) instead."),
    (dict(class_sizes=[3, -1]),
     "The 'class_sizes' parameter of drop_quotas must be a non-empty 1-D array of non-negative "
     "integers. Got [3, -1] instead."),
    (dict(class_sizes=[], recalls=[]),
     "The 'class_sizes' parameter of drop_quotas must be a non-empty 1-D array of non-negative "
     "integers. Got [] instead."),
    (dict(min_per_class=-1),
     "The 'min_per_class' parameter of drop_quotas must be an int in the range [0, inf). "
     "Got -1 instead."),
    (dict(strength=1.5),
     "The 'strength' parameter of drop_quotas must be a float in the range [0.0, 1.0]. "
     "Got 1.5 instead."),
])
def test_bad_input_raises_named_value_error(kwargs, message):
    args = dict(class_sizes=[10, 20], recalls=[0.5, 0.5], density=0.5)
    args.update(kwargs)
    with pytest.raises(ValueError) as info:
        drop_quotas(**args)
    assert str(info.value) == message


# ----------------------------------------------------------------------- registry

def test_quoter_registry_names_and_signature():
    assert QUOTERS.names() == ["none", "uniform", "drop", "drop_authors"]
    sizes, r, params = np.array([5000, 2500]), np.array([0.9, 0.8]), QuotaParams()
    assert QUOTERS.get("none")(sizes, None, 0.5, params) is None
    assert QUOTERS.get("uniform")(sizes, None, 0.5, params).tolist() == [2500, 1250]
    assert QUOTERS.get("drop")(sizes, r, 0.5, params).tolist() == [1875, 1875]
    assert QUOTERS.get("drop_authors")(sizes, r, 0.5, params).tolist() == [1250, 2500]
    floor = QUOTERS.get("drop")(np.array([100, 100]), np.array([1.0, 0.5]), 0.3,
                                QuotaParams(min_per_class=15, strength=1.0))
    assert floor.tolist() == [15, 45]
    for name in ("uniform", "drop_authors"):
        lifted = QUOTERS.get(name)(np.array([1000, 10]), np.array([0.5, 1.0]), 0.1,
                                   QuotaParams(min_per_class=5))
        assert lifted.tolist() == [96, 5]


def test_quoter_needs_recalls():
    assert [quoter_needs_recalls(n) for n in QUOTERS.names()] == [False, False, True, True]
    with pytest.raises(DropError, match="Valid quoters: drop, drop_authors, none, uniform"):
        quoter_needs_recalls("metriq")
