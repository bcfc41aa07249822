"""The shape every model has: a feature extractor to a (B, D) embedding, then a linear head."""
from __future__ import annotations

import math

import torch
from torch import nn


class Classifier(nn.Module):
    """``forward(x) == head(features(x))``; ``features`` ends in a flat (B, D) embedding (D = ``feature_dim``)."""

    def __init__(self, features: nn.Module, feature_dim: int, num_classes: int) -> None:
        super().__init__()
        self.features = features
        self.head = nn.Linear(feature_dim, num_classes)
        self.feature_dim = feature_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def authors_init(model: nn.Module) -> nn.Module:
    """The DRoP code's initialisation: Xavier-normal with gain sqrt(2) for Conv/Linear weights, zero biases."""
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_normal_(module.weight, gain=math.sqrt(2.0))
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return model


def flat_dim(features: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Width of ``features``' output for one input of ``input_shape`` (one dummy forward, no grad)."""
    was_training = features.training
    features.eval()
    with torch.no_grad():
        dim = features(torch.zeros(1, *input_shape)).shape[1]
    features.train(was_training)
    return dim
