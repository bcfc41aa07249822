"""Models: a registry of builders ``(input_shape, num_classes) -> nn.Module``.

Every model is a :class:`~drop_core.models.base.Classifier`: ``model.features(x)`` is the
(B, D) penultimate embedding and ``model.head(f)`` the logits, with
``model(x) == model.head(model.features(x))``.
"""
from __future__ import annotations

from torch import nn

from drop_core.errors import DropError

# Explicit imports register the builders, in the order `list` shows them.
from drop_core.models import (
    cnn,  # noqa: F401
    lenet,  # noqa: F401
    mlp,  # noqa: F401
    resnet,  # noqa: F401
    vgg,  # noqa: F401
)
from drop_core.models._registry import MODELS, Builder
from drop_core.models.base import Classifier
from drop_core.validate import is_int

__all__ = ["MODELS", "Builder", "Classifier", "build_model"]


def build_model(name: str, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """Build the registered model ``name`` for inputs of ``input_shape`` and ``num_classes`` outputs."""
    if not (is_int(num_classes) and num_classes >= 2):
        raise DropError(f"A classifier needs at least two classes: the 'num_classes' parameter of build_model must "
                        f"be an int in the range [2, inf). Got {num_classes!r} instead.")
    return MODELS.get(name)(tuple(int(s) for s in input_shape), num_classes)
