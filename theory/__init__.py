"""Exact theory, vectorised (no UI imports): the paper's two-Gaussian toy model and a K-class Gaussian mixture."""
from theory.mixture import GaussianMixture
from theory.model import TwoGaussians

__all__ = ["GaussianMixture", "TwoGaussians"]
