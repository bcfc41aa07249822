"""The paper's two-Gaussian toy model, exact and vectorised (no UI imports)."""
from theory.model import TwoGaussians

__all__ = ["TwoGaussians"]
