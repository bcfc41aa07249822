"""Datasets that need no download: scikit-learn's handwritten digits and a generated Gaussian mixture."""
from __future__ import annotations

import numpy as np

from drop_core.data._registry import DATASETS
from drop_core.data.base import Dataset
from drop_core.data.build import assemble
from drop_core.data.splits import stratified_split
from theory.mixture import (
    GAUSSIANS_CLASSES,
    GAUSSIANS_DIM,
    GAUSSIANS_LAYOUT_SEED,
    GAUSSIANS_SEPARATION,
    GAUSSIANS_SPREAD,
    gaussians_dataset_mixture,
)

DIGITS_TEST_FRACTION = 0.4      # of each class -> original test split (then halved into val / test)
DIGITS_SPLIT_SEED = 0           # the split is fixed: the same for every run seed

# The mixture itself (means, stds) is defined once in theory.mixture, shared with the Mixture page.
GAUSS_CLASSES = GAUSSIANS_CLASSES
GAUSS_DIM = GAUSSIANS_DIM
GAUSS_TRAIN_PER_CLASS = 300
GAUSS_TEST_PER_CLASS = 200      # -> 100 validation + 100 test per class
GAUSS_SEPARATION = GAUSSIANS_SEPARATION   # distance of every class mean from the origin (means are orthogonal)
GAUSS_SPREAD = GAUSSIANS_SPREAD           # per-class isotropic std, linearly from class 0 (easy) to class K-1 (hard)
GAUSS_LAYOUT_SEED = GAUSSIANS_LAYOUT_SEED  # fixes the class means, so class identities mean the same for every seed


@DATASETS.register("digits", "scikit-learn handwritten digits, 1x8x8, 10 classes, 1078 train (offline default)")
def load_digits(root: str | None, download: bool, seed: int) -> Dataset:
    """The 1,797 8x8 digits shipped with scikit-learn as uint8 images (0..16 scaled to 0..255).

    A fixed stratified split sends 40 % of each class to the original test split, which is
    then halved into validation and test; ``root``, ``download`` and ``seed`` are ignored.
    No flips (digits are not mirror-symmetric); shifts of at most 1 px.
    """
    from sklearn.datasets import load_digits as sk_digits

    bunch = sk_digits()
    images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None]   # (N, 1, 8, 8)
    labels = bunch.target.astype(np.int64)
    train_idx, test_idx = stratified_split(labels, DIGITS_TEST_FRACTION, DIGITS_SPLIT_SEED)
    return assemble(
        "digits", [str(k) for k in range(10)],
        images[train_idx], labels[train_idx], images[test_idx], labels[test_idx],
        flip=False, max_shift=1, source="sklearn.datasets.load_digits",
    )


def gaussian_spreads(num_classes: int = GAUSS_CLASSES) -> np.ndarray:
    """Per-class isotropic standard deviations: class 0 is the tightest (easiest), class K-1 the widest."""
    return np.linspace(*GAUSS_SPREAD, num_classes)


@DATASETS.register(
    "gaussians",
    "generated 10-class Gaussian mixture in 16-D, spread growing with the class index (class 9 hardest)",
)
def load_gaussians(root: str | None, download: bool, seed: int) -> Dataset:
    """A K-class isotropic Gaussian mixture with class-dependent spread (the theory's setting in more dimensions).

    Class means are ``GAUSS_SEPARATION`` times orthonormal directions (fixed for all seeds,
    so all pairs of means are equally far apart) and class k has std ``gaussian_spreads()[k]``,
    so difficulty grows with the class index. ``seed`` draws the samples. Balanced:
    300 train and 200 original-test samples per class. Features are float32.
    """
    mixture = gaussians_dataset_mixture()               # theory.GaussianMixture: the Mixture page's exact model
    means, spreads = mixture.means, mixture.stds        # (K, D) orthogonal rows, (K,)
    rng = np.random.default_rng(seed)

    def draw(per_class: int) -> tuple[np.ndarray, np.ndarray]:
        labels = np.repeat(np.arange(GAUSS_CLASSES), per_class)
        noise = rng.standard_normal((labels.size, GAUSS_DIM))
        x = means[labels] + spreads[labels, None] * noise
        order = rng.permutation(labels.size)                                   # interleave classes
        return x[order].astype(np.float32), labels[order]

    x_train, y_train = draw(GAUSS_TRAIN_PER_CLASS)
    x_test, y_test = draw(GAUSS_TEST_PER_CLASS)
    return assemble(
        "gaussians", [f"c{k} (std {s:.2f})" for k, s in enumerate(spreads)],
        x_train, y_train, x_test, y_test, source=f"generated, seed {seed}",
    )
