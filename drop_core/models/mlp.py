"""A multi-layer perceptron for tabular data (and flattened images)."""
from __future__ import annotations

import math

from torch import nn

from drop_core.models._registry import MODELS
from drop_core.models.base import Classifier

HIDDEN = (256, 256)     # widths of the hidden layers; the last one is the embedding


@MODELS.register("mlp", "MLP, 2 hidden layers of 256 with ReLU; any input (flattened); for tabular data")
def build_mlp(input_shape: tuple[int, ...], num_classes: int) -> Classifier:
    layers: list[nn.Module] = [nn.Flatten()]
    width = math.prod(input_shape)
    for hidden in HIDDEN:
        layers += [nn.Linear(width, hidden), nn.ReLU(inplace=True)]
        width = hidden
    return Classifier(nn.Sequential(*layers), width, num_classes)
