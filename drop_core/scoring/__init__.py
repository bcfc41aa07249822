"""Sample scorers for data pruning: one registry, one signature.

Orientation everywhere: **higher score = harder = kept first.** Each scorer is a pure
numpy function of the query runs' :class:`~drop_core.scoring.recording.Recording` s (one
per query-model init), the RNG and :class:`ScorerParams`, so it can be tested on small
synthetic recordings without training.

| name | reads | query | score |
|---|---|---|---|
| random | - | none | U(0, 1) |
| el2n | logits | early | ||softmax - onehot||_2, mean over inits |
| grand | grad_norms | early | per-sample gradient norm, mean over inits |
| forgetting | correct | full | forgetting events (never learned: most, or 0) |
| dynamic_uncertainty | p_true | full | mean sliding-window std of p(y|x) |
| coreset | embeddings | full | greedy k-center pick order (earlier = higher) |
| ssp | embeddings | full | distance to nearest k-means prototype / own class mean |
| aum | margin | full | minus the area under the margin |
"""
from __future__ import annotations

import numpy as np

from drop_core.errors import DropError
from drop_core.scoring.base import SCORERS, ScorerParams, ScorerSpec, register_scorer
from drop_core.scoring.recording import Recording

# explicit imports register the scorers, in this order
# isort: off
from drop_core.scoring import random as _random  # noqa: E402,F401
from drop_core.scoring import el2n as _el2n  # noqa: E402,F401
from drop_core.scoring import grand as _grand  # noqa: E402,F401
from drop_core.scoring import forgetting as _forgetting  # noqa: E402,F401
from drop_core.scoring import dynamic_uncertainty as _du  # noqa: E402,F401
from drop_core.scoring import coreset as _coreset  # noqa: E402,F401
from drop_core.scoring import ssp as _ssp  # noqa: E402,F401
from drop_core.scoring import aum as _aum  # noqa: E402,F401
# isort: on

__all__ = ["SCORERS", "ScorerParams", "ScorerSpec", "compute_scores", "register_scorer"]

_PER_EPOCH = ("correct", "p_true", "margin")


def compute_scores(name: str, recordings: list[Recording], *, seed: int,
                   params: ScorerParams = ScorerParams()) -> np.ndarray:
    """Scores (N,) float64 of scorer ``name`` on the query runs ``recordings``.

    Checks that every recording carries the fields the scorer needs with consistent
    shapes, and that the result is finite. Reproducible for a given ``seed``.
    """
    spec = SCORERS.get(name)
    if not isinstance(recordings, (list, tuple)) or len(recordings) == 0:
        raise DropError(f"Scorer {name!r} needs at least one query recording; got none.")
    n = _check_recordings(spec, list(recordings))
    scores = np.asarray(spec.fn(list(recordings), np.random.default_rng(seed), params),
                        dtype=np.float64)
    if scores.shape != (n,) or not np.all(np.isfinite(scores)):
        raise RuntimeError(f"scorer {name!r} returned shape {scores.shape} or non-finite values")
    return scores


def _check_recordings(spec: ScorerSpec, recordings: list[Recording]) -> int:
    labels = np.asarray(recordings[0].labels)
    n = labels.shape[0]
    for i, rec in enumerate(recordings):
        if not np.array_equal(np.asarray(rec.labels), labels):
            raise DropError(
                f"Query recording {i} has different training labels from recording 0; all "
                f"recordings passed to scorer {spec.name!r} must cover the same training set.")
        for field in sorted(spec.needs):
            value = getattr(rec, field)
            if value is None:
                raise DropError(
                    f"Scorer {spec.name!r} needs the recording field {field!r}, but query "
                    f"recording {i} has none. Record it in the query run (TrainConfig.record "
                    f"for per-epoch fields, outputs.final_outputs for final ones).")
            _check_shape(spec.name, field, np.asarray(value), n, i)
    return n


def _check_shape(scorer: str, field: str, value: np.ndarray, n: int, i: int) -> None:
    if field in _PER_EPOCH:
        ok = value.ndim == 2 and value.shape[1] == n and value.shape[0] >= 1
        want = "(epochs, N)"
    elif field == "grad_norms":
        ok, want = value.shape == (n,), "(N,)"
    else:
        ok, want = value.ndim == 2 and value.shape[0] == n, "(N, dim)"
    if not ok:
        raise DropError(
            f"Query recording {i} field {field!r} has shape {value.shape}; scorer {scorer!r} "
            f"needs {want} with N={n} training samples.")
    if value.dtype != bool and not np.all(np.isfinite(value)):
        raise DropError(
            f"Query recording {i} field {field!r} contains NaN or inf, so scorer {scorer!r} "
            f"cannot rank samples; the query model probably diverged (lower its learning rate).")
