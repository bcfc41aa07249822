"""Selection: global / per-class top-k, random within class, StrategyQ, CCS; ties and seeds."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drop_core.quotas import QUOTERS, QuotaParams
from drop_core.scoring import SCORERS, ScorerParams, compute_scores
from drop_core.select import (
    Selection,
    select_ccs,
    select_global,
    select_per_class,
    select_random_per_class,
    select_strategyq,
)
from tests.drop_core.test_scoring import full_recording

LABELS = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
SCORES = np.array([0.1, 0.9, 0.5, 0.3, 0.8, 0.7, 0.2, 0.6, 0.4])


def test_global_top_k():
    sel = select_global(SCORES, LABELS, 4, 3)
    assert sel.indices.tolist() == [1, 4, 5, 7]
    assert sel.kept_per_class.tolist() == [1, 1, 2]


def test_per_class_top_k_under_quotas():
    sel = select_per_class(SCORES, LABELS, np.array([2, 0, 1]))
    assert sel.indices.tolist() == [1, 2, 5]
    assert sel.kept_per_class.tolist() == [2, 0, 1]


def test_ties_are_broken_by_the_rng_not_by_index():
    scores, labels = np.zeros(200), np.zeros(200, dtype=int)
    picks = [select_global(scores, labels, 20, 1, rng=np.random.default_rng(s)).indices
             for s in (0, 0, 1)]
    np.testing.assert_array_equal(picks[0], picks[1])
    assert picks[0].tolist() != picks[2].tolist()
    assert picks[0].tolist() != list(range(20)) and picks[0].tolist() != list(range(180, 200))
    per_class = select_per_class(scores, labels, np.array([20]), rng=np.random.default_rng(1))
    np.testing.assert_array_equal(per_class.indices, picks[2])


def test_random_per_class_meets_quotas_and_is_seeded():
    labels = np.repeat(np.arange(4), [50, 30, 10, 5])
    quotas = np.array([7, 30, 0, 3])
    a = select_random_per_class(labels, quotas, np.random.default_rng(5))
    b = select_random_per_class(labels, quotas, np.random.default_rng(5))
    c = select_random_per_class(labels, quotas, np.random.default_rng(6))
    assert a.kept_per_class.tolist() == [7, 30, 0, 3]
    assert np.bincount(labels[a.indices], minlength=4).tolist() == [7, 30, 0, 3]
    assert np.all(np.diff(a.indices) > 0)            # sorted, no duplicates
    np.testing.assert_array_equal(a.indices, b.indices)
    assert a.indices.tolist() != c.indices.tolist()


def test_strategyq_copies_class_counts_of_another_selection():
    labels = np.repeat(np.arange(3), 40)
    scores = np.where(labels == 2, 10.0, 0.0) + np.random.default_rng(0).random(120)
    strategy = select_global(scores, labels, 50, 3)          # takes all of class 2 first
    assert strategy.kept_per_class.tolist()[2] == 40
    q = select_strategyq(labels, strategy, np.random.default_rng(0))
    assert q.kept_per_class.tolist() == strategy.kept_per_class.tolist()
    assert q.indices.tolist() != strategy.indices.tolist()


def test_ccs_cuts_off_the_hardest_and_covers_the_score_range():
    n = 1000
    labels = np.arange(n) % 5
    scores = np.linspace(0.0, 1.0, n)
    sel = select_ccs(scores, labels, 200, 5, np.random.default_rng(0), hard_cutoff=0.1, bins=10)
    assert sel.indices.size == 200 and sel.kept_per_class.sum() == 200
    assert scores[sel.indices].max() < 0.9                       # top 10% cut off
    # uniform scores: 10 equal-width bins over the kept 90% -> 20 per bin
    per_bin = np.histogram(scores[sel.indices], bins=10, range=(0.0, scores[899]))[0]
    assert per_bin.tolist() == [20] * 10


def test_ccs_small_bins_are_taken_whole_and_the_rest_spread():
    scores = np.concatenate([np.zeros(3), np.full(100, 0.5), np.ones(100)])
    labels = np.zeros(203, dtype=int)
    sel = select_ccs(scores, labels, 43, 1, np.random.default_rng(0), hard_cutoff=0.0, bins=3)
    kept = scores[sel.indices]
    assert [(kept == v).sum() for v in (0.0, 0.5, 1.0)] == [3, 20, 20]


def test_ccs_cutoff_shrinks_to_leave_the_budget():
    scores = np.arange(10.0)
    sel = select_ccs(scores, np.zeros(10, dtype=int), 9, 1, np.random.default_rng(0),
                     hard_cutoff=0.5)
    assert sel.indices.tolist() == list(range(9))


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 300), st.floats(0.0, 1.0), st.floats(0.0, 0.9), st.integers(1, 60),
       st.integers(0, 2**32 - 1))
def test_ccs_always_meets_the_budget(n, frac, cutoff, bins, seed):
    g = np.random.default_rng(seed)
    scores = np.round(g.random(n), 1)                            # many ties
    labels = g.integers(0, 3, n)
    budget = int(frac * n)
    sel = select_ccs(scores, labels, budget, 3, g, hard_cutoff=cutoff, bins=bins)
    assert sel.indices.size == budget == sel.kept_per_class.sum()
    assert np.unique(sel.indices).size == budget


@pytest.mark.parametrize("call, message", [
    (lambda: select_global(SCORES, LABELS, 10, 3),
     "The 'budget' parameter of select_global must be an int in the range [0, 9]. Got 10 instead."),
    (lambda: select_global(SCORES[:5], LABELS, 2, 3),
     "The 'scores' parameter of select_global must be a finite float array of shape (9,) like "
     "'labels'. Got shape (5,) instead."),
    (lambda: select_per_class(SCORES, LABELS, np.array([1, 3, 0])),
     "The 'quotas' parameter of select_per_class asks for 3 samples of class 1, which has only 2."),
    (lambda: select_random_per_class(LABELS, np.array([1, -1, 0]), np.random.default_rng(0)),
     "The 'quotas' parameter of select_random_per_class must be a non-empty 1-D array of "
     "non-negative integers, one per class. Got array([ 1, -1,  0]) instead."),
    (lambda: select_global(SCORES, LABELS, 2, 2),
     "The 'labels' parameter of select_global must be a 1-D integer array with values in [0, 1]. "
     "Got array([0, 0, 0, 1, 1, 2, 2, 2, 2]) instead."),
])
def test_bad_input_raises_named_value_error(call, message):
    with pytest.raises(ValueError) as info:
        call()
    assert str(info.value) == message


@pytest.mark.parametrize("scorer", SCORERS.names())
@pytest.mark.parametrize("quoter", QUOTERS.names())
def test_any_scorer_combines_with_any_quoter_reproducibly(scorer, quoter):
    recording = full_recording()
    labels, k, density = recording.labels, 3, 0.4
    sizes = np.bincount(labels, minlength=k)
    recalls = np.array([0.9, 0.6, 0.3])
    budget = round(density * labels.size)

    def run(seed):
        scores = compute_scores(scorer, [recording, full_recording(1)]
                                if SCORERS.get(scorer).query == "early" else [recording],
                                seed=seed, params=ScorerParams(budget=budget))
        quotas = QUOTERS.get(quoter)(sizes, recalls, density, QuotaParams())
        rng = np.random.default_rng(seed)
        if quotas is None:
            return select_global(scores, labels, budget, k, rng=rng)
        return select_per_class(scores, labels, quotas, rng=rng)

    a, b = run(7), run(7)
    assert isinstance(a, Selection) and a.indices.size == budget == a.kept_per_class.sum()
    np.testing.assert_array_equal(a.indices, b.indices)
