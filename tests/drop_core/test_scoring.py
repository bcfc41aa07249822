"""Scorers: hand-computed cases, orientation (higher = harder), ties, and the registry contract."""
import dataclasses
import math

import numpy as np
import pytest
import torch
from torch import nn

from drop_core.errors import DropError
from drop_core.scoring import SCORERS, ScorerParams, compute_scores
from drop_core.scoring.base import QUERY_KINDS
from drop_core.scoring.coreset import greedy_k_center
from drop_core.scoring.recording import Recording
from drop_core.train.grad_norms import per_sample_grad_norms

RECORDING_FIELDS = {f.name for f in dataclasses.fields(Recording)}


def rec(labels, **fields) -> Recording:
    labels = np.asarray(labels, dtype=np.int64)
    k = int(labels.max()) + 1
    return Recording(labels=labels, val_recall=np.full(k, 0.5), val_accuracy=0.5, best_epoch=0,
                     **fields)


def full_recording(seed=0, n=30, k=3, epochs=12, dim=5) -> Recording:
    g = np.random.default_rng(seed)
    labels = np.arange(n) % k
    return rec(labels,
               correct=g.random((epochs, n)) < 0.6,
               p_true=g.random((epochs, n)).astype(np.float32),
               margin=g.normal(size=(epochs, n)).astype(np.float32),
               logits=g.normal(size=(n, k)).astype(np.float32),
               embeddings=g.normal(size=(n, dim)).astype(np.float32),
               grad_norms=g.random(n).astype(np.float32))


# ----------------------------------------------------------------------- registry contract

def test_registry_names_in_order():
    assert SCORERS.names() == ["random", "el2n", "grand", "forgetting", "dynamic_uncertainty",
                               "coreset", "ssp", "aum"]


@pytest.mark.parametrize("name", SCORERS.names())
def test_every_scorer_declares_its_needs_and_is_reproducible(name):
    spec = SCORERS.get(name)
    assert spec.name == name and spec.query in QUERY_KINDS and spec.description
    assert spec.needs <= RECORDING_FIELDS - {"labels", "val_recall", "val_accuracy", "best_epoch"}
    recs = [full_recording()] if spec.query != "early" else [full_recording(0), full_recording(1)]
    params = ScorerParams(budget=10)
    a = compute_scores(name, recs, seed=3, params=params)
    b = compute_scores(name, recs, seed=3, params=params)
    assert a.shape == (30,) and a.dtype == np.float64 and np.all(np.isfinite(a))
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", [n for n in SCORERS.names() if SCORERS.get(n).needs])
def test_missing_field_is_a_drop_error_naming_it(name):
    field = sorted(SCORERS.get(name).needs)[0]
    bare = dataclasses.replace(full_recording(), **{field: None})
    with pytest.raises(DropError) as info:
        compute_scores(name, [bare], seed=0, params=ScorerParams(budget=5))
    assert str(info.value).startswith(
        f"Scorer {name!r} needs the recording field {field!r}, but query recording 0 has none.")


def test_unknown_scorer_and_bad_recordings():
    with pytest.raises(DropError, match="Unknown scorer 'grandd'. Valid scorers: aum, coreset"):
        compute_scores("grandd", [full_recording()], seed=0)
    with pytest.raises(DropError, match="needs at least one query recording"):
        compute_scores("el2n", [], seed=0)
    other = dataclasses.replace(full_recording(), labels=np.zeros(30, dtype=np.int64))
    with pytest.raises(DropError, match="different training labels"):
        compute_scores("el2n", [full_recording(), other], seed=0)
    short = dataclasses.replace(full_recording(), logits=np.zeros((29, 3)))
    with pytest.raises(DropError, match=r"field 'logits' has shape \(29, 3\)"):
        compute_scores("el2n", [short], seed=0)


@pytest.mark.parametrize("kwargs, message", [
    (dict(du_window=2), "The 'du_window' parameter of ScorerParams must be an int in the range "
                        "[3, inf). Got 2 instead."),
    (dict(forgetting_never_learned="inf"),
     "The 'forgetting_never_learned' parameter of ScorerParams must be one of max, zero. Got 'inf' instead."),
    (dict(ssp_variant="knn"), "The 'ssp_variant' parameter of ScorerParams must be one of kmeans, class_mean. "
                              "Got 'knn' instead."),
    (dict(budget=-1), "The 'budget' parameter of ScorerParams must be an int in the range "
                      "[0, inf). Got -1 instead."),
])
def test_bad_params_raise(kwargs, message):
    with pytest.raises(DropError) as info:
        ScorerParams(**kwargs)
    assert str(info.value) == message


# ----------------------------------------------------------------------- hand-computed cases

def test_random_is_uniform_and_seeded():
    r = [rec(np.zeros(1000, dtype=int))]
    a, b = compute_scores("random", r, seed=1), compute_scores("random", r, seed=2)
    assert np.all((a >= 0) & (a < 1)) and not np.array_equal(a, b)
    np.testing.assert_array_equal(a, compute_scores("random", r, seed=1))


def test_el2n_hand_computed_and_averaged_over_inits():
    labels = [0, 0]
    r1 = rec(labels, logits=np.array([[0.0, 0.0], [math.log(3), 0.0]]))   # p = (.5,.5), (.75,.25)
    r2 = rec(labels, logits=np.zeros((2, 2)))
    got = compute_scores("el2n", [r1, r2], seed=0)
    np.testing.assert_allclose(got, [math.sqrt(0.5), (math.sqrt(0.125) + math.sqrt(0.5)) / 2])
    # a confidently wrong sample is harder than a confidently right one
    wrong_vs_right = compute_scores("el2n", [rec([0, 1], logits=np.array([[0, 9.0], [0, 9.0]]))],
                                    seed=0)
    assert wrong_vs_right[0] > 1.4 > 0.01 > wrong_vs_right[1]


def test_grand_averages_recorded_norms():
    r1 = rec([0, 1, 0], grad_norms=np.array([1.0, 2.0, 6.0]))
    r2 = rec([0, 1, 0], grad_norms=np.array([3.0, 2.0, 0.0]))
    np.testing.assert_allclose(compute_scores("grand", [r1, r2], seed=0), [2.0, 2.0, 3.0])


def test_forgetting_hand_computed_both_conventions():
    correct = np.array([[1, 0, 1, 0],
                        [0, 0, 1, 1],
                        [1, 0, 1, 0],
                        [0, 0, 1, 0]], dtype=bool)   # columns: forgotten 2x, never learned,
    r = [rec([0, 1, 0, 1], correct=correct)]        #          always right, forgotten 1x
    toneva = compute_scores("forgetting", r, seed=0)
    authors = compute_scores("forgetting", r, seed=0,
                             params=ScorerParams(forgetting_never_learned="zero"))
    assert toneva.tolist() == [2.0, 4.0, 0.0, 1.0]      # never learned = E, above any count
    assert authors.tolist() == [2.0, 0.0, 0.0, 1.0]


def test_dynamic_uncertainty_windows_of_j_minus_1_epochs_without_the_last():
    p = np.array([[0.2, 0.5, 0.9],
                  [0.6, 0.5, 0.1],
                  [0.6, 0.5, 0.9],
                  [0.0, 0.5, 0.9]])     # the last epoch enters no window (authors' code)
    r = [rec([0, 1, 0], p_true=p)]
    got = compute_scores("dynamic_uncertainty", r, seed=0, params=ScorerParams(du_window=3))
    # J=3: windows (0,1) and (1,2); unbiased std of two values is |a-b|/sqrt(2)
    np.testing.assert_allclose(got, [0.4 / math.sqrt(2) / 2, 0.0, 0.8 / math.sqrt(2)])


def test_dynamic_uncertainty_matches_explicit_windows():
    p = np.random.default_rng(0).random((15, 7))
    got = compute_scores("dynamic_uncertainty", [rec(np.arange(7) % 2, p_true=p)], seed=0,
                         params=ScorerParams(du_window=5))
    want = np.mean([p[s:s + 4].std(axis=0, ddof=1) for s in range(15 - 5 + 1)], axis=0)
    np.testing.assert_allclose(got, want, rtol=1e-10)


def test_dynamic_uncertainty_needs_j_epochs():
    r = [rec([0, 1], p_true=np.full((4, 2), 0.5))]
    with pytest.raises(DropError, match="window J=5 needs at least 5 recorded epochs; the "
                                        "query run recorded 4"):
        compute_scores("dynamic_uncertainty", r, seed=0, params=ScorerParams(du_window=5))


def test_aum_is_minus_mean_margin():
    r = [rec([0, 1], margin=np.array([[1.0, -2.0], [3.0, 0.0]]))]
    assert compute_scores("aum", r, seed=0).tolist() == [-2.0, 1.0]


def test_ssp_class_mean_hand_computed():
    emb = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 0.0], [0.0, 4.0]])
    r = [rec([0, 0, 1, 1], embeddings=emb)]
    got = compute_scores("ssp", r, seed=0, params=ScorerParams(ssp_variant="class_mean"))
    np.testing.assert_allclose(got, [1.0, 1.0, 2.0, 2.0])


def test_ssp_kmeans_distance_to_nearest_prototype():
    emb = np.array([[0.0, 0.0], [2.0, 0.0], [10.0, 10.0], [10.0, 14.0]])
    r = [rec([0, 1, 0, 1], embeddings=emb)]     # k = number of classes = 2; labels unused
    np.testing.assert_allclose(compute_scores("ssp", r, seed=0), [1.0, 1.0, 2.0, 2.0])
    with pytest.raises(DropError, match="asks for 9 k-means prototypes but there are only 4"):
        compute_scores("ssp", r, seed=0, params=ScorerParams(ssp_clusters=9))


# ----------------------------------------------------------------------- CoreSet

def test_coreset_hand_computed_pick_order():
    x = np.array([[0.0, 0], [1, 0], [2.2, 0], [3, 0], [10, 0]])
    r = [rec([0, 1, 0, 1, 0], embeddings=x)]
    got = compute_scores("coreset", r, seed=0, params=ScorerParams(budget=3))
    # first = nearest the mean (3.24) -> 3; then farthest 10 -> 4; then 0 -> 0
    assert got.tolist() == [1.0, 0.0, 0.0, 3.0, 2.0]


def _naive_k_center(x, budget):
    x = x.astype(np.float64)
    picks = [int(np.argmin(np.linalg.norm(x - x.mean(0), axis=1)))]
    while len(picks) < budget:
        d = [min(np.linalg.norm(x[i] - x[c]) for c in picks) for i in range(len(x))]
        picks.append(int(np.argmax(d)))
    return picks


def test_coreset_matches_naive_loop_and_is_nested():
    x = np.random.default_rng(1).normal(size=(120, 6)).astype(np.float32)
    picks = greedy_k_center(x, 25, np.random.default_rng(0))
    assert picks.tolist() == _naive_k_center(x, 25)
    scores = compute_scores("coreset", [rec(np.arange(120) % 3, embeddings=x)], seed=0,
                            params=ScorerParams(budget=25))
    for k in (1, 7, 25):      # top-k of the scores is the greedy set of size k
        assert set(np.argsort(-scores)[:k].tolist()) == set(picks[:k].tolist())
    assert np.count_nonzero(scores) == 25


def test_coreset_duplicates_are_tie_broken_by_rng_without_repeats():
    x = np.zeros((50, 4), dtype=np.float32)
    a = greedy_k_center(x, 50, np.random.default_rng(0))
    b = greedy_k_center(x, 50, np.random.default_rng(1))
    assert sorted(a.tolist()) == list(range(50)) and a.tolist() != b.tolist()


def test_coreset_needs_budget_and_one_run():
    r = full_recording()
    with pytest.raises(DropError, match="needs ScorerParams.budget"):
        compute_scores("coreset", [r], seed=0)
    with pytest.raises(DropError, match="got 2 query recordings"):
        compute_scores("coreset", [r, r], seed=0, params=ScorerParams(budget=3))


# ----------------------------------------------------------------------- GraNd from trained norms

def _tiny_model(seed):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Dropout(0.5),
                          nn.Flatten(), nn.Linear(3 * 4 * 4, 4))
    model.train()
    model(torch.randn(16, 2, 6, 6))      # non-trivial BatchNorm running stats
    return model


def test_grand_scores_from_ghost_norms_equal_the_torch_func_path():
    x, y = torch.randn(11, 2, 6, 6), torch.randint(0, 4, (11,))
    labels = y.numpy()
    runs = {method: [rec(labels, grad_norms=per_sample_grad_norms(_tiny_model(s), x, y, method=method).numpy())
                     for s in (0, 1)]
            for method in ("ghost", "func")}
    ghost, func = (compute_scores("grand", runs[m], seed=0) for m in ("ghost", "func"))
    assert not np.allclose(runs["ghost"][0].grad_norms, runs["ghost"][1].grad_norms)   # two different inits
    np.testing.assert_allclose(ghost, func, rtol=1e-5)


def test_non_finite_recordings_are_a_drop_error():
    r = full_recording()
    r.embeddings[3, 1] = np.nan
    with pytest.raises(DropError, match="field 'embeddings' contains NaN or inf, so scorer "
                                        "'coreset' cannot rank samples"):
        compute_scores("coreset", [r], seed=0, params=ScorerParams(budget=5))
