"""CoreSet (Sener & Savarese, 2018): greedy k-center on penultimate embeddings.

As in the authors' code, the first centre is the sample nearest to the mean embedding and
each next centre is the sample farthest from all centres so far. The score encodes the
pick order so that any top-k with k <= budget is exactly the greedy k-center set of size
k: the c-th pick (c = 0, 1, ...) scores ``budget - c`` and unpicked samples score 0 (the
lowest; ties among them are broken at random by the selection). The authors' code scores
1 for the picked set and 0 otherwise.

Vectorised: each pick updates the nearest-centre distance of all N samples with one
matrix-vector product, ||x||^2 - 2 x.c + ||c||^2, so a pick costs O(N D) time, and memory
is one float32 copy of the embeddings (50,000 x 512 is 100 MB) plus O(N): no N x N matrix
and no per-pick N x D temporary (the authors' ``distance_matrix`` builds one per pick).
The picks are sequential, so the total is O(budget N D). Exact distance ties are broken by a random
permutation of the samples
drawn from the RNG, not by dataset index. Uses one query run.
"""
from __future__ import annotations

import numpy as np

from drop_core.errors import DropError
from drop_core.scoring.base import ScorerParams, register_scorer
from drop_core.scoring.recording import Recording


def greedy_k_center(embeddings: np.ndarray, budget: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of the first ``budget`` greedy k-center picks, in pick order."""
    n = embeddings.shape[0]
    budget = min(int(budget), n)
    if budget == 0:
        return np.zeros(0, dtype=np.int64)
    perm = rng.permutation(n)
    x = np.ascontiguousarray(np.asarray(embeddings, dtype=np.float32)[perm])
    sq = np.einsum("ij,ij->i", x, x)
    if not np.all(np.isfinite(sq)):
        raise DropError("CoreSet embeddings contain NaN or inf, or overflow float32.")
    mean = x.mean(axis=0, dtype=np.float64).astype(np.float32)
    picks = np.empty(budget, dtype=np.int64)
    min_d = np.full(n, np.inf, dtype=np.float32)
    # numpy intermittently warns "invalid value encountered in matmul" on these float32
    # products of finite inputs (seen with OpenBLAS); the warning is silenced, and a NaN
    # distance, which argmin/argmax would pick first, is checked for at every pick
    with np.errstate(invalid="ignore"):
        to_mean = sq - 2.0 * (x @ mean)
        picks[0] = np.argmin(to_mean)
        for c in range(budget):
            if c > 0:
                picks[c] = np.argmax(min_d)
            if np.isnan(to_mean[picks[0]] if c == 0 else min_d[picks[c]]):
                raise RuntimeError("NaN distance in greedy k-center")
            centre = picks[c]
            np.minimum(min_d, sq - 2.0 * (x @ x[centre]) + sq[centre], out=min_d)
            min_d[centre] = -np.inf             # stays -inf: never picked twice, even at ties
    return perm[picks]


def coreset_order_scores(embeddings: np.ndarray, budget: int,
                         rng: np.random.Generator) -> np.ndarray:
    """(N,) scores: ``budget - c`` for the c-th greedy pick, 0 for samples never picked."""
    scores = np.zeros(embeddings.shape[0], dtype=np.float64)
    picks = greedy_k_center(embeddings, budget, rng)
    scores[picks] = budget - np.arange(picks.size)
    return scores


@register_scorer("coreset", needs={"embeddings"}, query="full",
                 description="CoreSet: greedy k-center on embeddings, earlier pick = higher score")
def coreset_scores(recordings: list[Recording], rng: np.random.Generator,
                   params: ScorerParams) -> np.ndarray:
    if params.budget is None:
        raise DropError(
            "Scorer 'coreset' needs ScorerParams.budget (the number of samples kept); got None.")
    if len(recordings) != 1:
        raise DropError(
            f"Scorer 'coreset' uses one fully trained query model; got {len(recordings)} "
            f"query recordings. Use query_inits=1.")
    return coreset_order_scores(recordings[0].embeddings, params.budget, rng)
