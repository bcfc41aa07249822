"""SSP prototypes (Sorscher et al., 2022) on the query model's penultimate embeddings.

``kmeans`` (default): k-means (scikit-learn, k = ssp_clusters or the number of classes)
on the embeddings; the score is the Euclidean distance to the nearest prototype, so
samples far from every prototype are the hardest and kept first. Sorscher et al. use
self-supervised embeddings and cosine distance; here the embeddings are the supervised
query model's, unnormalised.
``class_mean``: the authors' SSPY, distance to the mean embedding of the sample's own
class. Averaged over query runs.
"""
from __future__ import annotations

import numpy as np
from sklearn.cluster import KMeans

from drop_core.errors import DropError
from drop_core.scoring.base import ScorerParams, field_stack, register_scorer
from drop_core.scoring.recording import Recording


def kmeans_prototype_distance(embeddings: np.ndarray, clusters: int, seed: int) -> np.ndarray:
    """(N,) distance of each embedding to its nearest of ``clusters`` k-means centroids."""
    x = np.asarray(embeddings, dtype=np.float64)
    if clusters > x.shape[0]:
        raise DropError(
            f"SSP asks for {clusters} k-means prototypes but there are only {x.shape[0]} "
            f"samples. Lower ssp_clusters.")
    km = KMeans(n_clusters=clusters, n_init=1, random_state=seed).fit(x)
    return km.transform(x).min(axis=1)


def class_mean_distance(embeddings: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(N,) distance of each embedding to the mean embedding of its own class."""
    x = np.asarray(embeddings, dtype=np.float64)
    classes, inverse = np.unique(labels, return_inverse=True)
    sums = np.zeros((classes.size, x.shape[1]))
    np.add.at(sums, inverse, x)
    means = sums / np.bincount(inverse)[:, None]
    return np.linalg.norm(x - means[inverse], axis=1)


@register_scorer("ssp", needs={"embeddings"}, query="full",
                 description="SSP: distance to the nearest k-means prototype (or own class mean)")
def ssp_scores(recordings: list[Recording], rng: np.random.Generator,
               params: ScorerParams) -> np.ndarray:
    labels = np.asarray(recordings[0].labels)
    if params.ssp_variant == "class_mean":
        return np.mean([class_mean_distance(e, labels)
                        for e in field_stack(recordings, "embeddings")], axis=0)
    k = params.ssp_clusters or len(recordings[0].val_recall)
    return np.mean([kmeans_prototype_distance(e, k, int(rng.integers(2**31 - 1)))
                    for e in field_stack(recordings, "embeddings")], axis=0)
